"""dispatchd.policies alone: RabbitMQ 3.10.8's policy validation and its texts.

Every expected reason was recorded from RabbitMQ 3.10.8's ``POST /api/definitions`` with the
same policy (its HTML escaping taken out: ``&lt;&lt;`` is ``<<``). The cases where 3.10.8's
validator crashes and its import answers 204 storing nothing are marked: there we refuse.
"""

from __future__ import annotations

import pytest

from dispatchd.access import AccessControl, NoSuchVhost
from dispatchd.policies import Policy, PolicyError, erlang_term, from_definition, from_parameter


def reason(definition: object, **item: object) -> str:
    with pytest.raises(PolicyError) as refused:
        from_definition({"name": "p", "pattern": "x", "definition": definition, **item}, "v")
    return str(refused.value)


def validation(*reasons: str, where: str = "v/p") -> str:
    return "Validation failed\n\n" + "".join(r + "\n" for r in reasons) + f" ({where})"


def test_defaults_and_shape() -> None:
    policy = from_definition({"name": "ttl", "pattern": "^q\\.", "definition": {"expires": 5}}, "/")
    assert policy == Policy("/", "ttl", "^q\\.", {"expires": 5}, 0, "all")
    op = from_parameter(
        "/", "cap", {"pattern": ".*", "definition": {"max-length": 9}, "priority": 2}
    )
    assert (op.operator, op.priority, op.apply_to) == (True, 2, "all")
    assert (
        from_definition({"name": "", "pattern": "x", "definition": {"expires": 1}}, "/").name == ""
    )
    kept = {
        "ha-mode": "exactly",
        "ha-params": 2,
        "ha-sync-mode": "automatic",
        "queue-master-locator": "min-masters",
        "queue-mode": "lazy",
        "max-age": "1D",
        "queue-version": 2,
        "dead-letter-strategy": "at-least-once",
    }
    assert (
        from_definition({"name": "k", "pattern": "x", "definition": kept}, "/").definition == kept
    )
    item = {"name": "f", "pattern": "x", "definition": {"expires": 1}, "priority": 1.5}
    assert from_definition({**item, "apply-to": "exchanges"}, "/").priority == 1.5


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"max-age": "0D"}, '<<"0D">> is not a valid max age'),
        ({"max-age": 123}, "123 is not a valid max age"),  # 3.10.8 crashes: 204, nothing stored
        ({"queue-master-locator": "zzz"}, '<<"zzz">> invalid queue-master-locator value'),
        (
            {"ha-params": 2},
            "ha-mode must be specified to specify ha-params, ha-sync-mode or "
            "ha-promote-on-shutdown",
        ),
        (
            {"ha-mode": "exactly", "ha-params": "2"},
            'ha-mode="exactly" takes an integer, <<"2">> given',
        ),
        ({"ha-mode": "exactly"}, 'ha-mode="exactly" takes an integer, none given'),
        (
            {"ha-mode": "nodes", "ha-params": [1]},
            'ha-mode="nodes" takes a list of strings, [1] was not a string',
        ),
        ({"ha-mode": "all", "ha-params": 1}, 'ha-mode="all" does not take parameters'),
        ({"ha-mode": "foo"}, '<<"foo">> is not a valid ha-mode value'),
        ({"queue-version": 3}, "3 is not a valid queue-version value"),
        ({"dead-letter-strategy": "x"}, '<<"x">> is not a valid dead letter strategy'),
        ({"message-ttl": -1, "expires": 0}, "0 is not a valid queue expiry"),
        ({"stream-max-segment-size-bytes": 3000000001}, "3000000001 is not a valid segment size"),
        ({"message-ttl": 1.5}, "1.5 is not a valid message TTL"),
        ({"message-ttl": True}, "true is not a valid message TTL"),
        ({"message-ttl": None}, "null is not a valid message TTL"),
        ({"message-ttl": [1, "a"]}, '[1,<<"a">>] is not a valid message TTL'),
        ({"message-ttl": {"a": 1}}, '#{<<"a">> => 1} is not a valid message TTL'),
        (
            {"alternate-exchange": {"a": "b"}},
            '#{<<"a">> => <<"b">>} is not a valid alternate exchange name',
        ),
        ({"foo": 1}, '[{<<"foo">>,1}] are not recognised policy settings'),
        (
            {"federation-upstream-set": "all"},
            '[{<<"federation-upstream-set">>,<<"all">>}] are not recognised policy settings',
        ),
        ({}, "no policy provided"),
        ([1], "definition must be a dictionary: [1]"),
        (
            "x",
            'parse error while reading policy definition: <<"x">>. Validator: policy_validator.',
        ),  # 3.10.8 crashes: 204
    ],
)
def test_definition_refusals_are_rabbitmqs(definition: object, expected: str) -> None:
    assert reason(definition) == validation(expected)


