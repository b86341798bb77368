"""What each ``dispatchd ctl`` verb does, with rabbitmqctl's arguments, messages and columns.

A verb is a coroutine run on the broker's loop: ``(context, arguments) -> Output``. User,
vhost and permission changes go through :class:`~dispatchd.management.Management`, listings
read a snapshot through the admin's records (the same data ``/api/...`` shows).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dispatchd import __version__
from dispatchd.access import AccessError
from dispatchd.actors.runtime import Describe
from dispatchd.admin.rates import RateTracker
from dispatchd.admin.records import Records
from dispatchd.admin.snapshot import collect
from dispatchd.control.output import EX_DATAERR, EX_NOUSER, EX_USAGE, CtlError, Output
from dispatchd.management import Management
from dispatchd.wire import spec

if TYPE_CHECKING:
    from dispatchd.broker import Broker

__all__ = ["VERBS", "Context"]


@dataclass(frozen=True, slots=True)
class Context:
    """The broker a verb runs against, the ``-p`` vhost and the request's options."""

    broker: Broker
    vhost: str
    options: Mapping[str, Any]

    @property
    def management(self) -> Management:
        """The broker's management operations."""
        return Management(self.broker)

    async def records(self) -> Records:
        """Records of a fresh snapshot of the broker."""
        return Records(await collect(self.broker), RateTracker())


Verb = Callable[[Context, list[str]], Awaitable[Output]]
VERBS: dict[str, Verb] = {}


def verb(name: str, *arity: int) -> Callable[[Verb], Verb]:
    """Register a verb taking one of ``arity`` positional argument counts (none: any)."""

    def register(fn: Verb) -> Verb:
        async def checked(context: Context, args: list[str]) -> Output:
            if arity and len(args) not in arity:
                low, high = min(arity), max(arity)
                problem = "not enough" if len(args) < low else "too many"
                if len(args) > high or len(args) < low:
                    raise CtlError(f"Error (argument validation): {problem} arguments.", EX_USAGE)
            try:
                return await fn(context, args)
            except AccessError as exc:
                raise CtlError(str(exc), _code(str(exc))) from None

        VERBS[name] = checked
        return fn

    return register


def _code(message: str) -> int:
    """rabbitmqctl's exit code for a refusal: a missing user is EX_NOUSER, bad data EX_DATAERR."""
    if message.startswith("no such user"):
        return EX_NOUSER
    return EX_DATAERR


def _option(args: list[str], name: str, default: str | None = None) -> str | None:
    """Take ``--name value`` or ``--name=value`` out of ``args`` (the value, or ``default``)."""
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            del args[i]
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
            del args[i : i + 2]
            return value
    return default


def _switch(args: list[str], name: str) -> bool:
    """Take a boolean ``--name`` out of ``args``."""
    if name in args:
        args.remove(name)
        return True
    return False


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CtlError(f"Error: could not parse {what} '{text}': {exc}", EX_DATAERR) from None


# ----- users


@verb("add_user", 2)
async def add_user(c: Context, args: list[str]) -> Output:
    """``add_user <username> <password>``."""
    name, password = args
    await c.management.add_user(name, password)
    return Output(
        f'Adding user "{name}" ...',
        text="Done. Don't forget to grant the user permissions to some virtual hosts! "
        "See 'rabbitmqctl help set_permissions' to learn more.",
    )


@verb("delete_user", 1)
async def delete_user(c: Context, args: list[str]) -> Output:
    """``delete_user <username>``: their connections are closed."""
    await c.management.delete_user(args[0])
    return Output(f'Deleting user "{args[0]}" ...')


@verb("change_password", 2)
async def change_password(c: Context, args: list[str]) -> Output:
    """``change_password <username> <new_password>``."""
    await c.management.change_password(args[0], args[1])
    return Output(f'Changing password for user "{args[0]}" ...')


@verb("clear_password", 1)
async def clear_password(c: Context, args: list[str]) -> Output:
    """``clear_password <username>``: they can no longer log in with a password."""
    await c.management.change_password(args[0], None)
    return Output(f'Clearing password for user "{args[0]}" ...')


