"""Generated method and content-header codec: round trips, pika compatibility, bad input."""

from __future__ import annotations

import pika.frame
import pika.spec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatchd.wire import spec
from dispatchd.wire.codegen import load

SPEC = load()
FIELD_TYPES = {m.python_name: {f.name: f.type for f in m.fields} for m in SPEC.methods}
ALL_METHODS = sorted(spec.METHODS.values(), key=lambda cls: cls.INDEX)

shortstrs = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255)
table_values = st.recursive(
    st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=10), st.none()),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
tables = st.dictionaries(st.text(max_size=10), table_values, max_size=4)
STRATEGIES = {
    "bit": st.booleans(),
    "octet": st.integers(0, 2**8 - 1),
    "short": st.integers(0, 2**16 - 1),
    "long": st.integers(0, 2**32 - 1),
    "longlong": st.integers(0, 2**64 - 1),
    "timestamp": st.integers(0, 2**64 - 1),
    "shortstr": shortstrs,
    "longstr": st.binary(max_size=40),
    "table": tables,
}


def method_strategy(cls: type[spec.Method]) -> st.SearchStrategy[spec.Method]:
    types = FIELD_TYPES[cls.__name__]
    return st.builds(cls, **{name: STRATEGIES[types[name]] for name in cls.FIELDS})


any_method = st.sampled_from(ALL_METHODS).flatmap(method_strategy)


# --- the generated classes --------------------------------------------------------------


def test_every_xml_method_is_generated():
    assert len(spec.METHODS) == len(SPEC.methods)
    for cls in ALL_METHODS:
        assert cls.INDEX == cls.CLASS_ID << 16 | cls.METHOD_ID
        assert spec.METHODS[cls.INDEX] is cls
        assert cls.__slots__ == cls.FIELDS


def test_names_and_metadata():
    assert spec.BasicPublish.NAME == "basic.publish"
    assert spec.BasicPublish.FIELDS == (
        "reserved_1",
        "exchange",
        "routing_key",
        "mandatory",
        "immediate",
    )
    assert spec.BasicPublish.HAS_CONTENT and not spec.BasicPublish.SYNCHRONOUS
    assert spec.BasicQos.FIELDS == ("prefetch_size", "prefetch_count", "global_")
    assert spec.BasicGet.RESPONSES == (spec.BasicGetOk.INDEX, spec.BasicGetEmpty.INDEX)
    assert spec.ConnectionStart.RESPONSES == (spec.ConnectionStartOk.INDEX,)
    assert spec.ConfirmSelect.INDEX == 0x0055000A and spec.ConfirmSelect.FIELDS == ("nowait",)
    assert {cls.NAME for cls in ALL_METHODS if cls.HAS_CONTENT} == {
        "basic.publish",
        "basic.return",
        "basic.deliver",
        "basic.get-ok",
    }
    for name in (
        "ExchangeBind",
        "ExchangeUnbindOk",
        "BasicNack",
        "ConnectionBlocked",
        "ConnectionUpdateSecretOk",
        "TxRollbackOk",
    ):
        assert hasattr(spec, name)


def test_constants():
    assert (spec.FRAME_METHOD, spec.FRAME_HEADER, spec.FRAME_BODY, spec.FRAME_HEARTBEAT) == (
        1,
        2,
        3,
        8,
    )
    assert (spec.FRAME_END, spec.FRAME_MIN_SIZE, spec.REPLY_SUCCESS) == (206, 4096, 200)
    assert spec.NOT_FOUND == 404 and spec.NO_ROUTE == 312
    assert spec.PROTOCOL_HEADER == b"AMQP\x00\x00\x09\x01"
    assert spec.SOFT_ERRORS == {311, 312, 313, 403, 404, 405, 406}
    assert spec.HARD_ERRORS == {320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541}
    assert spec.REPLY_TEXT[404] == "NOT_FOUND" and spec.REPLY_TEXT[200] == "REPLY_SUCCESS"
    for code, name in spec.REPLY_TEXT.items():
        assert getattr(spec, name) == code
        assert getattr(pika.spec, name) == code


