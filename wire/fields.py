"""AMQP 0-9-1 field tables and arrays, with RabbitMQ's type tags.

Types that plain Python values cannot tell apart decode to small marker subclasses
(``Int8``, ``UInt32``, ``Float32``, ``Timestamp``, ``ByteArray`` ...) that encode with
their own tag, so decoding then re-encoding gives back the same bytes. (Two exceptions: a
bool octet other than 0/1 reads as True, as in RabbitMQ, and a float32 signalling NaN is
quieted by the float conversion.) Plain values encode as: bool 't', int 'I' (or 'l' past
int32, like pika), float 'd', Decimal 'D', str and bytes 'S', None 'V', dict 'F',
list/tuple 'A', datetime 'T'. A decoded 'S' is a str when it is valid UTF-8, else bytes.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from struct import Struct
from struct import error as StructError
from typing import Any

Buffer = bytes | bytearray | memoryview


class FieldDecodeError(ValueError):
    """A field table or array could not be decoded (truncated, bad tag, bad size)."""


class FieldEncodeError(ValueError):
    """A value cannot be encoded as an AMQP field (unsupported type or out of range)."""


class _Marker:
    """Mixin giving the marker types a repr that shows the wire type."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({super().__repr__()})"


class Int8(_Marker, int):
    """A signed 8-bit integer field ('b')."""

    __slots__ = ()


class UInt8(_Marker, int):
    """An unsigned 8-bit integer field ('B')."""

    __slots__ = ()


class Int16(_Marker, int):
    """A signed 16-bit integer field ('s')."""

    __slots__ = ()


class UInt16(_Marker, int):
    """An unsigned 16-bit integer field ('u')."""

    __slots__ = ()


class Int32(_Marker, int):
    """A signed 32-bit integer field ('I'); in-range plain ints encode the same way."""

    __slots__ = ()


class UInt32(_Marker, int):
    """An unsigned 32-bit integer field ('i')."""

    __slots__ = ()


class Int64(_Marker, int):
    """A signed 64-bit integer field ('l'), even when the value would fit in 32 bits."""

    __slots__ = ()


class Float32(_Marker, float):
    """A single-precision float field ('f')."""

    __slots__ = ()


class Timestamp(_Marker, int):
    """A timestamp field ('T'): whole seconds since the Unix epoch."""

    __slots__ = ()

    def to_datetime(self) -> datetime:
        """Return the timestamp as an aware UTC datetime."""
        return datetime.fromtimestamp(self, UTC)


class ByteArray(_Marker, bytes):
    """A byte array field ('x'), as opposed to a long string ('S')."""

    __slots__ = ()


# Fixed-size types: tag, marker class, struct format. 'I' and 'd' decode to plain int and
# float, which encode back to the same tag.
_FIXED_TYPES = (
    ("b", Int8, "b"),
    ("B", UInt8, "B"),
    ("s", Int16, "h"),
    ("u", UInt16, "H"),
    ("I", Int32, "i"),
    ("i", UInt32, "I"),
    ("l", Int64, "q"),
    ("f", Float32, "f"),
    ("d", float, "d"),
    ("T", Timestamp, "Q"),
)
_DECODE_FIXED: dict[int, tuple[type, Struct]] = {
    ord(tag): (int if cls is Int32 else cls, Struct(">" + fmt)) for tag, cls, fmt in _FIXED_TYPES
}
_ENCODE_FIXED: dict[type, tuple[int, Struct]] = {
    cls: (ord(tag), Struct(">B" + fmt)) for tag, cls, fmt in _FIXED_TYPES
}

_U8 = Struct(">B")
_U32 = Struct(">I")
_TAG_U32 = Struct(">BI")
_TAG_I32 = Struct(">Bi")
_TAG_I64 = Struct(">Bq")
_TAG_U64 = Struct(">BQ")
_TAG_DECIMAL = Struct(">BBi")
_DECIMAL = Struct(">Bi")


# --- decoding -------------------------------------------------------------------------


# The decoders below take bytes or bytearray (the public functions convert a memoryview)
# and rely on their callers for bounds: slicing past the end of the buffer silently gives
# a short string, but then the offset passes the end of the enclosing table or array,
# which fails its final size check.


def _decode_value(buf: bytes | bytearray, offset: int) -> tuple[Any, int]:
    tag = buf[offset]
    offset += 1
    if tag == 0x53:  # 'S'
        start = offset + 4
        end = start + _U32.unpack_from(buf, offset)[0]
        raw = buf[start:end]
        try:
            return raw.decode(), end
        except UnicodeDecodeError:
            return bytes(raw), end
    fixed = _DECODE_FIXED.get(tag)
    if fixed is not None:
        cls, st = fixed
        return cls(st.unpack_from(buf, offset)[0]), offset + st.size
    if tag == 0x74:  # 't'
        return buf[offset] != 0, offset + 1
    if tag == 0x46:  # 'F'
        return _decode_table(buf, offset)
    if tag == 0x41:  # 'A'
        return _decode_array(buf, offset)
    if tag == 0x56:  # 'V'
        return None, offset
    if tag == 0x78:  # 'x'
        start = offset + 4
        end = start + _U32.unpack_from(buf, offset)[0]
        return ByteArray(buf[start:end]), end
    if tag == 0x44:  # 'D'
        scale, raw = _DECIMAL.unpack_from(buf, offset)
        return Decimal(raw).scaleb(-scale), offset + 5
    raise FieldDecodeError(f"unknown field type tag {bytes([tag])!r}")


