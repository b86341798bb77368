"""Importing a definitions document (RabbitMQ 3.10's format): ``POST /api/definitions``,
``dispatchd ctl import_definitions`` and ``--load-definitions`` at start-up.

Users, vhosts, permissions, topic permissions, policies (``dispatchd.policies``: stored and
exported, applied from issue 15), runtime parameters (vhost limits and operator policies) and
global parameters are validated as a whole first (on a copy: a malformed document, an unknown
hashing algorithm, an invalid regex or policy, a runtime parameter component dispatchd has not
got changes nothing), then committed in one store batch; exchanges, queues and bindings are then
declared through the vhost actors as a channel would, and each one the broker refuses is
reported. A per-vhost import takes the document's policies and runtime parameters into that
vhost, as RabbitMQ's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dispatchd import policies
from dispatchd.access import AccessControl, AccessError
from dispatchd.actors.messages import Reply
from dispatchd.store import accounts
from dispatchd.wire import spec

if TYPE_CHECKING:
    from dispatchd.management import Management

__all__ = ["binding_method", "import_definitions"]


def _accounts(access: AccessControl, doc: Mapping[str, Any]) -> list[Any]:
    """Apply the whole document's users, vhosts, permissions, global parameters, policies and
    runtime parameters to ``access``; the store writes."""
    writes: list[Any] = []
    for u in doc.get("users", ()):
        if "password" in u and "password_hash" not in u:
            user = access.add_user(str(u["name"]), str(u["password"]), _tags(u.get("tags")))
        else:
            user = access.add_user(
                str(u["name"]),
                None,
                _tags(u.get("tags")),
                str(u.get("password_hash") or ""),
                str(u.get("hashing_algorithm") or "rabbit_password_hashing_sha256"),
            )
        if u.get("limits"):
            user = access.set_user_limits(user.name, u["limits"])
        writes.append(accounts.SaveUser(user))
    for v in doc.get("vhosts", ()):
        meta = v.get("metadata") or {}
        vhost = access.add_vhost(
            str(v["name"]),
            str(meta.get("description", v.get("description", ""))),
            _tags(meta.get("tags", v.get("tags"))),
            str(meta.get("default_queue_type", v.get("default_queue_type", "undefined"))),
        )
        writes.append(accounts.SaveVhost(vhost))
    for p in doc.get("permissions", ()):
        vhost, user = str(p["vhost"]), str(p["user"])
        permission = access.set_permissions(
            vhost, user, str(p["configure"]), str(p["write"]), str(p["read"])
        )
        writes.append(accounts.SavePermission(vhost, user, permission))
    for t in doc.get("topic_permissions", ()):
        vhost, user = str(t["vhost"]), str(t["user"])
        topic = access.set_topic_permissions(
            vhost, user, str(t["exchange"]), str(t["write"]), str(t["read"])
        )
        writes.append(accounts.SaveTopicPermission(vhost, user, topic.exchange, topic))
    for parameter in doc.get("global_parameters", ()):
        name, value = str(parameter["name"]), parameter.get("value")
        access.set_global_parameter(name, value)
        writes.append(accounts.SaveGlobalParameter(name, value))
    return writes + _vhost_parameters(access, doc, None)


def _vhost_parameters(
    access: AccessControl, doc: Mapping[str, Any], vhost: str | None
) -> list[Any]:
    """Apply the document's policies and runtime parameters (into ``vhost`` if given, else
    each item's own) to ``access``; the store writes."""
    writes: list[Any] = []
    for item in doc.get("policies", ()):
        where = vhost if vhost is not None else str(item.get("vhost", "/"))
        policy = access.set_policy(policies.from_definition(item, where))
        writes.append(accounts.SavePolicy(policy))
    for parameter in doc.get("parameters", ()):
        where = vhost if vhost is not None else str(parameter["vhost"])
        component = parameter.get("component")
        if component == "vhost-limits":
            writes.append(accounts.SaveVhost(access.set_vhost_limits(where, parameter["value"])))
        elif component == "operator_policy":
            policy = policies.from_parameter(where, str(parameter["name"]), parameter.get("value"))
            writes.append(accounts.SavePolicy(access.set_policy(policy)))
        else:
            raise AccessError(f"runtime parameter component '{component}' is not supported")
    return writes


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    return value.split(",") if isinstance(value, str) else [str(t) for t in value]


