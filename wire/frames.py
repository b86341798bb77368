"""AMQP frames: the reader that splits a byte stream into frames, and frame builders.

A frame is ``type:u8 channel:u16 size:u32 payload frame-end(0xCE)``. Builders return bytes
ready for the transport; content is split into body frames at the negotiated frame-max.
The frame types, frame-end octet and protocol header come from the generated ``wire.spec``
(and are importable from here too).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from dispatchd.wire.errors import bad_frame_end, frame_too_large
from dispatchd.wire.spec import FRAME_BODY as FRAME_BODY
from dispatchd.wire.spec import FRAME_END as FRAME_END
from dispatchd.wire.spec import FRAME_HEADER as FRAME_HEADER
from dispatchd.wire.spec import FRAME_HEARTBEAT as FRAME_HEARTBEAT
from dispatchd.wire.spec import FRAME_METHOD as FRAME_METHOD
from dispatchd.wire.spec import PROTOCOL_HEADER as PROTOCOL_HEADER
from dispatchd.wire.spec import BasicDeliver

_HEAD = struct.Struct(">BHI")
_CONTENT_HEAD = struct.Struct(">BHIHHQ")  # frame head + class, weight, body size
_DELIVER = struct.Struct(">BHIHH")  # frame head + class/method ids of basic.deliver
_U64 = struct.Struct(">Q")
_BASIC = BasicDeliver.CLASS_ID
_DELIVER_ID = BasicDeliver.METHOD_ID

FRAME_END_BYTE = bytes((FRAME_END,))
FRAME_OVERHEAD = _HEAD.size + 1  # 7 header bytes + the frame-end octet
HEARTBEAT_FRAME = _HEAD.pack(FRAME_HEARTBEAT, 0, 0) + FRAME_END_BYTE


def frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    """One frame around a payload."""
    return _HEAD.pack(frame_type, channel, len(payload)) + payload + FRAME_END_BYTE


def method_frame(channel: int, payload: bytes) -> bytes:
    """A method frame around an encoded method payload."""
    return _HEAD.pack(FRAME_METHOD, channel, len(payload)) + payload + FRAME_END_BYTE


def content_frames(
    channel: int, class_id: int, raw_properties: bytes, body: bytes, frame_max: int
) -> bytes:
    """The header frame and as many body frames as ``body`` needs at ``frame_max``."""
    size = len(body)
    parts = [
        _CONTENT_HEAD.pack(FRAME_HEADER, channel, 12 + len(raw_properties), class_id, 0, size),
        raw_properties,
        FRAME_END_BYTE,
    ]
    if size:
        chunk = frame_max - FRAME_OVERHEAD
        if size <= chunk:
            parts += (_HEAD.pack(FRAME_BODY, channel, size), body, FRAME_END_BYTE)
        else:
            view = memoryview(body)
            for start in range(0, size, chunk):
                piece = view[start : start + chunk]
                parts += (_HEAD.pack(FRAME_BODY, channel, len(piece)), piece, FRAME_END_BYTE)
    return b"".join(parts)


def deliver_frames(
    channel: int,
    consumer_tag: bytes,
    delivery_tag: int,
    redelivered: bool,
    exchange: bytes,
    routing_key: bytes,
    raw_properties: bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """basic.deliver + content, built in one go (the hottest encoder in the broker).

    ``consumer_tag``, ``exchange`` and ``routing_key`` are pre-encoded short strings
    (``fields.encode_shortstr``: length byte included), as callers cache them.
    """
    args = (
        consumer_tag
        + _U64.pack(delivery_tag)
        + (b"\x01" if redelivered else b"\x00")
        + exchange
        + routing_key
    )
    head = _DELIVER.pack(FRAME_METHOD, channel, 4 + len(args), _BASIC, _DELIVER_ID)
    content = content_frames(channel, _BASIC, raw_properties, body, frame_max)
    return head + args + FRAME_END_BYTE + content


class FrameReader:
    """Splits received bytes into ``(type, channel, payload)`` frames.

    Raises :class:`FatalFrameError` (501 FRAME_ERROR) for a payload larger than ``frame_max``
    (RabbitMQ allows the payload itself to be frame-max octets: old Java clients forgot the
    8 octets of framing) or a frame-end octet other than 0xCE. ``frame_max`` 0 means no limit.
    Frames are consumed as they are yielded, so a consumer may stop part-way and feed more later.
    """

    __slots__ = ("_buf", "frame_max")

    def __init__(self, frame_max: int) -> None:
        self._buf = bytearray()
        self.frame_max = frame_max

    def feed(self, data: bytes) -> Iterator[tuple[int, int, bytes]]:
        """Add bytes and yield every complete frame now available."""
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        unpack = _HEAD.unpack_from
        limit = self.frame_max or 0xFFFFFFFF
        try:
            while end - pos >= 7:
                frame_type, channel, size = unpack(buf, pos)
                if size > limit:
                    raise frame_too_large(frame_type, size, self.frame_max)
                stop = pos + 7 + size
                if stop >= end:
                    break
                payload = bytes(buf[pos + 7 : stop])
                if buf[stop] != FRAME_END:
                    raise bad_frame_end(frame_type, payload, buf[stop])
                pos = stop + 1
                yield frame_type, channel, payload
        finally:
            if pos:
                del buf[:pos]

    def hold(self, data: bytes) -> None:
        """Add bytes without reading them (the connection is blocked)."""
        self._buf += data

    def discard(self) -> None:
        """Forget buffered bytes (the stream is out of step, or the connection is closing)."""
        self._buf.clear()

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)