@verb("authenticate_user", 2)
async def authenticate_user(c: Context, args: list[str]) -> Output:
    """``authenticate_user <username> <password>``."""
    name, password = args
    if c.broker.access.authenticate(name, password) is None:
        raise CtlError(f"user '{name}' - invalid credentials", EX_NOUSER)
    return Output(f'Authenticating user "{name}" ...', text="Success")


@verb("set_user_tags")
async def set_user_tags(c: Context, args: list[str]) -> Output:
    """``set_user_tags <username> <tag> [...]``."""
    if not args:
        raise CtlError("Error (argument validation): not enough arguments.", EX_USAGE)
    name, tags = args[0], args[1:]
    await c.management.set_user_tags(name, tags)
    return Output(f'Setting tags for user "{name}" to [{", ".join(tags)}] ...')


@verb("list_users", 0)
async def list_users(c: Context, _args: list[str]) -> Output:
    """``list_users``."""
    users = sorted(c.broker.access.users.values(), key=lambda u: u.name)
    return Output("Listing users ...", ("user", "tags"), [(u.name, list(u.tags)) for u in users])


@verb("set_user_limits", 2)
async def set_user_limits(c: Context, args: list[str]) -> Output:
    """``set_user_limits <username> <definition>`` (a JSON object)."""
    name, definition = args
    limits = _json(definition, "limit definition")
    user = c.broker.access.user(name)
    await c.management.set_user_limits(name, {**user.limits, **limits})
    return Output(f'Setting user limits to "{definition}" for user "{name}" ...')


@verb("clear_user_limits", 2)
async def clear_user_limits(c: Context, args: list[str]) -> Output:
    """``clear_user_limits <username> <limit>|all``."""
    name, limit = args
    user = c.broker.access.user(name)
    limits = {} if limit == "all" else {k: v for k, v in user.limits.items() if k != limit}
    await c.management.set_user_limits(name, limits)
    return Output(f'Clearing "{limit}" limit for user "{name}" ...')


@verb("list_user_limits", 0, 1)
async def list_user_limits(c: Context, args: list[str]) -> Output:
    """``list_user_limits [--user <username>]``."""
    name = _option(args, "--user")
    users = [c.broker.access.user(name)] if name else list(c.broker.access.users.values())
    rows = [(u.name, json.dumps(dict(u.limits))) for u in users if u.limits or name]
    return Output("Listing limits for all users ...", ("user", "limits"), rows)


# ----- vhosts


@verb("add_vhost")
async def add_vhost(c: Context, args: list[str]) -> Output:
    """``add_vhost <vhost> [--description <d>] [--tags <t,...>] [--default-queue-type <q>]``."""
    description = _option(args, "--description", "") or ""
    tags = _option(args, "--tags", "") or ""
    queue_type = _option(args, "--default-queue-type", "undefined") or "undefined"
    if len(args) != 1:
        raise CtlError("Error (argument validation): expected one vhost name.", EX_USAGE)
    await c.management.add_vhost(args[0], description, tags.split(","), queue_type)
    return Output(f'Adding vhost "{args[0]}" ...')


@verb("delete_vhost", 1)
async def delete_vhost(c: Context, args: list[str]) -> Output:
    """``delete_vhost <vhost>``: its connections close, its objects and messages go."""
    await c.management.delete_vhost(args[0])
    return Output(f'Deleting vhost "{args[0]}" ...')


VHOST_COLUMNS = ("name", "description", "tags", "default_queue_type", "tracing", "cluster_state")


@verb("list_vhosts")
async def list_vhosts(c: Context, args: list[str]) -> Output:
    """``list_vhosts [<column> ...]`` (default: name)."""
    columns = _columns(args or ["name"], VHOST_COLUMNS)
    rows = []
    for v in sorted(c.broker.access.vhosts.values(), key=lambda v: v.name):
        values = {
            "name": v.name,
            "description": v.description,
            "tags": list(v.tags),
            "default_queue_type": v.default_queue_type,
            "tracing": False,
            "cluster_state": [f"{{{c.broker.cluster_name},running}}"],
        }
        rows.append([values[k] for k in columns])
    return Output("Listing vhosts ...", columns, rows)


