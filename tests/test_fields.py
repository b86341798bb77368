"""Field tables and arrays: round trips, byte identity, pika compatibility, malformed input."""

from __future__ import annotations

import calendar
import math
import struct
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum

import pika.data
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatchd.wire.fields import (
    ByteArray,
    FieldDecodeError,
    FieldEncodeError,
    Float32,
    Int8,
    Int16,
    Int32,
    Int64,
    Timestamp,
    UInt8,
    UInt16,
    UInt32,
    decode_array,
    decode_longstr,
    decode_shortstr,
    decode_table,
    decode_value,
    encode_array,
    encode_longstr,
    encode_shortstr,
    encode_table,
    encode_value,
)

keys = st.text(max_size=20)
int32s = st.integers(-(2**31), 2**31 - 1)
int64s = st.integers(-(2**63), 2**63 - 1)
decimals = st.builds(lambda raw, scale: Decimal(raw).scaleb(-scale), int32s, st.integers(0, 255))
utc_seconds = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))

# Every wire type, with plain Python values and marker types alike.
leaves = st.one_of(
    st.booleans(),
    int64s,
    st.integers(-128, 127).map(Int8),
    st.integers(0, 255).map(UInt8),
    st.integers(-(2**15), 2**15 - 1).map(Int16),
    st.integers(0, 2**16 - 1).map(UInt16),
    int32s.map(Int32),
    st.integers(0, 2**32 - 1).map(UInt32),
    int64s.map(Int64),
    st.floats(width=32).map(Float32),
    st.floats(),
    decimals,
    st.text(),
    st.binary(),
    st.binary().map(ByteArray),
    st.none(),
    st.integers(0, 2**64 - 1).map(Timestamp),
    utc_seconds,
    st.datetimes(min_value=datetime(1970, 1, 1)),
)
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=5).map(tuple)
        | st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=15,
)
tables = st.dictionaries(keys, values, max_size=8)


def decoded_form(value: object) -> object:
    """What decoding the encoding of ``value`` should give."""
    if isinstance(value, bool) or value is None:
        return value
    if type(value) is Int32:
        return int(value)
    if type(value) is int:
        return value if -(2**31) <= value < 2**31 else Int64(value)
    if isinstance(value, Decimal):
        return value if value.as_tuple().exponent <= 0 else Decimal(int(value))
    if type(value) is bytes:
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    if isinstance(value, datetime):
        return Timestamp(calendar.timegm(value.utctimetuple()))
    if isinstance(value, list | tuple):
        return [decoded_form(v) for v in value]
    if isinstance(value, dict):
        return {k: decoded_form(v) for k, v in value.items()}
    return value


def assert_same(actual: object, expected: object) -> None:
    """Equal values of exactly the same types, all the way down (NaN equals NaN)."""
    assert type(actual) is type(expected), (actual, expected)
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(actual)
    elif isinstance(expected, Decimal):
        assert actual.as_tuple() == expected.as_tuple()
    elif isinstance(expected, list):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            assert_same(a, e)
    elif isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key, e in expected.items():
            assert_same(actual[key], e)
    else:
        assert actual == expected


@given(tables)
def test_value_bytes_value(table):
    data = encode_table(table)
    decoded, offset = decode_table(data, 0)
    assert offset == len(data)
    assert_same(decoded, decoded_form(table))


@given(tables)
def test_bytes_value_bytes(table):
    data = encode_table(table)
    assert encode_table(decode_table(data, 0)[0]) == data


@given(st.lists(values, max_size=8))
def test_arrays_round_trip(array):
    data = encode_array(array)
    decoded, offset = decode_array(data, 0)
    assert offset == len(data)
    assert_same(decoded, decoded_form(array))
    assert encode_array(decoded) == data


@given(values, st.binary(max_size=3))
def test_decode_at_an_offset(value, prefix):
    data = prefix + encode_value(value) + b"trailing"
    decoded, offset = decode_value(data, len(prefix))
    assert_same(decoded, decoded_form(value))
    assert data[offset:] == b"trailing"


