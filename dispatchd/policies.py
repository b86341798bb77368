"""Policies and operator policies: what they are, and RabbitMQ 3.10's validation of them.

A :class:`Policy` is stored, shown and exported; applying policies to queues and exchanges is
issue 15. The validation is ``rabbit_policy:policy_validation/0`` with the validators 3.10.8
registers without plugins (``rabbit_policies``, ``rabbit_mirror_queue_misc`` for the ``ha-*``
keys, ``rabbit_queue_location_validator``), and its texts: every refusal reads
``Validation failed\\n\\n<reasons>\\n (<vhost>/<name>)`` with values printed as Erlang terms
(``<<"a">> is not a valid message TTL``), minus the HTML escaping RabbitMQ's API adds.
Where RabbitMQ's validator crashes and its import answers 204 having stored nothing (a
``max-age`` that is not a string, a definition that is a string), we refuse with the text
RabbitMQ means instead.

Keys that mean nothing on one node (``ha-mode``, ``queue-master-locator``, ...) are accepted
and kept, as the issue asks; keys of plugins 3.10 does not run without them (federation,
shovel) are refused as RabbitMQ refuses them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dispatchd.access import AccessError

__all__ = [
    "APPLY_TO",
    "OPERATOR_SETTINGS",
    "SETTINGS",
    "Policy",
    "PolicyError",
    "erlang_term",
    "from_definition",
    "from_parameter",
]

APPLY_TO = ("queues", "exchanges", "all")
"""What a policy may apply to in 3.10 (``classic_queues`` and the like came with 3.12)."""


class PolicyError(AccessError):
    """A policy RabbitMQ refuses; the text is RabbitMQ's."""


@dataclass(frozen=True, slots=True)
class Policy:
    """A policy (``operator``: an operator policy) of one vhost, as RabbitMQ keeps it."""

    vhost: str
    name: str
    pattern: str
    definition: Mapping[str, Any]
    priority: int | float = 0
    apply_to: str = "all"
    operator: bool = False


class _Undefined:
    """A key the document left out (RabbitMQ's ``undefined``)."""

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()