@verb("set_vhost_limits", 1)
async def set_vhost_limits(c: Context, args: list[str]) -> Output:
    """``set_vhost_limits [-p <vhost>] <definition>`` (a JSON object)."""
    limits = _json(args[0], "limit definition")
    await c.management.set_vhost_limits(c.vhost, limits)
    return Output(f'Setting vhost limits to "{args[0]}" for vhost "{c.vhost}" ...')


@verb("clear_vhost_limits", 0)
async def clear_vhost_limits(c: Context, _args: list[str]) -> Output:
    """``clear_vhost_limits [-p <vhost>]``."""
    await c.management.set_vhost_limits(c.vhost, {})
    return Output(f'Clearing vhost "{c.vhost}" limits ...')


@verb("list_vhost_limits", 0)
async def list_vhost_limits(c: Context, _args: list[str]) -> Output:
    """``list_vhost_limits [-p <vhost>]``."""
    vhost = c.broker.access.vhost(c.vhost)
    return Output(
        f'Listing limits for vhost "{c.vhost}" ...',
        text=json.dumps(dict(vhost.limits)) if vhost.limits else None,
    )


# ----- permissions


@verb("set_permissions", 4)
async def set_permissions(c: Context, args: list[str]) -> Output:
    """``set_permissions [-p <vhost>] <username> <conf> <write> <read>``."""
    user, configure, write, read = args
    await c.management.set_permissions(c.vhost, user, configure, write, read)
    return Output(f'Setting permissions for user "{user}" in vhost "{c.vhost}" ...')


@verb("clear_permissions", 1)
async def clear_permissions(c: Context, args: list[str]) -> Output:
    """``clear_permissions [-p <vhost>] <username>``."""
    await c.management.clear_permissions(c.vhost, args[0])
    return Output(f'Clearing permissions for user "{args[0]}" in vhost "{c.vhost}" ...')


@verb("list_permissions", 0)
async def list_permissions(c: Context, _args: list[str]) -> Output:
    """``list_permissions [-p <vhost>]``."""
    c.broker.access.vhost(c.vhost)
    rows = [
        (user, p.configure, p.write, p.read)
        for (vhost, user), p in sorted(c.broker.access.permissions.items())
        if vhost == c.vhost
    ]
    return Output(
        f'Listing permissions for vhost "{c.vhost}" ...',
        ("user", "configure", "write", "read"),
        rows,
    )


@verb("list_user_permissions", 1)
async def list_user_permissions(c: Context, args: list[str]) -> Output:
    """``list_user_permissions <username>``."""
    c.broker.access.user(args[0])
    rows = [
        (vhost, p.configure, p.write, p.read)
        for (vhost, user), p in sorted(c.broker.access.permissions.items())
        if user == args[0]
    ]
    return Output(
        f'Listing permissions for user "{args[0]}" ...',
        ("vhost", "configure", "write", "read"),
        rows,
    )


@verb("set_topic_permissions", 4)
async def set_topic_permissions(c: Context, args: list[str]) -> Output:
    """``set_topic_permissions [-p <vhost>] <username> <exchange> <write> <read>``."""
    user, exchange, write, read = args
    await c.management.set_topic_permissions(c.vhost, user, exchange, write, read)
    return Output(
        f'Setting topic permissions on "{exchange}" for user "{user}" in vhost "{c.vhost}" ...'
    )


@verb("clear_topic_permissions", 1, 2)
async def clear_topic_permissions(c: Context, args: list[str]) -> Output:
    """``clear_topic_permissions [-p <vhost>] <username> [<exchange>]``."""
    exchange = args[1] if len(args) > 1 else None
    await c.management.clear_topic_permissions(c.vhost, args[0], exchange)
    return Output(f'Clearing topic permissions for user "{args[0]}" in vhost "{c.vhost}" ...')


@verb("list_topic_permissions", 0)
async def list_topic_permissions(c: Context, _args: list[str]) -> Output:
    """``list_topic_permissions [-p <vhost>]``."""
    c.broker.access.vhost(c.vhost)
    rows = [
        (user, t.exchange, t.write, t.read)
        for (vhost, user), topics in sorted(c.broker.access.topic_permissions.items())
        if vhost == c.vhost
        for t in topics.values()
    ]
    return Output(
        f'Listing topic permissions for vhost "{c.vhost}" ...',
        ("user", "exchange", "write", "read"),
        rows,
    )


# ----- objects


