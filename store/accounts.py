"""Users, vhosts, permissions, policies and global parameters in the store: read back at
start-up, written as typed messages.

The StoreActor carries out the write messages in its group commits (``WRITERS``); the first
start writes the defaults directly, with the same functions, before the store actor runs.
Deleting a vhost removes every row it had: exchanges, queues and their messages, bindings,
permissions and policies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import peewee as pw
from pykka import ActorRef

from dispatchd.access import AccessControl, Permission, TopicPermission, User, Vhost
from dispatchd.policies import Policy
from dispatchd.store.models import (
    BindingRow,
    ExchangeRow,
    GlobalParameterRow,
    MessageRow,
    PermissionRow,
    PolicyRow,
    QueueMessageRow,
    QueueRow,
    SchemaVersion,
    TopicPermissionRow,
    UserRow,
    VhostRow,
)

__all__ = [
    "FULL",
    "WRITERS",
    "DeleteUser",
    "DeleteVhost",
    "SaveGlobalParameter",
    "SavePermission",
    "SavePolicy",
    "SaveTopicPermission",
    "SaveUser",
    "SaveVhost",
    "create_defaults",
    "Initialised",
    "initialised",
    "load",
]

Notify = tuple[ActorRef[Any], Any] | None
FULL = (".*", ".*", ".*")  # configure, write, read: everything


@dataclass(frozen=True, slots=True)
class SaveUser:
    """A user was created or changed."""

    user: User
    then: Notify = None


@dataclass(frozen=True, slots=True)
class DeleteUser:
    """A user was deleted, with their permissions."""

    name: str
    then: Notify = None


@dataclass(frozen=True, slots=True)
class SaveVhost:
    """A vhost was created or its metadata or limits changed."""

    vhost: Vhost
    then: Notify = None


@dataclass(frozen=True, slots=True)
class DeleteVhost:
    """A vhost was deleted: every row it had goes."""

    name: str
    then: Notify = None


@dataclass(frozen=True, slots=True)
class SavePermission:
    """A user's permissions in a vhost were set (``permission`` None: cleared)."""

    vhost: str
    user: str
    permission: Permission | None
    then: Notify = None


@dataclass(frozen=True, slots=True)
class SaveTopicPermission:
    """A topic permission was set, or cleared (``topic`` None; ``exchange`` None: all)."""

    vhost: str
    user: str
    exchange: str | None
    topic: TopicPermission | None
    then: Notify = None


@dataclass(frozen=True, slots=True)
class SavePolicy:
    """A policy or operator policy was created or replaced."""

    policy: Policy
    then: Notify = None


@dataclass(frozen=True, slots=True)
class SaveGlobalParameter:
    """A global runtime parameter was set (``value``: any JSON value)."""

    name: str
    value: Any
    then: Notify = None


def _save_user(msg: SaveUser) -> None:
    u = msg.user
    UserRow.insert(
        name=u.name,
        password_hash=u.password_hash,
        hashing_algorithm=u.hashing_algorithm,
        tags=",".join(u.tags),
        limits=json.dumps(dict(u.limits)),
    ).on_conflict(
        conflict_target=[UserRow.name],
        preserve=[UserRow.password_hash, UserRow.hashing_algorithm, UserRow.tags, UserRow.limits],
    ).execute()


def _delete_user(msg: DeleteUser) -> None:
    UserRow.delete().where(UserRow.name == msg.name).execute()
    PermissionRow.delete().where(PermissionRow.user == msg.name).execute()
    TopicPermissionRow.delete().where(TopicPermissionRow.user == msg.name).execute()


def _save_vhost(msg: SaveVhost) -> None:
    v = msg.vhost
    VhostRow.insert(
        name=v.name,
        description=v.description,
        tags=",".join(v.tags),
        default_queue_type=v.default_queue_type,
        limits=json.dumps(dict(v.limits)),
    ).on_conflict(
        conflict_target=[VhostRow.name],
        preserve=[
            VhostRow.description,
            VhostRow.tags,
            VhostRow.default_queue_type,
            VhostRow.limits,
        ],
    ).execute()


def _delete_vhost(msg: DeleteVhost) -> None:
    name = msg.name
    queue_ids = QueueRow.select(QueueRow.id).where(QueueRow.vhost == name)
    qm, m = QueueMessageRow, MessageRow
    qm.delete().where(qm.queue_id.in_(queue_ids)).execute()
    m.delete().where(~pw.fn.EXISTS(qm.select(pw.SQL("1")).where(qm.message_id == m.id))).execute()
    for model in (QueueRow, ExchangeRow, BindingRow, PermissionRow, TopicPermissionRow, PolicyRow):
        model.delete().where(model.vhost == name).execute()
    VhostRow.delete().where(VhostRow.name == name).execute()


def _save_permission(msg: SavePermission) -> None:
    p, where = PermissionRow, (PermissionRow.vhost == msg.vhost) & (PermissionRow.user == msg.user)
    if msg.permission is None:
        p.delete().where(where).execute()
        return
    perm = msg.permission
    p.insert(
        vhost=msg.vhost, user=msg.user, configure=perm.configure, write=perm.write, read=perm.read
    ).on_conflict(
        conflict_target=[p.vhost, p.user], preserve=[p.configure, p.write, p.read]
    ).execute()


