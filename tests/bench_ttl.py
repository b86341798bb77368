"""Load generator: the cost of message TTL on a plain queue, against a running broker.

Run: python tests/bench_ttl.py --port PORT [--count N] [--rounds R] [--json]

Run from the repository root, with a broker already listening on 127.0.0.1:PORT (this script
starts nothing itself), e.g.:

    python -m dispatchd --port 5812 --admin-port 0 --data-dir /tmp/d --log-level warning &
    PYTHONPATH=. python tests/bench_ttl.py --port 5812

It mirrors the bench harness's ``e2e-autoack`` and ``publish-16`` scenarios (1 publisher
connection, direct exchange ``bench.direct`` -> 1 fresh queue, 16-byte bodies, N = 200,000),
which cannot set message properties, in three variants:

- ``plain``: no TTL at all,
- ``expiration``: every message carries a per-message TTL (the ``expiration`` property,
  ``--expiration``, default "60000" ms, so nothing expires during a run),
- ``queue-ttl``: the queue is declared with ``x-message-ttl`` (``--queue-ttl``, default 60000).

For each variant and round it measures:

- ``e2e``: 1 autoack consumer connection is attached to the fresh queue, then the publisher
  writes all N messages; msg/s is N over the time from the first write to the last delivery,
- ``publish``: N messages into the fresh queue with no consumer; msg/s is N over the time from
  the first write until a passive ``queue.declare`` reports all N in the queue.

Rounds interleave the variants (plain, expiration, queue-ttl, plain, ...) so that other load on
the host hits them alike; the summary gives medians. Each result also has the broker's CPU
(% of one core; the broker is found as the owner of the listening socket, or ``--broker-pid``),
this client's CPU and ``other_cpu_pct`` (everything else on the host), like the harness.

The client stays out of the way: publish frames are built once with ``wire.frames`` and
``wire.spec`` and written in 256 KiB slices over a raw socket, and the consumer only walks frame
headers, counting ``basic.deliver`` method frames.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import struct
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from dispatchd.wire import spec
from dispatchd.wire.frames import (
    FRAME_METHOD,
    PROTOCOL_HEADER,
    FrameReader,
    content_frames,
    method_frame,
)

VARIANTS = ("plain", "expiration", "queue-ttl")
MODES = ("e2e", "publish")
EXCHANGE = "bench.direct"
WRITE_SLICE = 256 * 1024
RECV_SIZE = 1 << 20
_HEAD = struct.Struct(">BHI")
_DELIVER_IDS = b"\x00\x3c\x00\x3c"  # class 60, method 60: basic.deliver
_CLK_TCK = os.sysconf("SC_CLK_TCK")
M = TypeVar("M", bound=spec.Method)


class BenchError(RuntimeError):
    """The broker closed something, or answered unexpectedly."""


class Connection:
    """A minimal blocking AMQP 0-9-1 connection with channel 1 open (guest/guest, vhost /);
    over TLS with ``context`` (the server verified as ``localhost``)."""

    def __init__(
        self, port: int, timeout: float = 10.0, context: ssl.SSLContext | None = None
    ) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(sock, server_hostname="localhost") if context else sock
        self.reader = FrameReader(0)
        self.held: list[tuple[int, int, bytes]] = []
        self.sock.sendall(PROTOCOL_HEADER)
        self.expect(spec.ConnectionStart, channel=0)
        self.send(
            0,
            spec.ConnectionStartOk(
                client_properties={"product": "bench_ttl"},
                mechanism="PLAIN",
                response=b"\x00guest\x00guest",
                locale="en_US",
            ),
        )
        tune = self.expect(spec.ConnectionTune, channel=0)
        self.frame_max = min(tune.frame_max or 131072, 131072)
        self.send(0, spec.ConnectionTuneOk(tune.channel_max, self.frame_max, 0))
        self.send(0, spec.ConnectionOpen(virtual_host="/"))
        self.expect(spec.ConnectionOpenOk, channel=0)
        self.rpc(spec.ChannelOpen(), spec.ChannelOpenOk)

    def send(self, channel: int, method: spec.Method) -> None:
        """Send one method frame."""
        self.sock.sendall(method_frame(channel, method.encode()))

    def _frame(self) -> tuple[int, int, bytes]:
        while not self.held:
            data = self.sock.recv(65536)
            if not data:
                raise BenchError("broker closed the TCP connection")
            self.held.extend(self.reader.feed(data))
        return self.held.pop(0)

    def expect(self, kind: type[M], channel: int = 1) -> M:
        """The next method frame, which must be ``kind`` (a close is reported as an error)."""
        while True:
            frame_type, frame_channel, payload = self._frame()
            if frame_type != FRAME_METHOD:
                continue  # heartbeats; no content is expected on a control path
            method = spec.decode_method(payload)
            if isinstance(method, spec.ConnectionClose | spec.ChannelClose):
                raise BenchError(f"{method.NAME} {method.reply_code} {method.reply_text}")
            if isinstance(method, kind) and frame_channel == channel:
                return method
            raise BenchError(f"expected {kind.NAME}, got {method!r}")

    def rpc(self, method: spec.Method, reply: type[M]) -> M:
        """Send a method on channel 1 and wait for its reply."""
        self.send(1, method)
        return self.expect(reply)

    def close(self) -> None:
        """Close politely (best effort) and drop the socket."""
        try:
            self.send(0, spec.ConnectionClose(200, "bye", 0, 0))
            self.sock.settimeout(2.0)
            self.expect(spec.ConnectionCloseOk, channel=0)
        except (OSError, BenchError):
            pass
        finally:
            self.sock.close()


def publish_blob(
    queue: str, count: int, size: int, expiration: str | None, frame_max: int
) -> bytes:
    """``count`` basic.publish commands to ``queue`` via bench.direct, as one byte string."""
    props = spec.BasicProperties(delivery_mode=1, expiration=expiration).encode()
    one = method_frame(1, spec.BasicPublish(exchange=EXCHANGE, routing_key=queue).encode())
    one += content_frames(1, 60, props, b"x" * size, frame_max)
    return one * count


def write_all(sock: socket.socket, blob: bytes) -> None:
    """Write ``blob`` in big slices (the broker's TCP backpressure paces us)."""
    view = memoryview(blob)
    for start in range(0, len(view), WRITE_SLICE):
        sock.sendall(view[start : start + WRITE_SLICE])


def count_deliveries(sock: socket.socket, expected: int, stamps: list[float]) -> None:
    """Read until ``expected`` basic.deliver frames came; append the time of the last one.

    Only frame headers are looked at (plus the 4 id bytes of method frames).
    """
    head = _HEAD.unpack_from
    buf = bytearray()
    count = 0
    while count < expected:
        data = sock.recv(RECV_SIZE)
        if not data:
            raise BenchError(f"consumer connection closed after {count} deliveries")
        buf += data
        end = len(buf)
        pos = 0
        while end - pos >= 7:
            frame_type, _channel, size = head(buf, pos)
            stop = pos + 8 + size
            if stop > end:
                break
            if frame_type == FRAME_METHOD:
                if buf[pos + 7 : pos + 11] != _DELIVER_IDS:
                    method = spec.decode_method(bytes(buf[pos + 7 : stop - 1]))
                    raise BenchError(f"consumer got {method!r} after {count} deliveries")
                count += 1
            pos = stop
        del buf[:pos]
    stamps.append(time.perf_counter())


def find_broker_pid(port: int) -> int | None:
    """The pid owning the socket listening on 127.0.0.1:``port`` (None if not found)."""
    want = f"0100007F:{port:04X}"
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == want and fields[3] == "0A":
            inode = fields[9]
            break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == target:
                    return int(proc.name)
        except OSError:
            continue
    return None


class CpuMeter:
    """CPU of the broker, of this process and of everything else between start and stop."""

    def __init__(self, broker_pid: int | None) -> None:
        self.broker_pid = broker_pid
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
        ticks = [int(v) for v in fields]
        busy = (sum(ticks) - ticks[3] - ticks[4]) / _CLK_TCK
        broker = 0.0
        if self.broker_pid is not None:
            stat = Path(f"/proc/{self.broker_pid}/stat").read_text()
            parts = stat.rsplit(")", 1)[1].split()
            broker = (int(parts[11]) + int(parts[12])) / _CLK_TCK
        return time.perf_counter(), busy, broker, time.process_time()

    def stop(self) -> dict[str, float]:
        """Percentages of one core since construction: broker, client, other."""
        end = self._sample()
        wall, busy, broker, client = (b - a for a, b in zip(self.start, end, strict=True))
        other = max(0.0, busy - broker - client)
        return {
            "broker_cpu_pct": 100 * broker / wall if self.broker_pid is not None else -1.0,
            "client_cpu_pct": 100 * client / wall,
            "other_cpu_pct": 100 * other / wall,
        }


@dataclass
class Result:
    """One measured run."""

    mode: str
    variant: str
    round: int
    count: int
    secs: float
    msg_s: float
    send_msg_s: float
    broker_cpu_pct: float
    client_cpu_pct: float
    other_cpu_pct: float


def queue_arguments(variant: str, queue_ttl: int) -> dict[str, object]:
    """The queue.declare arguments of a variant."""
    return {"x-message-ttl": queue_ttl} if variant == "queue-ttl" else {}


def run_once(args: argparse.Namespace, mode: str, variant: str, rnd: int) -> Result:
    """Measure one mode/variant on a fresh queue, then delete the queue."""
    queue = f"bench.ttl.{os.getpid()}.{mode}.{variant}.{rnd}"
    expiration = args.expiration if variant == "expiration" else None
    pub = Connection(args.port)
    consumer: Connection | None = None
    try:
        pub.rpc(
            spec.ExchangeDeclare(exchange=EXCHANGE, type="direct", durable=True),
            spec.ExchangeDeclareOk,
        )
        pub.rpc(
            spec.QueueDeclare(queue=queue, arguments=queue_arguments(variant, args.queue_ttl)),
            spec.QueueDeclareOk,
        )
        pub.rpc(spec.QueueBind(queue=queue, exchange=EXCHANGE, routing_key=queue), spec.QueueBindOk)
        blob = publish_blob(queue, args.count, args.size, expiration, pub.frame_max)
        stamps: list[float] = []
        errors: list[BaseException] = []
        thread: threading.Thread | None = None
        if mode == "e2e":
            consumer = Connection(args.port)
            consumer.rpc(spec.BasicConsume(queue=queue, no_ack=True), spec.BasicConsumeOk)
            sock = consumer.sock
            sock.settimeout(args.time)

            def consume() -> None:
                try:
                    count_deliveries(sock, args.count, stamps)
                except BaseException as exc:  # reported by the main thread
                    errors.append(exc)

            thread = threading.Thread(target=consume, daemon=True)
            thread.start()
        meter = CpuMeter(args.broker_pid)
        start = time.perf_counter()
        write_all(pub.sock, blob)
        sent = time.perf_counter()
        if thread is not None:
            thread.join(args.time)
            if errors:
                raise BenchError(f"consumer: {errors[0]}")
            if not stamps:
                raise BenchError(f"e2e not complete within {args.time} s")
            end = stamps[0]
        else:
            deadline = start + args.time
            while True:
                ok = pub.rpc(spec.QueueDeclare(queue=queue, passive=True), spec.QueueDeclareOk)
                if ok.message_count >= args.count:
                    end = time.perf_counter()
                    break
                if time.perf_counter() > deadline:
                    raise BenchError(f"only {ok.message_count} in the queue after {args.time} s")
                time.sleep(0.002)
        cpu = meter.stop()
        secs = end - start
        if consumer is not None:
            consumer.close()
            consumer = None
        pub.rpc(spec.QueueDelete(queue=queue), spec.QueueDeleteOk)
        return Result(
            mode,
            variant,
            rnd,
            args.count,
            secs,
            args.count / secs,
            args.count / (sent - start),
            cpu["broker_cpu_pct"],
            cpu["client_cpu_pct"],
            cpu["other_cpu_pct"],
        )
    finally:
        if consumer is not None:
            consumer.close()
        pub.close()


def summarize(results: list[Result]) -> list[dict[str, object]]:
    """Medians per mode and variant, with the ratio to ``plain`` of the same mode."""
    rows: list[dict[str, object]] = []
    for mode in MODES:
        base = None
        for variant in VARIANTS:
            runs = [r for r in results if r.mode == mode and r.variant == variant]
            if not runs:
                continue
            row: dict[str, object] = {"mode": mode, "variant": variant, "runs": len(runs)}
            for key in ("msg_s", "broker_cpu_pct", "client_cpu_pct", "other_cpu_pct"):
                row[key] = statistics.median(getattr(r, key) for r in runs)
            rate = float(row["msg_s"])  # type: ignore[arg-type]
            if variant == "plain":
                base = rate
            row["vs_plain"] = rate / base if base else None
            rows.append(row)
    return rows


def main() -> None:
    """Run the rounds and print one line per run, then the medians."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--expiration", default="60000", help="per-message TTL (ms, a string)")
    parser.add_argument("--queue-ttl", type=int, default=60000, help="x-message-ttl (ms)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--time", type=float, default=60.0, help="give up a run after S s")
    parser.add_argument("--broker-pid", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()
    if args.broker_pid is None:
        args.broker_pid = find_broker_pid(args.port)
    variants = [v for v in args.variants.split(",") if v]
    modes = [m for m in args.modes.split(",") if m]
    for name in variants:
        if name not in VARIANTS:
            parser.error(f"unknown variant {name!r}")
    for name in modes:
        if name not in MODES:
            parser.error(f"unknown mode {name!r}")
    results: list[Result] = []
    for rnd in range(1, args.rounds + 1):
        for mode in modes:
            for variant in variants:
                result = run_once(args, mode, variant, rnd)
                results.append(result)
                line = asdict(result)
                if args.json:
                    print(json.dumps({"kind": "run", **line}), flush=True)
                else:
                    print(
                        f"round {rnd} {mode:<8} {variant:<11} {result.msg_s:>9,.0f} msg/s  "
                        f"broker {result.broker_cpu_pct:5.1f}%  client "
                        f"{result.client_cpu_pct:5.1f}%  other {result.other_cpu_pct:5.1f}%",
                        flush=True,
                    )
    for row in summarize(results):
        if args.json:
            print(json.dumps({"kind": "median", **row}), flush=True)
        else:
            ratio = row["vs_plain"]
            versus = f"vs plain {ratio:.3f}" if isinstance(ratio, float) else "no plain run"
            print(
                f"median {row['mode']:<8} {row['variant']:<11} {row['msg_s']:>9,.0f} msg/s  "
                f"broker {row['broker_cpu_pct']:5.1f}%  client {row['client_cpu_pct']:5.1f}%  "
                f"other {row['other_cpu_pct']:5.1f}%  {versus}  ({row['runs']} runs)"
            )


if __name__ == "__main__":
    main()