def _limit(buf: bytes | bytearray, offset: int) -> tuple[int, int]:
    start = offset + 4
    limit = start + _U32.unpack_from(buf, offset)[0]
    if limit > len(buf):
        raise FieldDecodeError("table or array runs past the end of the buffer")
    return start, limit


def _decode_table(buf: bytes | bytearray, offset: int) -> tuple[dict[str | bytes, Any], int]:
    offset, limit = _limit(buf, offset)
    table = {}
    while offset < limit:
        end = offset + 1 + buf[offset]
        key = buf[offset + 1 : end]
        try:
            key = key.decode()
        except UnicodeDecodeError:
            key = bytes(key)
        table[key], offset = _decode_value(buf, end)
    if offset != limit:
        raise FieldDecodeError("table contents overrun its declared size")
    return table, offset


def _decode_array(buf: bytes | bytearray, offset: int) -> tuple[list[Any], int]:
    offset, limit = _limit(buf, offset)
    array = []
    while offset < limit:
        value, offset = _decode_value(buf, offset)
        array.append(value)
    if offset != limit:
        raise FieldDecodeError("array contents overrun its declared size")
    return array, offset


def _guarded(decode: Callable[[bytes | bytearray, int], Any], buf: Buffer, offset: int) -> Any:
    if type(buf) is memoryview:
        buf = buf.tobytes()
    try:
        value, end = decode(buf, offset)
    except (StructError, IndexError, RecursionError) as exc:
        raise FieldDecodeError(f"malformed field data: {exc}") from None
    if end > len(buf):
        raise FieldDecodeError("field value runs past the end of the buffer")
    return value, end


def decode_table(buf: Buffer, offset: int = 0) -> tuple[dict[str | bytes, Any], int]:
    """Decode a length-prefixed field table at ``offset``; return it and the offset after it."""
    return _guarded(_decode_table, buf, offset)


def decode_array(buf: Buffer, offset: int = 0) -> tuple[list[Any], int]:
    """Decode a length-prefixed field array at ``offset``; return it and the offset after it."""
    return _guarded(_decode_array, buf, offset)


def decode_value(buf: Buffer, offset: int = 0) -> tuple[Any, int]:
    """Decode one tagged field value at ``offset``; return it and the offset after it."""
    return _guarded(_decode_value, buf, offset)


# --- encoding -------------------------------------------------------------------------

_Encoder = Callable[[bytearray, Any], None]


def _encode_str(out: bytearray, value: str) -> None:
    raw = value.encode()
    out += _TAG_U32.pack(0x53, len(raw))
    out += raw


def _encode_bytes(out: bytearray, value: bytes) -> None:
    out += _TAG_U32.pack(0x53, len(value))
    out += value


def _encode_byte_array(out: bytearray, value: bytes) -> None:
    out += _TAG_U32.pack(0x78, len(value))
    out += value


def _encode_bool(out: bytearray, value: bool) -> None:
    out += b"t\x01" if value else b"t\x00"


def _encode_int(out: bytearray, value: int) -> None:
    if -0x80000000 <= value <= 0x7FFFFFFF:
        out += _TAG_I32.pack(0x49, value)
    else:
        out += _TAG_I64.pack(0x6C, value)


def _encode_decimal(out: bytearray, value: Decimal) -> None:
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise FieldEncodeError(f"cannot encode {value!r} as an AMQP decimal")
    scale = max(0, -exponent)
    out += _TAG_DECIMAL.pack(0x44, scale, int(value.scaleb(scale)))


def _encode_datetime(out: bytearray, value: datetime) -> None:
    out += _TAG_U64.pack(0x54, calendar.timegm(value.utctimetuple()))


def _encode_none(out: bytearray, value: None) -> None:
    out.append(0x56)


def _encode_table(out: bytearray, table: Mapping[str | bytes, Any]) -> None:
    start = len(out)
    out += b"\0\0\0\0"
    for key, value in table.items():
        name = key.encode() if type(key) is str else _name_bytes(key)
        if len(name) > 255:
            raise FieldEncodeError(f"field name longer than 255 bytes: {key!r}")
        out.append(len(name))
        out += name
        (_ENCODERS.get(type(value)) or _encoder_for(type(value)))(out, value)
    _U32.pack_into(out, start, len(out) - start - 4)


def _name_bytes(key: object) -> bytes:
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, bytes | bytearray):
        return key
    raise FieldEncodeError(f"field names are str (or bytes), not {type(key).__name__}")