def _columns(asked: Sequence[str], known: Sequence[str]) -> list[str]:
    for column in asked:
        if column not in known:
            raise CtlError(
                f"Error (argument validation): Info key(s) {column} are not supported", EX_USAGE
            )
    return list(asked)


QUEUE_COLUMNS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "name": lambda q: q["name"],
    "durable": lambda q: q["durable"],
    "auto_delete": lambda q: q["auto_delete"],
    "arguments": lambda q: q["arguments"],
    "exclusive": lambda q: q["exclusive"],
    "messages_ready": lambda q: q["messages_ready"],
    "messages_unacknowledged": lambda q: q["messages_unacknowledged"],
    "messages": lambda q: q["messages"],
    "consumers": lambda q: q["consumers"],
    "state": lambda q: q.get("state", "running"),
    "type": lambda q: q.get("type", "classic"),
    "policy": lambda q: q.get("policy") or "",
}


@verb("list_queues")
async def list_queues(c: Context, args: list[str]) -> Output:
    """``list_queues [-p <vhost>] [<column> ...]`` (default: name messages)."""
    columns = _columns(args or ["name", "messages"], list(QUEUE_COLUMNS))
    c.broker.access.vhost(c.vhost)
    queues = (await c.records()).queues(c.vhost)
    rows = [[QUEUE_COLUMNS[k](q) for k in columns] for q in queues]
    return Output(f"Listing queues for vhost {c.vhost} ...", columns, rows)


EXCHANGE_COLUMNS = ("name", "type", "durable", "auto_delete", "internal", "arguments", "policy")


@verb("list_exchanges")
async def list_exchanges(c: Context, args: list[str]) -> Output:
    """``list_exchanges [-p <vhost>] [<column> ...]`` (default: name type)."""
    columns = _columns(args or ["name", "type"], EXCHANGE_COLUMNS)
    c.broker.access.vhost(c.vhost)
    exchanges = (await c.records()).exchanges(c.vhost)
    rows = [[x.get(k, "") for k in columns] for x in exchanges]
    return Output(f"Listing exchanges for vhost {c.vhost} ...", columns, rows)


BINDING_COLUMNS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "source_name": lambda b: b["source"],
    "source_kind": lambda b: "exchange",
    "destination_name": lambda b: b["destination"],
    "destination_kind": lambda b: b["destination_type"],
    "routing_key": lambda b: b["routing_key"],
    "arguments": lambda b: b["arguments"],
}


@verb("list_bindings")
async def list_bindings(c: Context, args: list[str]) -> Output:
    """``list_bindings [-p <vhost>] [<column> ...]``."""
    columns = _columns(args or list(BINDING_COLUMNS), list(BINDING_COLUMNS))
    c.broker.access.vhost(c.vhost)
    bindings = (await c.records()).bindings(c.vhost)
    rows = [[BINDING_COLUMNS[k](b) for k in columns] for b in bindings]
    return Output(f"Listing bindings for vhost {c.vhost}...", columns, rows)


CONNECTION_COLUMNS = (
    "name", "user", "vhost", "peer_host", "peer_port", "host", "port", "state", "channels",
    "ssl", "frame_max", "channel_max", "timeout",
)  # fmt: skip


@verb("list_connections")
async def list_connections(c: Context, args: list[str]) -> Output:
    """``list_connections [<column> ...]`` (default: user peer_host peer_port state)."""
    columns = _columns(args or ["user", "peer_host", "peer_port", "state"], CONNECTION_COLUMNS)
    connections = (await c.records()).connections()
    rows = [[conn.get(k, "") for k in columns] for conn in connections]
    return Output("Listing connections ...", columns, rows)


CHANNEL_COLUMNS = (
    "name", "number", "user", "vhost", "consumer_count", "messages_unacknowledged",
    "messages_unconfirmed", "prefetch_count", "confirm", "transactional",
)  # fmt: skip


@verb("list_channels")
async def list_channels(c: Context, args: list[str]) -> Output:
    """``list_channels [<column> ...]`` (default: name user consumer_count
    messages_unacknowledged)."""
    default = ["name", "user", "consumer_count", "messages_unacknowledged"]
    columns = _columns(args or default, CHANNEL_COLUMNS)
    channels = (await c.records()).channels()
    rows = [[ch.get(k, "") for k in columns] for ch in channels]
    return Output("Listing channels ...", columns, rows)


