"""Protocol constants come from the generated spec: reply-code enums, property flags, shortstr."""

from __future__ import annotations

import inspect
import re

import pika.spec
import pytest

from dispatchd.wire import errors, fields, frames, spec
from dispatchd.wire.codegen import load
from dispatchd.wire.errors import AMQPError

SPEC = load()
PROPERTY_NAMES = [f.name for f in SPEC.properties["basic"][1]]

# wire/errors.py's table before it moved into the generated spec: it must not change.
OLD_REPLY_NAMES = {
    311: "CONTENT_TOO_LARGE",
    312: "NO_ROUTE",
    313: "NO_CONSUMERS",
    320: "CONNECTION_FORCED",
    402: "INVALID_PATH",
    403: "ACCESS_REFUSED",
    404: "NOT_FOUND",
    405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED",
    501: "FRAME_ERROR",
    502: "SYNTAX_ERROR",
    503: "COMMAND_INVALID",
    504: "CHANNEL_ERROR",
    505: "UNEXPECTED_FRAME",
    506: "RESOURCE_ERROR",
    530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED",
    541: "INTERNAL_ERROR",
}

# --- reply codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("enum", "error_class"),
    [(spec.ChannelReplyCode, "soft-error"), (spec.ConnectionReplyCode, "hard-error")],
)
def test_reply_code_enums_split_by_the_spec_classes(enum, error_class):
    in_xml = {name: value for name, value, c in SPEC.constants if c == error_class}
    assert {m.name: m.value for m in enum} == in_xml
    for member in enum:
        assert getattr(spec, member.name) == member == member.value
        assert getattr(pika.spec, member.name) == member


def test_soft_and_hard_errors():
    assert spec.SOFT_ERRORS == set(spec.ChannelReplyCode) == {311, 312, 313, 403, 404, 405, 406}
    assert spec.HARD_ERRORS == set(spec.ConnectionReplyCode)
    assert spec.HARD_ERRORS == {320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541}
    assert not spec.SOFT_ERRORS & spec.HARD_ERRORS
    assert errors.SOFT_ERRORS is spec.SOFT_ERRORS


def test_reply_names():
    assert spec.REPLY_NAMES == OLD_REPLY_NAMES
    assert list(spec.REPLY_NAMES) == sorted(OLD_REPLY_NAMES)
    assert all(type(code) is int for code in spec.REPLY_NAMES)
    assert errors.REPLY_NAMES is spec.REPLY_NAMES
    members = [*spec.ChannelReplyCode, *spec.ConnectionReplyCode]
    assert spec.REPLY_NAMES == {m.value: m.name for m in members}
    assert spec.REPLY_NAMES == {c: n for c, n in spec.REPLY_TEXT.items() if c != spec.REPLY_SUCCESS}


# --- named error constructors ----------------------------------------------------------------

CONSTRUCTORS = {
    311: errors.content_too_large,
    312: errors.no_route,
    313: errors.no_consumers,
    320: errors.connection_forced,
    402: errors.invalid_path,
    403: errors.access_refused,
    404: errors.not_found,
    405: errors.resource_locked,
    406: errors.precondition_failed,
    501: errors.frame_error,
    502: errors.syntax_error,
    503: errors.command_invalid,
    504: errors.channel_error,
    505: errors.unexpected_frame_error,
    506: errors.resource_error,
    530: errors.not_allowed,
    540: errors.not_implemented,
    541: errors.internal_error,
}


def test_every_reply_code_has_a_constructor():
    assert set(CONSTRUCTORS) == set(spec.REPLY_NAMES)
    for code, constructor in CONSTRUCTORS.items():
        expected = "unexpected_frame_error" if code == 505 else spec.REPLY_NAMES[code].lower()
        assert constructor.__name__ == expected


@pytest.mark.parametrize("code", sorted(CONSTRUCTORS))
def test_named_constructors_match_amqp_error(code):
    constructor = CONSTRUCTORS[code]
    error = constructor("some text")
    bare = AMQPError(code, "some text")
    assert type(error) is AMQPError
    assert error.code == code and isinstance(error.code, int)
    assert isinstance(error.code, spec.ChannelReplyCode | spec.ConnectionReplyCode)
    assert error.hard is (code in spec.HARD_ERRORS) is bare.hard
    assert (error.class_id, error.method_id) == (0, 0)
    assert error.text == "some text"
    assert error.reply_text == bare.reply_text == f"{spec.REPLY_NAMES[code]} - some text"
    assert str(error) == str(bare)
    assert error.args == bare.args
    located = constructor("t", 50, 40)
    assert (located.class_id, located.method_id) == (50, 40)
    assert constructor("t", class_id=60, method_id=20).at(1, 2).class_id == 60
    assert constructor("t").at(10, 11).method_id == 11


def test_soft_and_hard_constructors():
    assert not errors.precondition_failed("x").hard
    assert not errors.not_found("x").hard
    assert not errors.access_refused("x").hard
    assert errors.not_implemented("x").hard
    assert errors.internal_error("x").hard
    assert errors.connection_forced("x").hard