def erlang_term(value: Any) -> str:
    """``value`` (decoded JSON) as RabbitMQ's ``~p`` prints it."""
    if isinstance(value, str):
        return '<<"' + value.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(erlang_term(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{erlang_term(k)} => {erlang_term(v)}" for k, v in sorted(value.items()))
        return "#{" + ",".join(items) + "}"
    return repr(value)


def _proplist(terms: Mapping[str, Any]) -> str:
    return "[" + ",".join(f"{{{erlang_term(k)},{erlang_term(v)}}}" for k, v in terms.items()) + "]"


# ----- the definition's keys


def _integer(minimum: int, maximum: float = float("inf")) -> Callable[[Any], bool]:
    return lambda v: type(v) is int and minimum <= v <= maximum


def _one_of(*allowed: Any) -> Callable[[Any], bool]:
    return lambda v: type(v) in (str, int) and v in allowed


def _string(value: Any) -> bool:
    return isinstance(value, str)


def _max_age(value: Any) -> bool:
    """``rabbit_amqqueue:check_max_age/1``: a positive count and a unit (Y M D h m s)."""
    found = re.fullmatch(r"([0-9]+)([YMDhms])", value) if isinstance(value, str) else None
    return found is not None and int(found.group(1)) > 0


#: ``rabbit_policies``' keys: key -> (check, what a valid value is called in the refusal).
SETTINGS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "alternate-exchange": (_string, "a valid alternate exchange name"),
    "dead-letter-exchange": (_string, "a valid dead letter exchange name"),
    "dead-letter-routing-key": (_string, "a valid dead letter routing key"),
    "dead-letter-strategy": (
        _one_of("at-most-once", "at-least-once"),
        "a valid dead letter strategy",
    ),
    "message-ttl": (_integer(0), "a valid message TTL"),
    "expires": (_integer(1), "a valid queue expiry"),
    "max-length": (_integer(0), "a valid maximum length"),
    "max-length-bytes": (_integer(0), "a valid maximum length in bytes"),
    "max-in-memory-length": (_integer(0), "a valid maximum memory in bytes"),
    "max-in-memory-bytes": (_integer(0), "a valid maximum memory in bytes"),
    "queue-mode": (_one_of("default", "lazy"), "a valid queue-mode value"),
    "queue-version": (_one_of(1, 2), "a valid queue-version value"),
    "overflow": (
        _one_of("drop-head", "reject-publish", "reject-publish-dlx"),
        "a valid overflow value",
    ),
    "delivery-limit": (_integer(0), "a valid delivery limit"),
    "max-age": (_max_age, "a valid max age"),
    "queue-leader-locator": (
        _one_of("client-local", "balanced", "random", "least-leaders"),
        "a valid queue leader locator value",
    ),
    "initial-cluster-size": (_integer(0), "a valid cluster size"),
    "stream-max-segment-size-bytes": (_integer(0, 3_000_000_000), "a valid segment size"),
}

OPERATOR_SETTINGS = (
    "expires",
    "message-ttl",
    "max-length",
    "max-length-bytes",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "delivery-limit",
)
"""The keys an operator policy may set (``operator_policy_validator``)."""

HA_KEYS = (
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "ha-sync-batch-size",
    "ha-promote-on-shutdown",
    "ha-promote-on-failure",
)
QUEUE_MASTER_LOCATORS = ("min-masters", "client-local", "random")


def _ha_params(mode: str, params: Any) -> str | None:
    """The ha-mode's own check of ha-params (``rabbit_mirror_queue_mode_*``)."""
    if mode == "all":
        return None if params is UNDEFINED else 'ha-mode="all" does not take parameters'
    if mode == "exactly":
        if type(params) is int and params > 0:
            return None
        shown = "none" if params is UNDEFINED else erlang_term(params)
        return f'ha-mode="exactly" takes an integer, {shown} given'
    if params == []:
        return 'ha-mode="nodes" list must be non-empty'
    if not isinstance(params, list):
        shown = "none" if params is UNDEFINED else erlang_term(params)
        return f'ha-mode="nodes" takes a list, {shown} given'
    invalid = [p for p in params if not isinstance(p, str)]
    if invalid:
        return f'ha-mode="nodes" takes a list of strings, {erlang_term(invalid)} was not a string'
    return None


def _one_of_text(key: str, value: Any, allowed: tuple[str, ...]) -> str | None:
    if value is UNDEFINED or value in allowed:
        return None
    choices = " or ".join(f'"{a}"' for a in allowed)
    return f"{key} must be {choices}, got {erlang_term(value)}"


def _ha(terms: Mapping[str, Any]) -> str | None:
    """``rabbit_mirror_queue_misc:validate_policy/1``: the ha-* keys together."""
    mode = terms.get("ha-mode", UNDEFINED)
    if mode is UNDEFINED:
        return (
            "ha-mode must be specified to specify ha-params, ha-sync-mode or ha-promote-on-shutdown"
        )
    if mode not in ("all", "exactly", "nodes"):
        return f"{erlang_term(mode)} is not a valid ha-mode value"
    batch = terms.get("ha-sync-batch-size", UNDEFINED)
    return (
        _ha_params(mode, terms.get("ha-params", UNDEFINED))
        or _one_of_text(
            "ha-sync-mode", terms.get("ha-sync-mode", UNDEFINED), ("manual", "automatic")
        )
        or (
            None
            if batch is UNDEFINED or (type(batch) is int and batch > 0)
            else f"ha-sync-batch-size takes an integer greater than 0, {erlang_term(batch)} given"
        )
        or _one_of_text(
            "ha-promote-on-shutdown",
            terms.get("ha-promote-on-shutdown", UNDEFINED),
            ("always", "when-synced"),
        )
        or _one_of_text(
            "ha-promote-on-failure",
            terms.get("ha-promote-on-failure", UNDEFINED),
            ("always", "when-synced"),
        )
    )


def _definition(value: Any, operator: bool) -> str | None:
    """Why a definition is refused (``rabbit_policy:validation/3``), or None."""
    validator = "operator_policy_validator" if operator else "policy_validator"
    if isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in value
    ):
        # rabbitmqctl 3.10 exports operator policies' definitions as [[key, value], ...]
        # (and refuses them on import); we take that form back.
        value = dict(value)
    if isinstance(value, list):
        return f"definition must be a dictionary: {erlang_term(value)}"
    if not isinstance(value, Mapping):
        return (
            f"parse error while reading policy definition: {erlang_term(value)}. "
            f"Validator: {validator}."
        )
    if not value:
        return "no policy provided"
    known = OPERATOR_SETTINGS if operator else SETTINGS
    for key in sorted(k for k in value if k in known):
        check, valid = SETTINGS[key]
        if not check(value[key]):
            return f"{erlang_term(value[key])} is not {valid}"
    if not operator and any(k in value for k in HA_KEYS):
        refused = _ha(value)
        if refused:
            return refused
    locator = value.get("queue-master-locator", UNDEFINED)
    if not operator and locator is not UNDEFINED and locator not in QUEUE_MASTER_LOCATORS:
        return f"{erlang_term(locator)} invalid queue-master-locator value"
    mine = set(known) | (set() if operator else {*HA_KEYS, "queue-master-locator"})
    unknown = {k: v for k, v in sorted(value.items()) if k not in mine}
    if unknown:
        return f"{_proplist(unknown)} are not recognised policy settings"
    return None