CONSUMER_COLUMNS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "queue_name": lambda r: r["queue"]["name"],
    "channel_pid": lambda r: r["channel_details"].get("name", ""),
    "consumer_tag": lambda r: r["consumer_tag"],
    "ack_required": lambda r: r["ack_required"],
    "prefetch_count": lambda r: r["prefetch_count"],
    "active": lambda r: r["active"],
    "activity_status": lambda r: r["activity_status"],
    "arguments": lambda r: r["arguments"],
}


@verb("list_consumers")
async def list_consumers(c: Context, args: list[str]) -> Output:
    """``list_consumers [-p <vhost>] [<column> ...]``."""
    default = [k for k in CONSUMER_COLUMNS if k != "activity_status"]
    columns = _columns(args or default, list(CONSUMER_COLUMNS))
    c.broker.access.vhost(c.vhost)
    consumers = (await c.records()).consumers(c.vhost)
    rows = [[CONSUMER_COLUMNS[k](r) for k in columns] for r in consumers]
    return Output(f"Listing consumers in vhost {c.vhost} ...", columns, rows)


@verb("close_connection", 2)
async def close_connection(c: Context, args: list[str]) -> Output:
    """``close_connection <connection name> <explanation>``."""
    name, explanation = args
    for protocol in list(c.broker.connections.values()):
        if protocol.connection_name == name:
            protocol.force_close(explanation)
            return Output(f'Closing connection "{name}", reason: {explanation}...')
    raise CtlError(f"connection '{name}' not found", EX_DATAERR)


@verb("close_all_connections", 1)
async def close_all_connections(c: Context, args: list[str]) -> Output:
    """``close_all_connections [-p <vhost>] <explanation>``: every connection (of the
    ``-p`` vhost when given)."""
    vhost = c.options.get("vhost")
    for protocol in list(c.broker.connections.values()):
        if vhost is None or protocol.vhost == vhost:
            protocol.force_close(args[0])
    return Output("Closing all connections ...")


@verb("close_all_user_connections", 2)
async def close_all_user_connections(c: Context, args: list[str]) -> Output:
    """``close_all_user_connections <username> <explanation>``."""
    user, explanation = args
    for protocol in list(c.broker.connections.values()):
        if protocol.user == user:
            protocol.force_close(explanation)
    return Output(f'Closing connections of user "{user}", reason: {explanation} ...')


@verb("purge_queue", 1)
async def purge_queue(c: Context, args: list[str]) -> Output:
    """``purge_queue [-p <vhost>] <queue>``."""
    await _queue_method(c, spec.QueuePurge(queue=args[0]))
    return Output(f'Purging queue "{args[0]}" in vhost "{c.vhost}" ...')


@verb("delete_queue")
async def delete_queue(c: Context, args: list[str]) -> Output:
    """``delete_queue [-p <vhost>] <queue> [--if-empty] [--if-unused]``."""
    if_empty, if_unused = _switch(args, "--if-empty"), _switch(args, "--if-unused")
    if len(args) != 1:
        raise CtlError("Error (argument validation): expected one queue name.", EX_USAGE)
    method = spec.QueueDelete(queue=args[0], if_empty=if_empty, if_unused=if_unused)
    reply = await _queue_method(c, method)
    return Output(
        f"Deleting queue '{args[0]}' on vhost '{c.vhost}' ...",
        text=f"Queue was successfully deleted with {reply.message_count} ready messages",
    )


async def _queue_method(c: Context, method: spec.Method) -> Any:
    """Carry out a queue method in the ``-p`` vhost as the broker (an exclusive queue's
    owner acts); the reply method, or CtlError with the AMQP error's text."""
    ref = c.broker.vhosts.get(c.vhost)
    c.broker.access.vhost(c.vhost)
    if ref is None:
        raise CtlError(f"no such vhost '{c.vhost}'", EX_DATAERR)
    described = await ref.ask(Describe(), block=False)
    owner = next(
        (q["exclusive_owner"] or 0 for q in described["queues"] if q["name"] == method.queue), None
    )
    if owner is None:
        raise CtlError(f"queue '{method.queue}' in vhost '{c.vhost}' not found", EX_DATAERR)
    reply = await c.management.ask_vhost(ref, method, owner)
    if reply.error is not None:
        raise CtlError(reply.error.reply_text, EX_DATAERR)
    return reply.method


