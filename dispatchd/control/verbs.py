"""What each ``dispatchd ctl`` verb does, with rabbitmqctl 3.10's arguments, messages, columns,
error texts and exit codes (recorded from a real rabbitmqctl; RabbitMQ's CLI words a missing
user or vhost differently from verb to verb, and so do we).

A verb is a coroutine run on the broker's loop: ``(context, arguments) -> Output``. It says its
informational line first (``context.say``: printed even when the verb then fails, as
rabbitmqctl does). User, vhost and permission changes go through
:class:`~dispatchd.management.Management`; listings read a snapshot through the admin's
records (the same data ``/api/...`` shows).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dispatchd import RABBITMQ_VERSION, __version__
from dispatchd.access import AccessError, AlreadyExists, InvalidRegex, NoSuchUser, NoSuchVhost
from dispatchd.actors.runtime import Describe
from dispatchd.admin.rates import RateTracker
from dispatchd.admin.records import Records
from dispatchd.admin.snapshot import collect
from dispatchd.alarms import DISK, MEMORY, DiskLimit, MemoryWatermark, ResourceMonitor, parse_size
from dispatchd.broker import Listener
from dispatchd.control.output import (
    EX_DATAERR,
    EX_NOUSER,
    EX_SOFTWARE,
    EX_UNAVAILABLE,
    EX_USAGE,
    Arguments,
    CtlError,
    Output,
)
from dispatchd.management import Management
from dispatchd.wire import spec

if TYPE_CHECKING:
    from dispatchd.broker import Broker
    from dispatchd.serve import Node

__all__ = ["VERBS", "Context"]


@dataclass(slots=True)
class Context:
    """The node a verb runs against, the ``-p`` vhost, the options, and what it said."""

    node: Node
    vhost: str
    options: Mapping[str, Any]
    info: list[str] = field(default_factory=list)

    @property
    def broker(self) -> Broker:
        """The running app's broker (verbs registered with ``app=True`` only run then)."""
        assert self.node.app is not None
        return self.node.app.broker

    def say(self, line: str) -> None:
        """An informational line (dropped by ``-q``, ``-s`` and the JSON formatter)."""
        self.info.append(line)

    @property
    def management(self) -> Management:
        """The broker's management operations."""
        return Management(self.broker)

    async def records(self) -> Records:
        """Records of a fresh snapshot of the broker."""
        return Records(await collect(self.broker), RateTracker())


Verb = Callable[[Context, list[str]], Awaitable[Output]]
VERBS: dict[str, Verb] = {}

# How a verb words a missing user or vhost: (stderr template, exit code).
Refusal = tuple[str, int]
USER_QUOTED: Refusal = ('Error:\nUser "{}" does not exist', EX_NOUSER)
USER_BARE: Refusal = ("Error:\nUser {} does not exist", EX_NOUSER)
USER_TERM: Refusal = ('Error:\n{{:no_such_user, "{}"}}', EX_UNAVAILABLE)
VHOST_BARE: Refusal = ("Error:\nVirtual host {} does not exist", EX_UNAVAILABLE)
VHOST_QUOTED: Refusal = ("Virtual host '{}' does not exist", EX_DATAERR)


def verb(
    name: str,
    usage: str,
    *arity: int,
    user: Refusal = USER_QUOTED,
    vhost: Refusal = VHOST_QUOTED,
    app: bool | None = True,
) -> Callable[[Verb], Verb]:
    """Register a verb taking one of ``arity`` positional argument counts (none: any), that
    needs the app running (``app=True``), stopped (``False``) or either (``None``), and turn
    the broker's refusals into rabbitmqctl's words."""

    def register(fn: Verb) -> Verb:
        async def checked(context: Context, args: list[str]) -> Output:
            if arity and not min(arity) <= len(args) <= max(arity):
                problem = "not enough" if len(args) < min(arity) else "too many"
                raise _usage(f"{problem} arguments.", name, args, usage)
            if app is not None and (context.node.app is not None) != app:
                raise _usage(APP_NEEDED[app], name, args, usage, prefix="Error")
            try:
                return await fn(context, args)
            except NoSuchUser as exc:
                raise CtlError(user[0].format(exc.name), user[1]) from None
            except NoSuchVhost as exc:
                raise CtlError(vhost[0].format(exc.name), vhost[1]) from None
            except InvalidRegex as exc:
                text = f"Error:\n{{:invalid_regexp, '{exc.source}', {{'{exc.reason}'}}}}"
                raise CtlError(text, EX_UNAVAILABLE) from None
            except AlreadyExists as exc:
                raise CtlError(f"Error:\n{exc}", EX_SOFTWARE) from None
            except AccessError as exc:
                raise CtlError(f"Error:\n{exc}", EX_DATAERR) from None

        VERBS[name] = checked
        return fn

    return register


APP_NEEDED = {
    True: "this command requires the 'rabbit' app to be running on the target node. "
    "Start it with 'rabbitmqctl start_app'.",
    False: "this command requires the 'rabbit' app to be stopped on the target node. "
    "Stop it with 'rabbitmqctl stop_app'.",
}