def test_synchronous_methods_and_responses_agree_with_pika():
    # The XML marks both halves of a request/reply pair synchronous; pika (like RabbitMQ's
    # JSON spec) only the request, which is the half that has RESPONSES.
    for cls in ALL_METHODS:
        pika_synchronous = pika.spec.methods[cls.INDEX].synchronous.fget(None)
        assert bool(cls.RESPONSES) == pika_synchronous, cls.NAME
        assert cls.SYNCHRONOUS or not cls.RESPONSES


def test_defaults():
    m = spec.QueueDeclare()
    assert (m.queue, m.durable, m.reserved_1, m.arguments) == ("", False, 0, {})
    assert m.arguments is not spec.QueueDeclare().arguments
    assert spec.ConnectionStart().mechanisms == b""
    assert spec.BasicProperties() == spec.BasicProperties(*[None] * 14)


def test_repr_and_equality():
    m = spec.BasicAck(delivery_tag=5, multiple=True)
    assert repr(m) == "BasicAck(delivery_tag=5, multiple=True)"
    assert m == spec.BasicAck(5, True)
    assert m != spec.BasicAck(5, False)
    assert m != spec.BasicNack(5, True)


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_METHODS, ids=lambda cls: cls.NAME)
@settings(max_examples=25)
@given(data=st.data())
def test_every_method_round_trips(cls, data):
    method = data.draw(method_strategy(cls))
    payload = method.encode()
    assert payload[:4] == cls.INDEX.to_bytes(4, "big")
    assert spec.decode_method(payload) == method
    assert spec.decode_method(memoryview(payload)) == method
    assert spec.decode_method(bytearray(payload)) == method


def test_bits_share_octets():
    declare = spec.ExchangeDeclare(exchange="x", type="topic", durable=True, no_wait=True)
    assert declare.encode() == b"\x00\x28\x00\x0a\x00\x00\x01x\x05topic\x12\x00\x00\x00\x00"
    nack = spec.BasicNack(delivery_tag=1, multiple=False, requeue=True)
    assert nack.encode()[-1:] == b"\x02"


# --- pika compatibility -------------------------------------------------------------------

PIKA_NAMES = {"reserved_1": "ticket", "global_": "global_qos", "no_wait": "nowait"}
PIKA_CHECKED = [
    spec.ConnectionStart,
    spec.ConnectionStartOk,
    spec.ConnectionTune,
    spec.ConnectionTuneOk,
    spec.ConnectionClose,
    spec.ConnectionBlocked,
    spec.ChannelClose,
    spec.ExchangeDeclare,
    spec.ExchangeBind,
    spec.QueueDeclare,
    spec.QueueDeclareOk,
    spec.QueueBind,
    spec.BasicQos,
    spec.BasicConsume,
    spec.BasicPublish,
    spec.BasicReturn,
    spec.BasicDeliver,
    spec.BasicGetOk,
    spec.BasicAck,
    spec.BasicNack,
    spec.BasicReject,
    spec.ConfirmSelect,
]


def pika_args(method: spec.Method) -> dict:
    return {PIKA_NAMES.get(f, f): getattr(method, f) for f in method.FIELDS}


@pytest.mark.parametrize("cls", PIKA_CHECKED, ids=lambda cls: cls.NAME)
@settings(max_examples=25)
@given(data=st.data())
def test_methods_match_pika(cls, data):
    method = data.draw(method_strategy(cls))
    pika_cls = pika.spec.methods[cls.INDEX]
    ours = method.encode()
    theirs = b"".join(pika_cls(**pika_args(method)).encode())
    assert ours[4:] == theirs
    decoded = pika_cls().decode(ours, 4)
    assert {f: getattr(decoded, f) for f in pika_args(method)} == pika_args(method)
    assert cls.decode(cls.INDEX.to_bytes(4, "big") + theirs, 4) == method


properties = st.builds(
    spec.BasicProperties,
    **{f.name: st.none() | STRATEGIES[f.type] for f in SPEC.properties["basic"][1]},
)