# ----- definitions


@verb("export_definitions", 1)
async def export_definitions(c: Context, args: list[str]) -> Output:
    """``export_definitions <file>|-``: the client writes what the broker gives it."""
    body = (await c.records()).definitions()
    target = "standard output" if args[0] == "-" else f'a file at "{args[0]}"'
    return Output(f"Exporting definitions in JSON to {target} ...", data=json.dumps(body))


@verb("import_definitions", 1)
async def import_definitions(c: Context, args: list[str]) -> Output:
    """``import_definitions <file>``: the client sends the file's contents."""
    doc = _json(args[0], "definitions")
    if not isinstance(doc, dict):
        raise CtlError("Error: definitions must be a JSON object", EX_DATAERR)
    errors = await c.management.import_definitions(doc, None)
    if errors:
        raise CtlError("\n".join(errors), EX_DATAERR)
    source = c.options.get("source", "")
    return Output(f'Importing definitions in JSON from a file at "{source}" ...')


# ----- status


@verb("status", 0)
async def status(c: Context, _args: list[str]) -> Output:
    """``status``: the node, its version and listeners."""
    settings = c.broker.settings
    lines = [
        f"Status of node {c.broker.cluster_name} ...",
        "Runtime",
        "",
        f"OS PID: {os.getpid()}",
        "Product name: dispatchd",
        f"Product version: {__version__}",
        f"RabbitMQ version: {RABBITMQ_VERSION}",
        "",
        "Listeners",
        "",
        f"Interface: {settings.bind}, port: {settings.port}, protocol: amqp, "
        "purpose: AMQP 0-9-1 and AMQP 1.0",
    ]
    if settings.admin_port:
        lines.append(
            f"Interface: {settings.bind}, port: {settings.admin_port}, protocol: http, "
            "purpose: HTTP API"
        )
    return Output(text="\n".join(lines))


RABBITMQ_VERSION = "3.10.8"
"""The RabbitMQ release whose behaviour dispatchd matches (tools gate features on it)."""


@verb("await_startup", 0)
async def await_startup(_c: Context, _args: list[str]) -> Output:
    """``await_startup``: the broker answers only once it is running."""
    return Output()


@verb("ping", 0)
async def ping(c: Context, _args: list[str]) -> Output:
    """``ping`` (rabbitmq-diagnostics)."""
    return Output(
        f"Will ping {c.broker.cluster_name}. This only checks if the OS process is running "
        "and registered with epmd. Timeout: 60000 ms.",
        text="Ping succeeded",
    )


@verb("check_running", 0)
async def check_running(c: Context, _args: list[str]) -> Output:
    """``check_running`` (rabbitmq-diagnostics)."""
    return Output(
        f"Checking if RabbitMQ is running on node {c.broker.cluster_name} ...",
        text=f"RabbitMQ on node {c.broker.cluster_name} is fully booted and running",
    )


@verb("check_local_alarms", 0)
async def check_local_alarms(c: Context, _args: list[str]) -> Output:
    """``check_local_alarms`` (rabbitmq-diagnostics): dispatchd raises no alarms yet."""
    return Output(
        f"Asking {c.broker.cluster_name} to report any local resource alarms ...",
        text=f"Node {c.broker.cluster_name} reported no local alarms",
    )


@verb("check_port_connectivity", 0)
async def check_port_connectivity(c: Context, _args: list[str]) -> Output:
    """``check_port_connectivity`` (rabbitmq-diagnostics): connect to every listener."""
    settings = c.broker.settings
    ports = [settings.port] + ([settings.admin_port] if settings.admin_port else [])
    for port in ports:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(settings.bind, port), 5)
        except (OSError, TimeoutError) as exc:
            raise CtlError(
                f"Connection to port {port} on node {settings.bind} failed: {exc}"
            ) from None
        writer.close()
    return Output(
        f"Testing TCP connections to all active listeners on node {c.broker.cluster_name} ...",
        text=f"Successfully connected to ports {', '.join(map(str, ports))} "
        f"on node {c.broker.cluster_name}.",
    )
