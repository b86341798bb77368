"""Micro-benchmark: encode and decode a full basic.publish, ours against pika's codec.

A publish is a method payload, a content header payload and a 16-byte body (framing
excluded for both codecs). The broker keeps properties raw, so "raw properties" splits
the header without decoding them; "decoded properties" also encodes/decodes the
properties, which is what pika always does.

Run: python tests/bench_codec.py
"""

from __future__ import annotations

import struct
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pika.spec  # noqa: E402

from dispatchd.wire import spec  # noqa: E402

BODY = b"x" * 16
EXCHANGE, ROUTING_KEY = "amq.topic", "orders.eu.created"
PROPS = dict(content_type="application/json", delivery_mode=2, message_id="m-000001")


def ours() -> dict[str, Callable[[], object]]:
    method = spec.BasicPublish(exchange=EXCHANGE, routing_key=ROUTING_KEY)
    props = spec.BasicProperties(**PROPS)
    raw = props.encode()
    method_payload = method.encode()
    header_payload = spec.encode_content_header(60, len(BODY), raw)

    def encode_raw() -> object:
        return method.encode(), spec.encode_content_header(60, len(BODY), raw), BODY

    def encode_props() -> object:
        return method.encode(), spec.encode_content_header(60, len(BODY), props.encode()), BODY

    def decode_raw() -> object:
        return spec.decode_method(method_payload), spec.decode_content_header(header_payload)

    def decode_props() -> object:
        class_id, size, raw = spec.decode_content_header(header_payload)
        return spec.decode_method(method_payload), spec.BasicProperties.decode(raw), size

    return {
        "encode, raw properties": encode_raw,
        "encode, with properties": encode_props,
        "decode, raw properties": decode_raw,
        "decode, with properties": decode_props,
    }


def pikas() -> dict[str, Callable[[], object]]:
    index, header = struct.Struct(">I"), struct.Struct(">HxxQ")
    method = pika.spec.Basic.Publish(exchange=EXCHANGE, routing_key=ROUTING_KEY)
    props = pika.spec.BasicProperties(**PROPS)
    method_payload = index.pack(method.INDEX) + b"".join(method.encode())
    header_payload = header.pack(60, len(BODY)) + b"".join(props.encode())

    def encode() -> object:
        return (
            index.pack(method.INDEX) + b"".join(method.encode()),
            header.pack(60, len(BODY)) + b"".join(props.encode()),
            BODY,
        )

    def decode() -> object:
        decoded = pika.spec.methods[index.unpack_from(method_payload)[0]]()
        decoded.decode(method_payload, 4)
        class_id, size = header.unpack_from(header_payload)
        return decoded, pika.spec.BasicProperties().decode(header_payload, 12), size

    return {"encode, with properties": encode, "decode, with properties": decode}


def measure(fn: Callable[[], object], number: int = 100_000) -> float:
    """Best of five runs, in seconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def main() -> None:
    """Print µs per publish and publishes per second for each codec and direction."""
    print(f"{'codec':6} {'operation':26} {'µs/msg':>8} {'msg/s':>12}")
    for codec, cases in (("ours", ours()), ("pika", pikas())):
        for name, fn in cases.items():
            seconds = measure(fn)
            print(f"{codec:6} {name:26} {seconds * 1e6:8.2f} {1 / seconds:12,.0f}")


if __name__ == "__main__":
    main()