@given(properties)
def test_properties_round_trip_and_match_pika(props):
    raw = props.encode()
    assert spec.BasicProperties.decode(raw) == props
    assert spec.peek_properties(memoryview(raw)) == props
    pika_props = pika.spec.BasicProperties(**{f: getattr(props, f) for f in props.FIELDS})
    assert raw == b"".join(pika_props.encode())
    decoded = pika.spec.BasicProperties().decode(raw)
    assert {f: getattr(decoded, f) for f in props.FIELDS} == {
        f: getattr(props, f) for f in props.FIELDS
    }


@given(properties, st.integers(0, 2**64 - 1))
def test_content_header_round_trip_and_matches_pika(props, body_size):
    raw = props.encode()
    payload = spec.encode_content_header(60, body_size, raw)
    assert spec.decode_content_header(payload) == (60, body_size, raw)
    pika_frame = pika.frame.Header(1, body_size, pika.spec.BasicProperties()).marshal()
    assert spec.decode_content_header(pika_frame[7:-1]) == (60, body_size, b"\x00\x00")


def test_properties_flag_continuation_words_are_skipped():
    raw = b"\x10\x01\x00\x00\x02"  # delivery-mode flag + continuation, empty 2nd word
    assert spec.BasicProperties.decode(raw) == spec.BasicProperties(delivery_mode=2)


# --- malformed input ---------------------------------------------------------------------


@given(any_method, st.data())
def test_truncated_payloads_raise_method_decode_error(method, data):
    payload = method.encode()
    cut = data.draw(st.integers(0, len(payload) - 1))
    with pytest.raises(spec.MethodDecodeError) as info:
        spec.decode_method(payload[:cut])
    if cut >= 4:
        assert (info.value.class_id, info.value.method_id) == (method.CLASS_ID, method.METHOD_ID)
    assert info.value.reply_code == spec.FRAME_ERROR


@given(any_method, st.binary(min_size=1, max_size=4))
def test_trailing_bytes_raise_method_decode_error(method, extra):
    with pytest.raises(spec.MethodDecodeError):
        spec.decode_method(method.encode() + extra)


@given(st.sampled_from(ALL_METHODS), st.binary(max_size=40))
def test_garbage_arguments_raise_only_method_decode_error(cls, garbage):
    try:
        spec.decode_method(cls.INDEX.to_bytes(4, "big") + garbage)
    except spec.MethodDecodeError:
        pass


@pytest.mark.parametrize(("class_id", "method_id"), [(10, 99), (999, 10), (30, 10), (0, 0)])
def test_unknown_methods(class_id, method_id):
    with pytest.raises(spec.UnknownMethod) as info:
        spec.decode_method(bytes([class_id >> 8, class_id & 255, 0, method_id]) + b"\x00" * 8)
    assert (info.value.class_id, info.value.method_id) == (class_id, method_id)


def test_invalid_utf8_shortstr_is_a_decode_error():
    payload = spec.BasicPublish(exchange="ab").encode().replace(b"ab", b"\xff\xfe")
    with pytest.raises(spec.MethodDecodeError, match="utf-8"):
        spec.decode_method(payload)


def test_malformed_table_argument_is_a_method_decode_error():
    payload = spec.QueueDeclare(arguments={"x": 1}).encode()
    with pytest.raises(spec.MethodDecodeError) as info:
        spec.decode_method(payload[:-5] + b"?" + payload[-4:])  # unknown field type tag
    assert info.value.class_id == 50


@given(properties, st.data())
def test_truncated_properties_raise(props, data):
    raw = props.encode()
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(spec.ContentHeaderDecodeError):
        spec.BasicProperties.decode(raw[:cut])


@given(st.binary(max_size=40))
def test_garbage_properties_raise_only_content_header_error(garbage):
    try:
        spec.BasicProperties.decode(garbage)
    except spec.ContentHeaderDecodeError:
        pass


def test_short_content_header_raises():
    with pytest.raises(spec.ContentHeaderDecodeError):
        spec.decode_content_header(b"\x00\x3c\x00\x00" + b"\x00" * 8)


def test_property_bytes_that_are_not_utf8_survive_a_decode_and_an_encode() -> None:
    raw = b"\x80\x00\x02\xff\xfe"  # content-type b"\xff\xfe", passed through as RabbitMQ does
    assert spec.BasicProperties.decode(raw, 0).encode() == raw