def _save_topic_permission(msg: SaveTopicPermission) -> None:
    t = TopicPermissionRow
    where = (t.vhost == msg.vhost) & (t.user == msg.user)
    if msg.topic is None:
        if msg.exchange is not None:
            where &= t.exchange == msg.exchange
        t.delete().where(where).execute()
        return
    topic = msg.topic
    t.insert(
        vhost=msg.vhost, user=msg.user, exchange=topic.exchange, write=topic.write, read=topic.read
    ).on_conflict(
        conflict_target=[t.vhost, t.user, t.exchange], preserve=[t.write, t.read]
    ).execute()


def _save_policy(msg: SavePolicy) -> None:
    p, r = msg.policy, PolicyRow
    r.insert(
        vhost=p.vhost,
        name=p.name,
        operator=p.operator,
        pattern=p.pattern,
        apply_to=p.apply_to,
        priority=json.dumps(p.priority),
        definition=json.dumps(dict(p.definition)),
    ).on_conflict(
        conflict_target=[r.vhost, r.name, r.operator],
        preserve=[r.pattern, r.apply_to, r.priority, r.definition],
    ).execute()


def _save_global_parameter(msg: SaveGlobalParameter) -> None:
    g = GlobalParameterRow
    g.insert(name=msg.name, value=json.dumps(msg.value)).on_conflict(
        conflict_target=[g.name], preserve=[g.value]
    ).execute()


@dataclass(frozen=True, slots=True)
class Initialised:
    """The first start is done (definitions loaded): later starts never create defaults."""

    then: Notify = None


def _initialised(_msg: Initialised) -> None:
    SchemaVersion.update(initialised=True).execute()


WRITERS: dict[type, Callable[[Any], None]] = {
    Initialised: _initialised,
    SaveUser: _save_user,
    DeleteUser: _delete_user,
    SaveVhost: _save_vhost,
    DeleteVhost: _delete_vhost,
    SavePermission: _save_permission,
    SaveTopicPermission: _save_topic_permission,
    SavePolicy: _save_policy,
    SaveGlobalParameter: _save_global_parameter,
}
"""Write message type -> the function that carries it out (in the caller's transaction)."""


def write(db: pw.Database, *messages: Any) -> None:
    """Carry out write messages in one transaction, outside the store actor (first start)."""
    with db.atomic():
        for message in messages:
            WRITERS[type(message)](message)


def create_defaults(
    db: pw.Database, access: AccessControl, user: str, password: str, vhosts: Iterable[str]
) -> None:
    """The first start: the vhosts (the default one, and any the store's durable objects
    name, from before users were stored) and an administrator with full permissions in each."""
    writes: list[Any] = [SaveUser(access.add_user(user, password, ["administrator"]))]
    for name in dict.fromkeys(vhosts):
        description = "Default virtual host" if not writes[1:] else ""
        writes.append(SaveVhost(access.add_vhost(name, description)))
        writes.append(SavePermission(name, user, access.set_permissions(name, user, *FULL)))
    write(db, *writes, Initialised())


def _tags(value: str) -> tuple[str, ...]:
    return tuple(t for t in value.split(",") if t)


def load(db: pw.Database) -> AccessControl:
    """Every user, vhost, permission, topic permission, policy and global parameter in the
    store."""
    access = AccessControl()
    with db.atomic():
        for u in UserRow.select().order_by(UserRow.id):
            access.users[u.name] = User(
                u.name, u.password_hash, u.hashing_algorithm, _tags(u.tags), json.loads(u.limits)
            )
        for v in VhostRow.select().order_by(VhostRow.id):
            access.vhosts[v.name] = Vhost(
                v.name, v.description, _tags(v.tags), v.default_queue_type, json.loads(v.limits)
            )
        for p in PermissionRow.select().order_by(PermissionRow.id):
            access.permissions[(p.vhost, p.user)] = Permission(p.configure, p.write, p.read)
        for t in TopicPermissionRow.select().order_by(TopicPermissionRow.id):
            topics = access.topic_permissions.setdefault((t.vhost, t.user), {})
            topics[t.exchange] = TopicPermission(t.exchange, t.write, t.read)
        for r in PolicyRow.select().order_by(PolicyRow.id):
            policy = Policy(
                r.vhost,
                r.name,
                r.pattern,
                json.loads(r.definition),
                json.loads(r.priority),
                r.apply_to,
                r.operator,
            )
            access.set_policy(policy)
        for g in GlobalParameterRow.select().order_by(GlobalParameterRow.id):
            access.set_global_parameter(g.name, json.loads(g.value))
    return access


def initialised(db: pw.Database) -> bool:
    """Whether the first start's users and vhosts were made (or loaded from definitions)."""
    row = SchemaVersion.select().first()
    return bool(row is not None and row.initialised)