# ----- the policy


def _validate(terms: Mapping[str, Any], name: str, operator: bool) -> list[str]:
    """Every reason ``terms`` (pattern, definition, priority, apply-to) is refused, in
    RabbitMQ's order (``rabbit_parameter_validation:proplist/3`` gathers them backwards)."""
    reasons: list[str] = []
    for key in ("priority", "pattern", "apply-to", "definition"):
        if key not in terms:
            if key != "apply-to":
                reasons.append(f'Key "{key}" not found in {name}')
            continue
        value = terms[key]
        if key == "priority":
            if type(value) not in (int, float):
                reasons.append(f"priority should be a number, actually was {erlang_term(value)}")
        elif key == "pattern":
            if not isinstance(value, str):
                reasons.append(f"pattern should be a binary but was {erlang_term(value)}")
            else:
                try:
                    re.compile(value)
                except re.error as exc:
                    reasons.append(f"pattern should be regular expression but is invalid: {exc}")
        elif key == "apply-to":
            if value not in APPLY_TO:
                reasons.append(
                    f"apply-to '{value}' unrecognised; should be 'queues', 'exchanges' or 'all'"
                )
        else:
            refused = _definition(value, operator)
            if refused:
                reasons.append(refused)
    extra = {
        k: v for k, v in terms.items() if k not in ("priority", "pattern", "apply-to", "definition")
    }
    if extra:
        reasons.append(f"Unrecognised terms {_proplist(extra)} in {name}")
    return reasons[::-1]


def _policy(vhost: str, name: str, terms: Mapping[str, Any], operator: bool, where: str) -> Policy:
    reasons = _validate(terms, name, operator)
    if reasons:
        raise PolicyError("Validation failed\n\n" + "".join(r + "\n" for r in reasons) + where)
    definition = terms["definition"]
    return Policy(
        vhost,
        name,
        terms["pattern"],
        dict(definition),
        terms["priority"],
        terms.get("apply-to", "all"),
        operator,
    )


def from_definition(item: Mapping[str, Any], vhost: str) -> Policy:
    """A ``policies`` entry of a definitions document (``rabbit_definitions:add_policy``:
    priority 0 and apply-to ``all`` unless given)."""
    name = item.get("name")
    if name is None:
        raise PolicyError(f"policy in virtual host '{vhost}' has undefined name")
    terms = {
        "pattern": item.get("pattern", UNDEFINED),
        "definition": item.get("definition", UNDEFINED),
        "priority": item.get("priority", 0),
        "apply-to": item.get("apply-to", "all"),
    }
    return _policy(vhost, str(name), terms, False, f" ({vhost}/{name})")


def from_parameter(vhost: str, name: str, value: Any) -> Policy:
    """An ``operator_policy`` runtime parameter's value (pattern, definition and priority
    required, apply-to ``all`` unless given)."""
    if not isinstance(value, Mapping):
        raise PolicyError(f"{name} not a list {erlang_term(value)}")
    return _policy(vhost, name, value, True, f" ({vhost}/operator_policy/{name})")
