"""Base classes, errors and content-header framing shared by the generated ``wire.spec``."""

from __future__ import annotations

from struct import Struct
from typing import ClassVar

Buffer = bytes | bytearray | memoryview

_CONTENT_HEADER = Struct(">HHQ")


class MethodDecodeError(ValueError):
    """A method frame payload could not be decoded; closes the connection with FRAME_ERROR."""

    reply_code: int = 501  # FRAME_ERROR

    def __init__(self, class_id: int | None, method_id: int | None, reason: object) -> None:
        self.class_id = class_id
        self.method_id = method_id
        self.reason = str(reason)
        super().__init__(f"cannot decode method ({class_id}, {method_id}): {reason}")


class UnknownMethod(MethodDecodeError):
    """A method frame named a class id / method id pair that the spec does not define."""

    reply_code = 503  # COMMAND_INVALID

    def __init__(self, class_id: int, method_id: int) -> None:
        super().__init__(class_id, method_id, "unknown method")


class ContentHeaderDecodeError(ValueError):
    """A content header frame or its property list could not be decoded (FRAME_ERROR)."""

    reply_code: int = 501  # FRAME_ERROR

    def __init__(self, class_id: int | None, reason: object) -> None:
        self.class_id = class_id
        self.reason = str(reason)
        super().__init__(f"cannot decode content header (class {class_id}): {reason}")


class Record:
    """A fixed set of named fields (``FIELDS``) with value equality and a readable repr."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS)
        return f"{type(self).__name__}({args})"


class Method(Record):
    """An AMQP method: its ids and spec metadata as class attributes, arguments as slots."""

    __slots__ = ()
    CLASS_ID: ClassVar[int]
    METHOD_ID: ClassVar[int]
    INDEX: ClassVar[int]  # (CLASS_ID << 16) | METHOD_ID
    NAME: ClassVar[str]  # 'basic.publish'
    SYNCHRONOUS: ClassVar[bool]  # as the XML has it: set on both halves of a request/reply
    RESPONSES: ClassVar[tuple[int, ...]]  # INDEX of each possible reply
    HAS_CONTENT: ClassVar[bool]

    def encode(self) -> bytes:
        """Return the method frame payload: class id, method id and the arguments."""
        raise NotImplementedError

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 4) -> Method:
        """Decode the arguments starting at ``offset`` (after the ids) to the end of ``buf``."""
        raise NotImplementedError

    @classmethod
    def malformed(cls, reason: object) -> MethodDecodeError:
        """Return the error to raise when this method's arguments cannot be decoded."""
        return MethodDecodeError(cls.CLASS_ID, cls.METHOD_ID, reason)


def encode_content_header(class_id: int, body_size: int, raw_properties: bytes) -> bytes:
    """Return a content header frame payload: class id, weight 0, body size, properties."""
    return _CONTENT_HEADER.pack(class_id, 0, body_size) + raw_properties


def decode_content_header(payload: Buffer) -> tuple[int, int, bytes]:
    """Split a content header frame payload into (class id, body size, raw properties).

    The properties stay raw; decode them with ``BasicProperties.decode`` when needed.
    """
    if len(payload) < 14:  # ids, weight, body size and at least one property flag word
        raise ContentHeaderDecodeError(None, f"{len(payload)} bytes is too short")
    class_id, _weight, body_size = _CONTENT_HEADER.unpack_from(payload)
    return class_id, body_size, bytes(payload[12:])