def test_framing_errors_keep_their_codes():
    assert errors.unexpected_frame(3, b"hello").code == 505
    assert errors.unknown_frame(9, b"").code == 501
    assert errors.frame_too_large(1, 200_000, 131072).code == 501
    decode = errors.cannot_decode(60, 40, b"\x01")
    assert (decode.code, decode.class_id, decode.method_id) == (501, 60, 40)
    assert decode.reply_text == "FRAME_ERROR - cannot decode <<1>>"


def test_long_reply_texts_are_cut_to_a_shortstr():
    error = errors.not_found("x" * 300)
    assert len(error.reply_text.encode()) == spec.SHORTSTR_MAX == errors.SHORTSTR_MAX == 255
    assert error.reply_text.endswith("...")
    spec.ConnectionClose(error.code, error.reply_text).encode()  # fits


# --- basic property flags --------------------------------------------------------------------


def test_property_flags_follow_the_xml_order_and_match_pika():
    for index, name in enumerate(PROPERTY_NAMES):
        flag = getattr(spec, f"FLAG_{name.upper()}")
        assert flag == 1 << (15 - index)
        assert flag == getattr(pika.spec.BasicProperties, f"FLAG_{name.upper()}")
    assert spec.FLAG_CONTINUATION == 1  # the bit after the last property


def _byte_flags() -> list[str]:
    return [name for name in vars(spec) if name.startswith(("FIRST_BYTE_", "SECOND_BYTE_"))]


@pytest.mark.parametrize("name", PROPERTY_NAMES)
def test_byte_flags_agree_with_the_flag_word(name):
    upper = name.upper()
    flag = getattr(spec, f"FLAG_{upper}")
    first = getattr(spec, f"FIRST_BYTE_{upper}", None)
    second = getattr(spec, f"SECOND_BYTE_{upper}", None)
    if flag > 0xFF:
        assert (first, second) == (flag >> 8, None)
    else:
        assert (first, second) == (None, flag)
    value = {"headers": {}, "delivery_mode": 2, "priority": 1, "timestamp": 0}.get(name, "v")
    raw = spec.BasicProperties(**{name: value}).encode()
    assert int.from_bytes(raw[:2], "big") == flag
    if first is not None:
        assert raw[0] == first and raw[1] == 0
    else:
        assert raw[0] == 0 and raw[1] == second


def test_byte_flags_the_hot_paths_use():
    assert spec.FIRST_BYTE_DELIVERY_MODE == 0x10
    assert spec.FIRST_BYTE_HEADERS == 0x20
    assert spec.FIRST_BYTE_EXPIRATION == 0x01
    assert spec.FIRST_BYTE_REPLY_TO == 0x02
    assert spec.FIRST_BYTE_PRIORITY == 0x08
    assert spec.SECOND_BYTE_USER_ID == 0x10
    assert len(_byte_flags()) == len(PROPERTY_NAMES)  # one mask per property, no strays


def test_the_properties_codec_uses_the_named_flags():
    source = inspect.getsource(spec.BasicProperties)
    for name in PROPERTY_NAMES:
        assert f"flags |= FLAG_{name.upper()}\n" in source
        assert f"if flags & FLAG_{name.upper()}:" in source
    assert "0x" not in source


# --- frames and shortstrs --------------------------------------------------------------------


def test_frame_constants_come_from_the_spec():
    for name in ("FRAME_METHOD", "FRAME_HEADER", "FRAME_BODY", "FRAME_HEARTBEAT", "FRAME_END"):
        assert getattr(frames, name) is getattr(spec, name)
    assert frames.PROTOCOL_HEADER is spec.PROTOCOL_HEADER
    assert frames.FRAME_END_BYTE == b"\xce" and frames.FRAME_OVERHEAD == 8
    assert frames.HEARTBEAT_FRAME == b"\x08\x00\x00\x00\x00\x00\x00\xce"
    assert frames.frame(spec.FRAME_HEARTBEAT, 0, b"") == frames.HEARTBEAT_FRAME


def test_the_codec_encodes_shortstrs_with_encode_shortstr():
    source = inspect.getsource(spec)
    assert source.count("encode_shortstr(self.") > 40
    assert not re.search(r"self\.\w+\.encode\(\)", source)  # no inline shortstr encoding
    assert spec.ConnectionOpen("é").encode() == b"\x00\x0a\x00\x28" + fields.encode_shortstr(
        "é"
    ) + (b"\x00\x00")
    with pytest.raises(fields.FieldEncodeError):
        spec.BasicPublish(exchange="x" * 256).encode()
    with pytest.raises(fields.FieldEncodeError):
        spec.BasicProperties(app_id="é" * 128).encode()
    assert spec.BasicProperties(app_id="é" * 127 + "x").encode()[-256:] == fields.encode_shortstr(
        "é" * 127 + "x"
    )


def test_encode_shortstr():
    assert fields.encode_shortstr("") == b"\x00"
    assert fields.encode_shortstr("amq.topic") == b"\x09amq.topic"
    assert fields.encode_shortstr("x" * 255) == b"\xff" + b"x" * 255
    with pytest.raises(fields.FieldEncodeError, match="longer than 255"):
        fields.encode_shortstr("x" * 256)