def _encode_tagged_table(out: bytearray, table: Mapping[str | bytes, Any]) -> None:
    out.append(0x46)
    _encode_table(out, table)


def _encode_array(out: bytearray, array: Sequence[Any]) -> None:
    start = len(out)
    out += b"\0\0\0\0"
    for value in array:
        (_ENCODERS.get(type(value)) or _encoder_for(type(value)))(out, value)
    _U32.pack_into(out, start, len(out) - start - 4)


def _encode_tagged_array(out: bytearray, array: Sequence[Any]) -> None:
    out.append(0x41)
    _encode_array(out, array)


def _fixed_encoder(tag: int, st: Struct) -> _Encoder:
    def encode(out: bytearray, value: Any) -> None:
        out += st.pack(tag, value)

    return encode


_ENCODERS: dict[type, _Encoder] = {
    str: _encode_str,
    bytes: _encode_bytes,
    bytearray: _encode_bytes,
    bool: _encode_bool,
    int: _encode_int,
    Decimal: _encode_decimal,
    datetime: _encode_datetime,
    type(None): _encode_none,
    dict: _encode_tagged_table,
    list: _encode_tagged_array,
    tuple: _encode_tagged_array,
    ByteArray: _encode_byte_array,
}
_ENCODERS.update((cls, _fixed_encoder(tag, st)) for cls, (tag, st) in _ENCODE_FIXED.items())


def _encoder_for(cls: type) -> _Encoder:
    """Find the encoder of the nearest supported base class (IntEnum, OrderedDict, ...)."""
    for base in cls.__mro__:
        encoder = _ENCODERS.get(base)
        if encoder is not None:
            _ENCODERS[cls] = encoder
            return encoder
    if issubclass(cls, Mapping):
        _ENCODERS[cls] = _encode_tagged_table
        return _encode_tagged_table
    raise FieldEncodeError(f"cannot encode a {cls.__name__} as an AMQP field")


def _encode_value(out: bytearray, value: Any) -> None:
    (_ENCODERS.get(type(value)) or _encoder_for(type(value)))(out, value)


def _encoded(encode: _Encoder, value: Any) -> bytes:
    out = bytearray()
    try:
        encode(out, value)
    except (StructError, OverflowError, UnicodeEncodeError, RecursionError) as exc:
        raise FieldEncodeError(f"cannot encode {value!r}: {exc}") from None
    return bytes(out)


def encode_table(table: Mapping[str | bytes, Any] | None) -> bytes:
    """Encode a mapping as a field table, with its uint32 length prefix (None is empty)."""
    if not table:
        return b"\0\0\0\0"
    return _encoded(_encode_table, table)


def encode_array(array: Sequence[Any]) -> bytes:
    """Encode a sequence as a field array, with its uint32 length prefix."""
    return _encoded(_encode_array, array)


def encode_value(value: Any) -> bytes:
    """Encode one value as a tagged field value."""
    return _encoded(_encode_value, value)


# --- short and long strings -----------------------------------------------------------

# Every length octet, premade: indexing this list is faster than packing (or bytes((n,))).
_LENGTH_OCTETS = [bytes((n,)) for n in range(256)]


def encode_shortstr(value: str) -> bytes:
    """Encode a str as a shortstr: its length octet, then its UTF-8 (at most 255 bytes).

    The one shortstr encoder: the generated codec calls it for every shortstr argument and
    property. Longer text raises FieldEncodeError.
    """
    raw = value.encode(errors="surrogateescape")  # property bytes that were not UTF-8
    try:
        return _LENGTH_OCTETS[len(raw)] + raw
    except IndexError:  # the length does not fit its octet
        raise FieldEncodeError(f"shortstr longer than 255 bytes: {value[:40]!r}...") from None


def decode_shortstr(buf: Buffer, offset: int = 0) -> tuple[str, int]:
    """Decode a UTF-8 shortstr at ``offset``; return it and the offset after it."""
    try:
        end = offset + 1 + buf[offset]
        if end > len(buf):
            raise FieldDecodeError("shortstr runs past the end of the buffer")
        return str(buf[offset + 1 : end], "utf-8"), end
    except (IndexError, UnicodeDecodeError) as exc:
        raise FieldDecodeError(f"malformed shortstr: {exc}") from None


def encode_longstr(value: bytes) -> bytes:
    """Encode bytes as a longstr (uint32 length + data)."""
    return _U32.pack(len(value)) + value


def decode_longstr(buf: Buffer, offset: int = 0) -> tuple[bytes, int]:
    """Decode a longstr at ``offset`` as bytes; return it and the offset after it."""
    try:
        start = offset + 4
        end = start + _U32.unpack_from(buf, offset)[0]
    except StructError as exc:
        raise FieldDecodeError(f"malformed longstr: {exc}") from None
    if end > len(buf):
        raise FieldDecodeError("longstr runs past the end of the buffer")
    return bytes(buf[start:end]), end