async def import_definitions(
    management: Management, doc: Mapping[str, Any], vhost: str | None
) -> list[str]:
    """Import ``doc`` (into one vhost when ``vhost`` is given, whose items carry no vhost).

    Raises AccessError (nothing applied) for a document that cannot be applied as a whole;
    otherwise returns one line per exchange, queue or binding the broker refused.
    """
    broker = management.broker
    try:
        declarations = _declarations(doc, vhost)
        trial = broker.access.copy()
        writes = (
            _vhost_parameters(trial, doc, vhost) if vhost is not None else _accounts(trial, doc)
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, AccessError):
            raise
        raise AccessError(f"malformed definitions: {exc!r}") from None
    before = broker.access
    broker.access = trial
    await management.commit(before, *writes)
    for name in trial.vhosts:
        broker.start_vhost(name)
    management.regrant(trial.vhosts)
    errors: list[str] = []
    for what, where, method in declarations:
        ref = broker.vhosts.get(where)
        if ref is None or where not in broker.access.vhosts:
            errors.append(f"{what} in vhost '{where}': no vhost '{where}'")
            continue
        reply = await management.ask_vhost(ref, method, 0)
        if isinstance(reply, Reply) and reply.error is not None:
            errors.append(f"{what} in vhost '{where}': {reply.error.reply_text}")
    return errors


def binding_method(
    destination_type: str,
    source: str,
    destination: str,
    routing_key: str,
    arguments: dict[str, Any],
    unbind: bool = False,
) -> spec.Method:
    """The AMQP method that binds (or unbinds) a queue or exchange (``destination_type``
    ``queue`` or ``exchange``) to ``source``."""
    if destination_type == "exchange":
        cls = spec.ExchangeUnbind if unbind else spec.ExchangeBind
        return cls(
            destination=destination, source=source, routing_key=routing_key, arguments=arguments
        )
    queue_cls = spec.QueueUnbind if unbind else spec.QueueBind
    return queue_cls(
        queue=destination, exchange=source, routing_key=routing_key, arguments=arguments
    )


def _declarations(
    definitions: Mapping[str, Any], vhost: str | None
) -> list[tuple[str, str, spec.Method]]:
    """(what, vhost, method) for the exchanges, queues and bindings of a definitions document,
    in the order that recreates them (``vhost`` overrides the items' own, for a per-vhost
    import). Raises KeyError/TypeError/AttributeError on a malformed document."""

    def where(item: Mapping[str, Any]) -> str:
        return vhost if vhost is not None else str(item.get("vhost", "/"))

    def table(item: Mapping[str, Any]) -> dict[str, Any]:
        return dict(item.get("arguments") or {})

    out: list[tuple[str, str, spec.Method]] = []
    for x in definitions.get("exchanges", ()):
        method: spec.Method = spec.ExchangeDeclare(
            exchange=str(x["name"]),
            type=str(x.get("type", "direct")),
            durable=bool(x.get("durable", True)),
            auto_delete=bool(x.get("auto_delete", False)),
            internal=bool(x.get("internal", False)),
            arguments=table(x),
        )
        out.append((f"exchange '{x['name']}'", where(x), method))
    for q in definitions.get("queues", ()):
        method = spec.QueueDeclare(
            queue=str(q["name"]),
            durable=bool(q.get("durable", True)),
            auto_delete=bool(q.get("auto_delete", False)),
            arguments=table(q),
        )
        out.append((f"queue '{q['name']}'", where(q), method))
    for b in definitions.get("bindings", ()):
        source, dest, key = str(b["source"]), str(b["destination"]), str(b.get("routing_key", ""))
        kind = str(b.get("destination_type", "queue"))
        method = binding_method(kind, source, dest, key, table(b))
        out.append((f"binding '{source}' -> '{dest}'", where(b), method))
    return out