def _usage(
    problem: str,
    name: str,
    args: Sequence[str],
    usage: str,
    prefix: str = "Error (argument validation)",
    code: int = EX_USAGE,
) -> CtlError:
    given = " ".join([name, *args])
    return CtlError(
        f"{prefix}: {problem}\nArguments given:\n\t{given}\n\nUsage\n\n"
        f"rabbitmqctl [--node <node>] [--longnames] [--quiet] {name} {usage}".rstrip(),
        code,
    )


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


def _limits(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise CtlError("Error:\nJSON decoding error. Reason: badarg", EX_UNAVAILABLE)
    return value


def _compact(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(sorted(value.items())), separators=(",", ":"))


# ----- users


@verb("add_user", "<username> <password>", 2)
async def add_user(c: Context, args: list[str]) -> Output:
    """``add_user <username> <password>``."""
    name, password = args
    if not name:
        raise _usage("Bad argument: user cannot be an empty string", "add_user", args, "")
    c.say(f'Adding user "{name}" ...')
    if name in c.broker.access.users:
        raise CtlError(f'Error:\nUser "{name}" already exists', EX_SOFTWARE)
    await c.management.add_user(name, password)
    c.say(
        "Done. Don't forget to grant the user permissions to some virtual hosts! "
        "See 'rabbitmqctl help set_permissions' to learn more."
    )
    return Output()


@verb("delete_user", "<username>", 1)
async def delete_user(c: Context, args: list[str]) -> Output:
    """``delete_user <username>``: their connections are closed."""
    c.say(f'Deleting user "{args[0]}" ...')
    await c.management.delete_user(args[0])
    return Output()


@verb("change_password", "<username> <password>", 2)
async def change_password(c: Context, args: list[str]) -> Output:
    """``change_password <username> <new_password>``."""
    c.say(f'Changing password for user "{args[0]}" ...')
    await c.management.change_password(args[0], args[1])
    return Output()


@verb("clear_password", "<username>", 1, user=USER_TERM)
async def clear_password(c: Context, args: list[str]) -> Output:
    """``clear_password <username>``: they can no longer log in with a password."""
    c.say(f'Clearing password for user "{args[0]}" ...')
    await c.management.change_password(args[0], None)
    return Output()


@verb("authenticate_user", "<username> <password>", 2)
async def authenticate_user(c: Context, args: list[str]) -> Output:
    """``authenticate_user <username> <password>``."""
    name, password = args
    c.say(f'Authenticating user "{name}" ...')
    if c.broker.access.authenticate(name, password) is None:
        reason = f"user '{name}' - invalid credentials"
        if not password:
            reason = (
                f"user '{name}' attempted to log in with a blank password, which is "
                "prohibited by the internal authN backend. To use TLS/x509 certificate-based "
                "authentication, see the rabbitmq_auth_mechanism_ssl plugin and configure the "
                "client to use the EXTERNAL authentication mechanism. Alternatively change "
                "the password for the user to be non-blank."
            )
        raise CtlError(f'Error:\nError: failed to authenticate user "{name}"\n{reason}', EX_DATAERR)
    return Output(text="Success")


@verb("set_user_tags", "<username> <tag> [...]")
async def set_user_tags(c: Context, args: list[str]) -> Output:
    """``set_user_tags <username> <tag> [...]``."""
    if not args:
        raise _usage("not enough arguments.", "set_user_tags", args, "<username> <tag> [...]")
    name, tags = args[0], args[1:]
    c.say(f'Setting tags for user "{name}" to [{", ".join(tags)}] ...')
    await c.management.set_user_tags(name, tags)
    return Output()


@verb("list_users", "[--no-table-headers]", 0)
async def list_users(c: Context, _args: list[str]) -> Output:
    """``list_users``."""
    c.say("Listing users ...")
    users = sorted(c.broker.access.users.values(), key=lambda u: u.name)
    return Output(("user", "tags"), [(u.name, list(u.tags)) for u in users])


@verb("set_user_limits", "<username> <definition>", 2, user=USER_TERM)
async def set_user_limits(c: Context, args: list[str]) -> Output:
    """``set_user_limits <username> <definition>``: merged into the user's limits."""
    name, definition = args
    c.say(f'Setting user limits to "{definition}" for user "{name}" ...')
    limits = _limits(definition)
    user = c.broker.access.user(name)
    await c.management.set_user_limits(name, {**user.limits, **limits})
    return Output()


@verb("clear_user_limits", "<username> <limit>|all", 2, user=USER_TERM)
async def clear_user_limits(c: Context, args: list[str]) -> Output:
    """``clear_user_limits <username> <limit>|all``."""
    name, limit = args
    if limit == "all":
        c.say(f'Clearing all limits for user "{name}" ...')
    else:
        c.say(f'Clearing "{limit}" limit for user "{name}" ...')
    user = c.broker.access.user(name)
    limits = {} if limit == "all" else {k: v for k, v in user.limits.items() if k != limit}
    await c.management.set_user_limits(name, limits)
    return Output()


@verb("list_user_limits", "[--user <username>] [--global]", user=USER_TERM)
async def list_user_limits(c: Context, args: list[str]) -> Output:
    """``list_user_limits [--user <username>] [--global]``."""
    if _switch(args, "--global"):
        c.say("Listing limits for all users ...")
        users = sorted(c.broker.access.users.values(), key=lambda u: u.name)
        rows = [(u.name, _compact(u.limits)) for u in users if u.limits]
        return Output(("user", "limits"), rows)
    name = _option(args, "--user", c.broker.settings.default_user) or ""
    c.say(f'Listing limits for user "{name}" ...')
    return Output(text=_compact(c.broker.access.user(name).limits))


# ----- vhosts


@verb("add_vhost", "<vhost> [--description <d>] [--tags <t,...>] [--default-queue-type <q>]")
async def add_vhost(c: Context, args: list[str]) -> Output:
    """``add_vhost <vhost> [--description <d>] [--tags <t,...>] [--default-queue-type <q>]``;
    an existing vhost is left as it is."""
    description = _option(args, "--description", "") or ""
    tags = _option(args, "--tags", "") or ""
    queue_type = _option(args, "--default-queue-type", "undefined") or "undefined"
    if len(args) != 1:
        raise _usage("not enough arguments.", "add_vhost", args, "<vhost>")
    c.say(f'Adding vhost "{args[0]}" ...')
    if args[0] not in c.broker.access.vhosts:
        await c.management.add_vhost(args[0], description, tags.split(","), queue_type)
    return Output()


@verb("delete_vhost", "<vhost>", 1)
async def delete_vhost(c: Context, args: list[str]) -> Output:
    """``delete_vhost <vhost>``: its connections close, its objects and messages go."""
    c.say(f'Deleting vhost "{args[0]}" ...')
    await c.management.delete_vhost(args[0])
    return Output()


def _vhost_tags(tags: Sequence[str]) -> Any:
    """RabbitMQ 3.10 shows a vhost's tags as it was given them ('a,b'), or [] for none."""
    return ",".join(tags) if tags else []


@verb("list_vhosts", "[<column> ...]")
async def list_vhosts(c: Context, args: list[str]) -> Output:
    """``list_vhosts [<column> ...]`` (default: name)."""
    known = ("name", "description", "tags", "default_queue_type", "tracing", "cluster_state")
    columns = _columns("list_vhosts", args or ["name"], known)
    c.say("Listing vhosts ...")
    rows = []
    for v in sorted(c.broker.access.vhosts.values(), key=lambda v: v.name):
        values = {
            "name": v.name,
            "description": v.description,
            "tags": _vhost_tags(v.tags),
            "default_queue_type": v.default_queue_type,
            "tracing": False,
            "cluster_state": f"[{{{c.broker.cluster_name}, running}}]",
        }
        rows.append([values[k] for k in columns])
    return Output(columns, rows)


@verb("set_vhost_limits", "[--vhost <vhost>] <definition>", 1)
async def set_vhost_limits(c: Context, args: list[str]) -> Output:
    """``set_vhost_limits [-p <vhost>] <definition>``: replaces the vhost's limits."""
    c.say(f'Setting vhost limits to "{args[0]}" for vhost "{c.vhost}" ...')
    await c.management.set_vhost_limits(c.vhost, _limits(args[0]))
    return Output()


@verb("clear_vhost_limits", "[--vhost <vhost>]", 0)
async def clear_vhost_limits(c: Context, _args: list[str]) -> Output:
    """``clear_vhost_limits [-p <vhost>]``."""
    c.say(f'Clearing vhost "{c.vhost}" limits ...')
    await c.management.set_vhost_limits(c.vhost, {})
    return Output()


@verb("list_vhost_limits", "[--vhost <vhost>] [--global]")
async def list_vhost_limits(c: Context, args: list[str]) -> Output:
    """``list_vhost_limits [-p <vhost>] [--global]``."""
    if _switch(args, "--global"):
        c.say("Listing limits for all vhosts ...")
        vhosts = sorted(c.broker.access.vhosts.values(), key=lambda v: v.name)
        return Output(
            ("vhost", "limits"), [(v.name, _compact(v.limits)) for v in vhosts if v.limits]
        )
    c.say(f'Listing limits for vhost "{c.vhost}" ...')
    limits = c.broker.access.vhost(c.vhost).limits
    return Output(text=_compact(limits) if limits else "")  # rabbitmqctl: an empty line


# ----- permissions


@verb(
    "set_permissions",
    "[--vhost <vhost>] <username> <conf> <write> <read>",
    4,
    user=USER_BARE,
    vhost=VHOST_BARE,
)
async def set_permissions(c: Context, args: list[str]) -> Output:
    """``set_permissions [-p <vhost>] <username> <conf> <write> <read>``."""
    user, configure, write, read = args
    c.say(f'Setting permissions for user "{user}" in vhost "{c.vhost}" ...')
    await c.management.set_permissions(c.vhost, user, configure, write, read)
    return Output()


@verb("clear_permissions", "[--vhost <vhost>] <username>", 1, user=USER_BARE, vhost=VHOST_BARE)
async def clear_permissions(c: Context, args: list[str]) -> Output:
    """``clear_permissions [-p <vhost>] <username>``."""
    c.say(f'Clearing permissions for user "{args[0]}" in vhost "{c.vhost}" ...')
    await c.management.clear_permissions(c.vhost, args[0])
    return Output()


@verb("list_permissions", "[--vhost <vhost>]", 0)
async def list_permissions(c: Context, _args: list[str]) -> Output:
    """``list_permissions [-p <vhost>]``."""
    c.say(f'Listing permissions for vhost "{c.vhost}" ...')
    c.broker.access.vhost(c.vhost)
    rows = [
        (user, p.configure, p.write, p.read)
        for (vhost, user), p in sorted(c.broker.access.permissions.items())
        if vhost == c.vhost
    ]
    return Output(("user", "configure", "write", "read"), rows, empty_json="[]")


@verb("list_user_permissions", "<username>", 1, user=USER_TERM)
async def list_user_permissions(c: Context, args: list[str]) -> Output:
    """``list_user_permissions <username>``."""
    c.say(f'Listing permissions for user "{args[0]}" ...')
    c.broker.access.user(args[0])
    rows = [
        (vhost, p.configure, p.write, p.read)
        for (vhost, user), p in sorted(c.broker.access.permissions.items())
        if user == args[0]
    ]
    return Output(("vhost", "configure", "write", "read"), rows, empty_json="[]")


@verb(
    "set_topic_permissions",
    "[--vhost <vhost>] <username> <exchange> <write> <read>",
    4,
    user=USER_BARE,
    vhost=VHOST_BARE,
)
async def set_topic_permissions(c: Context, args: list[str]) -> Output:
    """``set_topic_permissions [-p <vhost>] <username> <exchange> <write> <read>``."""
    user, exchange, write, read = args
    c.say(f'Setting topic permissions on "{exchange}" for user "{user}" in vhost "{c.vhost}" ...')
    await c.management.set_topic_permissions(c.vhost, user, exchange, write, read)
    return Output()


@verb(
    "clear_topic_permissions",
    "[--vhost <vhost>] <username> [<exchange>]",
    1,
    2,
    user=USER_BARE,
    vhost=VHOST_BARE,
)
async def clear_topic_permissions(c: Context, args: list[str]) -> Output:
    """``clear_topic_permissions [-p <vhost>] <username> [<exchange>]``."""
    exchange = args[1] if len(args) > 1 else None
    if exchange is None:
        c.say(f'Clearing topic permissions for user "{args[0]}" in vhost "{c.vhost}" ...')
    else:
        c.say(
            f'Clearing topic permissions on "{exchange}" for user "{args[0]}" '
            f'in vhost "{c.vhost}" ...'
        )
    await c.management.clear_topic_permissions(c.vhost, args[0], exchange)
    return Output()


@verb("list_topic_permissions", "[--vhost <vhost>]", 0)
async def list_topic_permissions(c: Context, _args: list[str]) -> Output:
    """``list_topic_permissions [-p <vhost>]``."""
    c.say(f'Listing topic permissions for vhost "{c.vhost}" ...')
    c.broker.access.vhost(c.vhost)
    rows = [
        (user, t.exchange, t.write, t.read)
        for (vhost, user), topics in sorted(c.broker.access.topic_permissions.items())
        if vhost == c.vhost
        for t in topics.values()
    ]
    return Output(("user", "exchange", "write", "read"), rows, empty_json="[]")


@verb("list_user_topic_permissions", "<username>", 1, user=USER_TERM)
async def list_user_topic_permissions(c: Context, args: list[str]) -> Output:
    """``list_user_topic_permissions <username>`` (rabbitmqctl prints no header here)."""
    c.say(f'Listing topic permissions for user "{args[0]}" ...')
    c.broker.access.user(args[0])
    rows = [
        (vhost, t.exchange, t.write, t.read)
        for (vhost, user), topics in sorted(c.broker.access.topic_permissions.items())
        if user == args[0]
        for t in topics.values()
    ]
    output = Output(("vhost", "exchange", "write", "read"), rows, empty_json="[]")
    if c.options.get("formatter") == "json":
        return output
    return Output(text="\n".join("\t".join(row) for row in rows) if rows else None)


# ----- policies

POLICY_USAGE = "[--vhost <vhost>] [--no-table-headers] [--timeout <timeout>]"


async def _policies(c: Context, name: str, args: list[str], operator: bool, says: str) -> Output:
    """The ``-p`` vhost's policies (``operator``: its operator policies), as rabbitmqctl
    lists them: the definition as JSON text, and an empty listing as an empty line."""
    headers = not _switch(args, "--no-table-headers")
    if args:
        raise _usage("too many arguments.", name, args, POLICY_USAGE)
    c.say(f'{says} for vhost "{c.vhost}" ...')
    access = c.broker.access
    access.vhost(c.vhost)
    table = access.operator_policies if operator else access.policies
    rows = [
        (p.vhost, p.name, p.pattern, p.apply_to, _compact(p.definition), p.priority)
        for (vhost, _), p in sorted(table.items())
        if vhost == c.vhost
    ]
    if not rows and c.options.get("formatter") != "json":
        return Output(text="")
    columns = ("vhost", "name", "pattern", "apply-to", "definition", "priority")
    return Output(columns, rows, empty_json="[]", headers=headers)


@verb("list_policies", POLICY_USAGE)
async def list_policies(c: Context, args: list[str]) -> Output:
    """``list_policies [-p <vhost>] [--no-table-headers]``."""
    return await _policies(c, "list_policies", args, False, "Listing policies")


@verb("list_operator_policies", POLICY_USAGE)
async def list_operator_policies(c: Context, args: list[str]) -> Output:
    """``list_operator_policies [-p <vhost>] [--no-table-headers]``."""
    return await _policies(
        c, "list_operator_policies", args, True, "Listing operator policy overrides"
    )


# ----- objects


def _columns(name: str, asked: Sequence[str], known: Sequence[str]) -> list[str]:
    unknown = [column for column in asked if column not in known]
    if unknown:
        problem = f"Info key(s) {','.join(unknown)} are not supported"
        raise _usage(problem, name, asked, "[<column> ...]")
    return list(asked)


Getter = Callable[[dict[str, Any]], Any]

QUEUE_COLUMNS: dict[str, Getter] = {
    "name": lambda q: q["name"],
    "durable": lambda q: q["durable"],
    "auto_delete": lambda q: q["auto_delete"],
    "arguments": lambda q: Arguments(q["arguments"]),
    "policy": lambda q: q.get("policy") or "",
    "exclusive": lambda q: q["exclusive"],
    "messages_ready": lambda q: q["messages_ready"],
    "messages_unacknowledged": lambda q: q["messages_unacknowledged"],
    "messages": lambda q: q["messages"],
    "consumers": lambda q: q["consumers"],
    "state": lambda q: q.get("state", "running"),
    "type": lambda q: q.get("type", "classic"),
}


async def _listing(
    c: Context, name: str, args: list[str], what: str, columns: Mapping[str, Getter],
    default: Sequence[str],
) -> Output:  # fmt: skip
    """A listing of admin records (``what``: the Records method) in the asked columns."""
    vhost_wide = what in ("queues", "exchanges", "bindings", "consumers")
    if vhost_wide:
        _switch(args, "--online")
        _switch(args, "--offline")
        _switch(args, "--local")
    headers = not _switch(args, "--no-table-headers")
    asked = _columns(name, args or list(default), list(columns))
    records = await c.records()
    items = getattr(records, what)(c.vhost) if vhost_wide else getattr(records, what)()
    rows = [[columns[k](item) for k in asked] for item in items]
    return Output(asked, rows, headers=headers)


@verb("list_queues", "[--vhost <vhost>] [--no-table-headers] [<column> ...]")
async def list_queues(c: Context, args: list[str]) -> Output:
    """``list_queues [-p <vhost>] [<column> ...]`` (default: name messages)."""
    c.say(f"Timeout: {float(c.options.get('timeout') or 60.0)} seconds ...")
    c.say(f"Listing queues for vhost {c.vhost} ...")
    return await _listing(c, "list_queues", args, "queues", QUEUE_COLUMNS, ("name", "messages"))


EXCHANGE_COLUMNS: dict[str, Getter] = {
    "name": lambda x: x["name"],
    "type": lambda x: x["type"],
    "durable": lambda x: x["durable"],
    "auto_delete": lambda x: x["auto_delete"],
    "internal": lambda x: x["internal"],
    "arguments": lambda x: Arguments(x["arguments"]),
    "policy": lambda x: x.get("policy") or "",
}


@verb("list_exchanges", "[--vhost <vhost>] [--no-table-headers] [<column> ...]")
async def list_exchanges(c: Context, args: list[str]) -> Output:
    """``list_exchanges [-p <vhost>] [<column> ...]`` (default: name type)."""
    c.say(f"Listing exchanges for vhost {c.vhost} ...")
    return await _listing(
        c, "list_exchanges", args, "exchanges", EXCHANGE_COLUMNS, ("name", "type")
    )


BINDING_COLUMNS: dict[str, Getter] = {
    "source_name": lambda b: b["source"],
    "source_kind": lambda b: "exchange",
    "destination_name": lambda b: b["destination"],
    "destination_kind": lambda b: b["destination_type"],
    "routing_key": lambda b: b["routing_key"],
    "arguments": lambda b: Arguments(b["arguments"]),
}


@verb("list_bindings", "[--vhost <vhost>] [--no-table-headers] [<column> ...]")
async def list_bindings(c: Context, args: list[str]) -> Output:
    """``list_bindings [-p <vhost>] [<column> ...]``."""
    c.say(f"Listing bindings for vhost {c.vhost}...")
    return await _listing(
        c, "list_bindings", args, "bindings", BINDING_COLUMNS, list(BINDING_COLUMNS)
    )


def _field(name: str, default: Any = "") -> Getter:
    return lambda record: record.get(name, default)


CONNECTION_COLUMNS: dict[str, Getter] = {
    name: _field(name)
    for name in ("name", "user", "vhost", "peer_host", "peer_port", "host", "port", "state",
                 "channels", "ssl", "frame_max", "channel_max", "timeout", "client_properties")
} | {
    "auth_mechanism": _field("auth_mechanism"),
    **{name: _field(name) for name in ("ssl_protocol", "ssl_cipher", "peer_cert_subject")},
    **{name: _field(name) for name in ("peer_cert_issuer", "peer_cert_validity")},
    "protocol": lambda _r: "{0,9,1}",
}  # fmt: skip


@verb("list_connections", "[--no-table-headers] [<column> ...]")
async def list_connections(c: Context, args: list[str]) -> Output:
    """``list_connections [<column> ...]`` (default: user peer_host peer_port state)."""
    c.say("Listing connections ...")
    default = ("user", "peer_host", "peer_port", "state")
    return await _listing(c, "list_connections", args, "connections", CONNECTION_COLUMNS, default)


CHANNEL_COLUMNS: dict[str, Getter] = {
    name: _field(name)
    for name in ("name", "number", "user", "vhost", "consumer_count", "messages_unacknowledged",
                 "messages_unconfirmed", "prefetch_count", "confirm", "transactional")
} | {
    "pid": _field("name"),
    "connection": lambda ch: ch.get("connection_details", {}).get("name", ""),
}  # fmt: skip


@verb("list_channels", "[--no-table-headers] [<column> ...]")
async def list_channels(c: Context, args: list[str]) -> Output:
    """``list_channels [<column> ...]`` (default: pid user consumer_count
    messages_unacknowledged; a channel's pid is its name here)."""
    c.say("Listing channels ...")
    default = ("pid", "user", "consumer_count", "messages_unacknowledged")
    return await _listing(c, "list_channels", args, "channels", CHANNEL_COLUMNS, default)


CONSUMER_COLUMNS: dict[str, Getter] = {
    "queue_name": lambda r: r["queue"]["name"],
    "channel_pid": lambda r: r["channel_details"].get("name", ""),
    "consumer_tag": lambda r: r["consumer_tag"],
    "ack_required": lambda r: r["ack_required"],
    "prefetch_count": lambda r: r["prefetch_count"],
    "active": lambda r: r["active"],
    "activity_status": lambda r: r["activity_status"],
    "arguments": lambda r: Arguments(r["arguments"]),
}


@verb("list_consumers", "[--vhost <vhost>] [--no-table-headers] [<column> ...]")
async def list_consumers(c: Context, args: list[str]) -> Output:
    """``list_consumers [-p <vhost>] [<column> ...]``."""
    c.say(f"Listing consumers in vhost {c.vhost} ...")
    default = [k for k in CONSUMER_COLUMNS if k != "activity_status"]
    return await _listing(c, "list_consumers", args, "consumers", CONSUMER_COLUMNS, default)


# ----- connections and queues


@verb("close_connection", "<connection name> <explanation>", 2)
async def close_connection(c: Context, args: list[str]) -> Output:
    """``close_connection <connection name> <explanation>`` (a connection is named as the
    API names it, ``peer -> local``)."""
    name, explanation = args
    c.say(f"Closing connection {name}, reason: {explanation}...")
    for protocol in list(c.broker.connections.values()):
        if protocol.connection_name == name:
            protocol.force_close(explanation)
    return Output()


@verb("close_all_connections", "[--vhost <vhost>] [--global] <explanation>", 1, 2)
async def close_all_connections(c: Context, args: list[str]) -> Output:
    """``close_all_connections [-p <vhost>] [--global] <explanation>``."""
    everywhere = _switch(args, "--global")
    explanation = args[0]
    if everywhere:
        c.say(
            f"Closing all connections to node {c.broker.cluster_name} (across all vhosts), "
            f"reason: {explanation}..."
        )
    else:
        c.say(f"Closing all connections in vhost {c.vhost}, reason: {explanation}...")
    closed = 0
    for protocol in list(c.broker.connections.values()):
        if protocol.vhost and (everywhere or protocol.vhost == c.vhost):
            protocol.force_close(explanation)
            closed += 1
    return Output(text=f"Closed {closed} connections")


@verb("close_all_user_connections", "<username> <explanation>", 2)
async def close_all_user_connections(c: Context, args: list[str]) -> Output:
    """``close_all_user_connections <username> <explanation>``."""
    user, explanation = args
    c.say(f"Closing connections of user {user}, reason: {explanation}...")
    for protocol in list(c.broker.connections.values()):
        if protocol.user == user and protocol.vhost:
            protocol.force_close(explanation)
    return Output()


@verb("purge_queue", "[--vhost <vhost>] <queue>", 1)
async def purge_queue(c: Context, args: list[str]) -> Output:
    """``purge_queue [-p <vhost>] <queue>``."""
    c.say(f"Purging queue '{args[0]}' in vhost '{c.vhost}' ...")
    await _queue_method(c, spec.QueuePurge(queue=args[0]))
    return Output()


@verb("delete_queue", "[--vhost <vhost>] <queue> [--if-empty] [--if-unused]")
async def delete_queue(c: Context, args: list[str]) -> Output:
    """``delete_queue [-p <vhost>] <queue> [--if-empty] [--if-unused]``."""
    if_empty, if_unused = _switch(args, "--if-empty"), _switch(args, "--if-unused")
    if len(args) != 1:
        raise _usage("not enough arguments.", "delete_queue", args, "<queue>")
    c.say(f"Deleting queue '{args[0]}' on vhost '{c.vhost}' ...")
    method = spec.QueueDelete(queue=args[0], if_empty=if_empty, if_unused=if_unused)
    reply = await _queue_method(c, method)
    return Output(text=f"Queue was successfully deleted with {reply.message_count} messages")


async def _queue_method(c: Context, method: Any) -> Any:
    """Carry out a queue method in the ``-p`` vhost as the broker (an exclusive queue's
    owner acts); the reply method, or CtlError with the AMQP error's text."""
    c.broker.access.vhost(c.vhost)
    ref = c.broker.vhosts[c.vhost]
    described = await ref.ask(Describe(), block=False)
    owner = next(
        (q["exclusive_owner"] or 0 for q in described["queues"] if q["name"] == method.queue), None
    )
    if owner is None:
        raise CtlError(
            f"Error:\n{{:not_found, \"queue '{method.queue}' in vhost '{c.vhost}'\"}}", EX_DATAERR
        )
    reply = await c.management.ask_vhost(ref, method, owner)
    if reply.error is not None:
        raise CtlError(f"Error:\n{reply.error.reply_text}", EX_DATAERR)
    return reply.method


# ----- definitions


@verb("export_definitions", "<file>|-", 1)
async def export_definitions(c: Context, args: list[str]) -> Output:
    """``export_definitions <file>|-``: the client writes what the broker gives it."""
    target = "standard output" if args[0] == "-" else f'a file at "{args[0]}"'
    c.say(f"Exporting definitions in JSON to {target} ...")
    body = (await c.records()).definitions()
    return Output(data=json.dumps(body, separators=(",", ":"), sort_keys=True))


@verb("import_definitions", "<file>", 1)
async def import_definitions(c: Context, args: list[str]) -> Output:
    """``import_definitions <file>``: the client sends the file's contents."""
    c.say(f'Importing definitions in JSON from a file at "{c.options.get("source", "")}" ...')
    try:
        doc = json.loads(args[0])
    except ValueError as exc:
        raise CtlError(f"Error:\nfailed to decode the definitions: {exc}", EX_DATAERR) from None
    if not isinstance(doc, dict):
        raise CtlError("Error:\ndefinitions must be a JSON object", EX_DATAERR)
    errors = await c.management.import_definitions(doc, None)
    if errors:
        raise CtlError("Error:\n" + "\n".join(errors), EX_DATAERR)
    return Output()


# ----- status and diagnostics


@verb("status", "", 0)
async def status(c: Context, _args: list[str]) -> Output:
    """``status``: the node, its versions and listeners."""
    c.say(f"Status of node {c.broker.cluster_name} ...")
    lines = [
        "Runtime",
        "",
        f"OS PID: {os.getpid()}",
        f"RabbitMQ version: {RABBITMQ_VERSION}",
        f"Node name: {c.broker.cluster_name}",
        "Product name: dispatchd",
        f"Product version: {__version__}",
        "",
        "Listeners",
        "",
        *_listener_lines(c.broker),
    ]
    return Output(text="\n".join(lines))


@verb("listeners", "", 0)
async def listeners(c: Context, _args: list[str]) -> Output:
    """``listeners`` (rabbitmq-diagnostics): the protocol listeners."""
    c.say(f"Asking node {c.broker.cluster_name} to report its protocol listeners ...")
    lines = _listener_lines(c.broker)
    return Output(
        text="\n".join(lines) or f"Node {c.broker.cluster_name} reported no enabled listeners."
    )


def _listener_lines(broker: Broker) -> list[str]:
    return [
        f"Interface: {x.interface}, port: {x.port}, protocol: {x.protocol}, "
        f"purpose: {LISTENER_PURPOSES[x.protocol]}"
        for x in broker.listeners
    ]


#: rabbitmq-diagnostics status's purpose column, per listener protocol.
LISTENER_PURPOSES = {
    "amqp": "AMQP 0-9-1 and AMQP 1.0",
    "amqp/ssl": "AMQP 0-9-1 and AMQP 1.0 over TLS",
    "http": "HTTP API",
    "https": "HTTP API over TLS (HTTPS)",
}


@verb("version", "", 0, app=None)
async def version(_c: Context, _args: list[str]) -> Output:
    """``version``: the RabbitMQ version dispatchd behaves as."""
    return Output(text=RABBITMQ_VERSION)


@verb("await_startup", "[--timeout <timeout>]", 0, app=None)
async def await_startup(c: Context, _args: list[str]) -> Output:
    """``await_startup``: answers once the app runs (the client retries until the node
    answers at all)."""
    timeout = max(float(c.options.get("timeout") or 60) - 1, 0.1)  # before the client gives up
    try:
        await asyncio.wait_for(c.node.running.wait(), timeout)
    except TimeoutError:
        raise CtlError(
            f"Error:\nTimed out waiting for the app to start on node {c.node.name}", EX_SOFTWARE
        ) from None
    return Output()


@verb("stop_app", "", 0, app=None)
async def stop_app(c: Context, _args: list[str]) -> Output:
    """``stop_app``: close every connection and stop the broker, keeping the node (and this
    socket) up; a no-op when stopped."""
    c.say(f"Stopping rabbit application on node {c.node.name} ...")
    await c.node.stop_app()
    return Output()


@verb("start_app", "", 0, app=None)
async def start_app(c: Context, _args: list[str]) -> Output:
    """``start_app``: start the broker again; a no-op while it runs."""
    c.say(f"Starting node {c.node.name} ...")
    try:
        await c.node.start_app()
    except SystemExit as exc:  # the app's one-line start-up refusal
        raise CtlError(f"Error:\n{exc}", EX_SOFTWARE) from None
    return Output()


@verb("reset", "", 0, app=False)
async def reset(c: Context, _args: list[str]) -> Output:
    """``reset`` (app stopped): wipe users, vhosts, definitions and messages."""
    c.say(f"Resetting node {c.node.name} ...")
    await c.node.reset()
    return Output()


@verb("ping", "", 0, app=None)
async def ping(c: Context, _args: list[str]) -> Output:
    """``ping`` (rabbitmq-diagnostics)."""
    c.say(
        f"Will ping {c.node.name}. This only checks if the OS process is running "
        "and registered with epmd. Timeout: 60000 ms."
    )
    return Output(text="Ping succeeded")


@verb("check_running", "", 0, app=None)
async def check_running(c: Context, _args: list[str]) -> Output:
    """``check_running`` (rabbitmq-diagnostics)."""
    c.say(f"Checking if RabbitMQ is running on node {c.node.name} ...")
    if c.node.app is None:
        raise CtlError(
            f"Error:\nRabbitMQ on node {c.node.name} is not running or has not fully booted "
            "yet (check with is_booting)",
            EX_UNAVAILABLE,
        )
    return Output(text=f"RabbitMQ on node {c.node.name} is fully booted and running")


@verb("check_local_alarms", "", 0)
async def check_local_alarms(c: Context, _args: list[str]) -> Output:
    """``check_local_alarms`` (rabbitmq-diagnostics): exit 69 with a line per alarm on, in
    the order they were raised."""
    node = c.broker.cluster_name
    c.say(f"Asking node {node} to report any local resource alarms ...")
    lines = [ALARM_LINES[r].format(node) for r in c.broker.alarms.active]
    if lines:
        raise CtlError("Error:\n" + "\n".join(lines), EX_UNAVAILABLE)
    return Output(text=f"Node {node} reported no local alarms")


ALARM_LINES = {MEMORY: "Memory alarm on node {}", DISK: "Free disk space alarm on node {}"}
WATERMARK_USAGE = "<fraction> | absolute <value>"
DISK_USAGE = "<disk_limit> | mem_relative <fraction>"


def _monitor(c: Context) -> ResourceMonitor:
    monitor = c.broker.monitor
    assert monitor is not None  # started with the app
    return monitor


@verb("set_vm_memory_high_watermark", WATERMARK_USAGE, 1, 2)
async def set_vm_memory_high_watermark(c: Context, args: list[str]) -> Output:
    """``set_vm_memory_high_watermark <fraction>`` or ``absolute <size>``: applied at once."""
    name = "set_vm_memory_high_watermark"
    absolute = len(args) == 2
    if absolute and args[0] != "absolute":
        raise _usage("Bad argument.", name, args, WATERMARK_USAGE, code=EX_DATAERR)
    try:
        if absolute:
            watermark = MemoryWatermark(None, parse_size(args[1]))
        else:
            watermark = MemoryWatermark.of_fraction(float(args[0]))
    except ValueError as exc:
        problem = f"Bad argument: {exc}" if "fraction" in str(exc) else "Bad argument."
        raise _usage(problem, name, args, WATERMARK_USAGE, code=EX_DATAERR) from None
    shown = f"{args[1]} bytes" if absolute else args[0]
    c.say(f"Setting memory threshold on {c.broker.cluster_name} to {shown} ...")
    _monitor(c).set_watermark(watermark)
    return Output()


@verb("set_disk_free_limit", DISK_USAGE, 1, 2)
async def set_disk_free_limit(c: Context, args: list[str]) -> Output:
    """``set_disk_free_limit <size>`` or ``mem_relative <fraction>``: applied at once."""
    name = "set_disk_free_limit"
    relative = len(args) == 2
    if relative and args[0] != "mem_relative":
        raise _usage("Bad argument.", name, args, DISK_USAGE, code=EX_DATAERR)
    try:
        limit = DiskLimit(None, float(args[1])) if relative else DiskLimit(parse_size(args[0]))
    except ValueError:
        raise _usage("Bad argument.", name, args, DISK_USAGE, code=EX_DATAERR) from None
    shown = f"{args[1]} times the total RAM" if relative else f"{args[0]} bytes"
    c.say(f"Setting disk free limit on {c.broker.cluster_name} to {shown} ...")
    _monitor(c).set_disk_limit(limit)
    return Output()


async def _connect(host: str, listener: Listener) -> None:
    """Connect to a listener and hang up; over TLS, once the handshake is done (whatever the
    server thought of the certificate we did not send: the port answered)."""
    tls = None
    if listener.protocol in ("amqp/ssl", "https"):
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    _, writer = await asyncio.open_connection(host, listener.port, ssl=tls)
    writer.close()


#: Where to connect to reach a listener bound to every interface.
LOCAL = {"0.0.0.0": "127.0.0.1", "::": "::1"}


@verb("check_port_connectivity", "", 0)
async def check_port_connectivity(c: Context, _args: list[str]) -> Output:
    """``check_port_connectivity`` (rabbitmq-diagnostics): connect to every listener."""
    c.say(f"Testing TCP connections to all active listeners on node {c.broker.cluster_name} ...")
    for listener in c.broker.listeners:
        host = LOCAL.get(listener.ip, listener.ip)
        try:
            await asyncio.wait_for(_connect(host, listener), 5)
        except (OSError, TimeoutError) as exc:
            failed = f"Error:\nConnection to port {listener.port} on node {host} failed: {exc}"
            raise CtlError(failed, EX_UNAVAILABLE) from None
    ports = list(dict.fromkeys(x.port for x in c.broker.listeners))
    return Output(
        text=f"Successfully connected to ports {', '.join(map(str, ports))} "
        f"on node {c.broker.cluster_name}."
    )