@given(values)
def test_memoryview_input(value):
    data = encode_table({"k": value})
    assert_same(decode_table(memoryview(data), 0)[0], decode_table(data, 0)[0])


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (True, b"t\x01"),
        (False, b"t\x00"),
        (Int8(-1), b"b\xff"),
        (UInt8(255), b"B\xff"),
        (Int16(-2), b"s\xff\xfe"),
        (UInt16(65535), b"u\xff\xff"),
        (7, b"I\x00\x00\x00\x07"),
        (-(2**31), b"I\x80\x00\x00\x00"),
        (2**31, b"l\x00\x00\x00\x00\x80\x00\x00\x00"),
        (Int64(1), b"l\x00\x00\x00\x00\x00\x00\x00\x01"),
        (UInt32(2**32 - 1), b"i\xff\xff\xff\xff"),
        (Float32(1.5), b"f?\xc0\x00\x00"),
        (1.5, b"d?\xf8\x00\x00\x00\x00\x00\x00"),
        (Decimal("1.23"), b"D\x02\x00\x00\x00\x7b"),
        (Decimal("-5"), b"D\x00\xff\xff\xff\xfb"),
        ("é", b"S\x00\x00\x00\x02\xc3\xa9"),
        (b"\xff", b"S\x00\x00\x00\x01\xff"),
        (ByteArray(b"ab"), b"x\x00\x00\x00\x02ab"),
        (None, b"V"),
        (Timestamp(1), b"T\x00\x00\x00\x00\x00\x00\x00\x01"),
        (datetime(1970, 1, 1, 0, 0, 2), b"T\x00\x00\x00\x00\x00\x00\x00\x02"),
        ({"a": None}, b"F\x00\x00\x00\x03\x01aV"),
        ([1, None], b"A\x00\x00\x00\x06I\x00\x00\x00\x01V"),
        ((), b"A\x00\x00\x00\x00"),
    ],
)
def test_wire_format(value, encoded):
    assert encode_value(value) == encoded
    assert decode_value(encoded, 0)[1] == len(encoded)


def test_subclasses_of_plain_types_encode_like_their_base():
    class Colour(IntEnum):
        RED = 1

    class Name(str):
        pass

    assert encode_value(Colour.RED) == encode_value(1)
    assert encode_value(Name("x")) == encode_value("x")
    assert encode_table(None) == encode_table({}) == b"\0\0\0\0"


def test_marker_types_repr_and_compare_like_plain_values():
    assert repr(UInt8(3)) == "UInt8(3)"
    assert UInt8(3) == 3 and Float32(0.5) == 0.5 and ByteArray(b"a") == b"a"
    assert Timestamp(0).to_datetime() == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        object(),
        {1: "non-str key"},
        {"x" * 256: 1},
        Int8(128),
        UInt8(-1),
        2**63,
        Float32(1e39),
        Decimal("NaN"),
        Decimal("1E-256"),
        Decimal(2**31),
        "\ud800",
        {1, 2},
    ],
)
def test_unencodable_values_raise_field_encode_error(value):
    with pytest.raises(FieldEncodeError):
        encode_table({"v": value} if not isinstance(value, dict) else value)


# --- pika compatibility (for the types pika supports) ----------------------------------

pika_leaves = st.one_of(
    st.booleans(),
    int64s,
    st.text(),
    decimals.filter(lambda d: abs(d) < 2**31 and d == d),
    st.none(),
    utc_seconds,
)
pika_values = st.recursive(
    pika_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=10,
)
pika_tables = st.dictionaries(keys, pika_values, max_size=6)


def pika_form(value: object) -> object:
    """What pika's decoder gives for our encoding of ``value``."""
    if isinstance(value, Timestamp):
        return value.to_datetime()
    if isinstance(value, list):
        return [pika_form(v) for v in value]
    if isinstance(value, dict):
        return {k: pika_form(v) for k, v in value.items()}
    return value


def pika_encode(table: dict) -> bytes:
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, table)
    return b"".join(pieces)


@given(pika_tables)
def test_pika_decodes_our_encoding(table):
    decoded, offset = pika.data.decode_table(encode_table(table), 0)
    assert offset == len(encode_table(table))
    assert decoded == pika_form(decoded_form(table))


@given(pika_tables)
def test_we_decode_pikas_encoding(table):
    data = pika_encode(table)
    decoded, offset = decode_table(data, 0)
    assert offset == len(data)
    assert pika_form(decoded) == table
    assert encode_table(decoded) == data  # and the bytes survive a round trip through us