def test_other_refusals_are_rabbitmqs() -> None:
    assert reason({"message-ttl": 1}, pattern=1) == validation(
        "pattern should be a binary but was 1"
    )
    assert reason({"message-ttl": 1}, priority=True) == validation(
        "priority should be a number, actually was true"
    )
    assert reason({"message-ttl": 1, "foo": 2}, priority="a") == validation(
        '[{<<"foo">>,2}] are not recognised policy settings',
        'priority should be a number, actually was <<"a">>',
    )
    assert reason({"message-ttl": 1}, **{"apply-to": "streams"}) == validation(
        "apply-to 'streams' unrecognised; should be 'queues', 'exchanges' or 'all'"
    )
    assert reason({"message-ttl": 1}, pattern="(").startswith(
        "Validation failed\n\npattern should be regular expression but is invalid: "
    )
    with pytest.raises(PolicyError) as refused:
        from_definition({"pattern": "x", "definition": {"expires": 1}}, "v")
    assert str(refused.value) == "policy in virtual host 'v' has undefined name"
    with pytest.raises(PolicyError) as refused:
        from_definition({"name": "p", "definition": {"expires": 1}}, "v")
    assert str(refused.value) == validation("pattern should be a binary but was undefined")
    with pytest.raises(PolicyError) as refused:
        from_parameter(
            "v", "o", {"pattern": "x", "definition": {"message-ttl": 1, "overflow": "a"}}
        )
    assert str(refused.value) == validation(
        '[{<<"overflow">>,<<"a">>}] are not recognised policy settings',
        'Key "priority" not found in o',
        where="v/operator_policy/o",
    )


def test_rabbitmqctl_exported_operator_definition_is_taken_back() -> None:
    # rabbitmqctl 3.10.8 export_definitions writes [[key, value]] here (and refuses it back)
    value = {"pattern": "x", "definition": [["max-length", 100]], "priority": 0}
    assert from_parameter("v", "o", value).definition == {"max-length": 100}


def test_erlang_terms() -> None:
    assert erlang_term('a"b') == '<<"a\\"b">>'
    assert erlang_term({"b": [1, None], "a": False}) == '#{<<"a">> => false,<<"b">> => [1,null]}'


def test_access_keeps_policies_per_vhost() -> None:
    access = AccessControl()
    policy = from_definition({"name": "p", "pattern": "x", "definition": {"expires": 1}}, "v")
    with pytest.raises(NoSuchVhost):
        access.set_policy(policy)
    access.add_vhost("v")
    access.add_vhost("w")
    access.set_policy(policy)
    op = from_parameter("v", "p", {"pattern": "x", "definition": {"expires": 1}, "priority": 0})
    access.set_policy(op)
    other = from_definition({"name": "p", "pattern": "x", "definition": {"expires": 2}}, "w")
    access.set_policy(other)
    before = access.copy()
    access.delete_vhost("v")
    assert access.policies == {("w", "p"): other} and access.operator_policies == {}
    assert before.policies[("v", "p")] == policy and before.operator_policies[("v", "p")] == op