@given(st.dictionaries(keys, st.binary(), max_size=4))
def test_pika_bytes_are_byte_arrays(table):
    decoded = decode_table(pika_encode(table), 0)[0]
    assert all(type(v) is ByteArray for v in decoded.values())
    assert pika.data.decode_table(encode_table(decoded), 0)[0] == table


def test_pika_extra_tags_agree():
    data = b"\x00\x00\x00\x15\x01ab\xff\x01bs\xff\xfe\x01cu\x00\x02\x01di\xff\xff\xff\xff"
    assert decode_table(data, 0)[0] == pika.data.decode_table(data, 0)[0]


# --- malformed input --------------------------------------------------------------------


@given(tables.filter(bool), st.data())
def test_truncated_tables_raise(table, data):
    encoded = encode_table(table)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(FieldDecodeError):
        decode_table(encoded[:cut], 0)


@given(st.lists(values, min_size=1, max_size=4), st.data())
def test_truncated_arrays_raise(array, data):
    encoded = encode_array(array)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(FieldDecodeError):
        decode_array(encoded[:cut], 0)


def decode_or_field_error(data: bytes) -> None:
    for decode in (decode_table, decode_array, decode_value):
        try:
            decode(data, 0)
        except FieldDecodeError:
            pass


@given(st.binary(max_size=64))
def test_garbage_raises_only_field_decode_error(garbage):
    decode_or_field_error(garbage)
    decode_or_field_error(struct.pack(">I", len(garbage)) + garbage)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(tables.filter(bool), st.data())
def test_corrupted_tables_raise_only_field_decode_error(table, data):
    encoded = bytearray(encode_table(table))
    for _ in range(data.draw(st.integers(1, 4))):
        encoded[data.draw(st.integers(0, len(encoded) - 1))] = data.draw(st.integers(0, 255))
    decode_or_field_error(bytes(encoded))


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x02\x01a",  # value missing
        b"\x00\x00\x00\x03\x01a?",  # unknown tag
        b"\x00\x00\x00\x03\x01aI",  # int truncated inside the table
        b"\x00\x00\x00\x07\x01aS\x00\x00\x00\x05",  # string past the end
        b"\x00\x00\x00\x04\x01aVV",  # table size cuts the next key
        b"\x00\x00\x00\x02\x05a",  # key past the end
        b"\x00\x00\x00\x09\x01aA\x00\x00\x00\x01I\x00",  # array size cuts its value
        b"\x00\x00\x01",  # size truncated
        b"",
    ],
)
def test_malformed_examples(data):
    with pytest.raises(FieldDecodeError):
        decode_table(data, 0)


def test_deep_nesting_is_a_decode_error_not_a_crash():
    depth = 100_000
    data = b"".join(struct.pack(">I", 5 * (depth - i)) + b"\x00F" for i in range(depth))
    with pytest.raises(FieldDecodeError):
        decode_table(data, 0)


# --- short and long strings -------------------------------------------------------------


@given(st.text().filter(lambda s: len(s.encode()) <= 255), st.binary())
def test_string_helpers(text, blob):
    assert decode_shortstr(encode_shortstr(text)) == (text, len(text.encode()) + 1)
    assert decode_longstr(encode_longstr(blob)) == (blob, len(blob) + 4)


def test_string_helpers_reject_bad_input():
    with pytest.raises(FieldEncodeError):
        encode_shortstr("x" * 256)
    for bad in (b"", b"\x02a", b"\x01\xff"):
        with pytest.raises(FieldDecodeError):
            decode_shortstr(bad)
    for bad in (b"\x00\x00\x00", b"\x00\x00\x00\x02a"):
        with pytest.raises(FieldDecodeError):
            decode_longstr(bad)


@pytest.mark.parametrize(
    "data", [b"S\x00\x00\x00\x05ab", b"x\x00\x00\x00\x02a", b"I\x00", b"F\x00\x00\x00\x01", b""]
)
def test_truncated_single_values_raise(data):
    with pytest.raises(FieldDecodeError):
        decode_value(data, 0)


def test_non_utf8_keys_and_bytearray_input_round_trip():
    data = encode_table({b"\xff": 1, "k": "v"})
    assert decode_table(bytearray(data), 0) == ({b"\xff": 1, "k": "v"}, len(data))
    assert encode_table(decode_table(data, 0)[0]) == data
