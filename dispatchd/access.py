"""Users, vhosts and permissions: the pure state RabbitMQ's internal auth backend keeps.

:class:`AccessControl` holds every user (password hash, tags, limits), vhost (metadata,
limits), permission (configure / write / read regexes per user per vhost) and topic
permission, validates changes with RabbitMQ's rules, and answers the two questions the broker
asks: may this user log in, and what may they do in this vhost (a :class:`Grant`, an immutable
snapshot the vhost actor checks every operation against). It knows nothing of actors, sockets
or the store; the broker persists each change and hands the new grants to the vhost concerned.

It also keeps the rest of what RabbitMQ keeps per vhost and per node beside them: policies and
operator policies (validated by ``dispatchd.policies``) and global runtime parameters, so one
copy of it is the whole configuration a definitions import tries, commits or puts back.

Regexes are matched unanchored, as RabbitMQ's ``re:run``; an empty one means "nothing"
(RabbitMQ turns it into ``^$``, which only the empty name matches).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from dispatchd.passwords import ALGORITHMS, DEFAULT_HASHING, check_password, hash_password

if TYPE_CHECKING:
    from dispatchd.policies import Policy

__all__ = [
    "KNOWN_TAGS",
    "AccessControl",
    "AccessError",
    "AlreadyExists",
    "InvalidRegex",
    "NoSuchUser",
    "NoSuchVhost",
    "Grant",
    "Permission",
    "TopicPermission",
    "User",
    "Vhost",
    "compile_permission",
    "topic_refusal",
]

#: The tags RabbitMQ's management plugin gives a meaning to (others are kept, and mean nothing).
KNOWN_TAGS = ("administrator", "monitoring", "policymaker", "management", "impersonator")

USER_LIMITS = ("max-connections", "max-channels")
VHOST_LIMITS = ("max-connections", "max-queues")


class AccessError(ValueError):
    """A change RabbitMQ refuses (no such user or vhost, an invalid regex, a bad limit)."""


class NoSuchUser(AccessError):
    """The user named does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no such user '{name}'")
        self.name = name


class NoSuchVhost(AccessError):
    """The vhost named does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no such vhost '{name}'")
        self.name = name


class AlreadyExists(AccessError):
    """A user or vhost of that name exists (for operations that only create)."""


class InvalidRegex(AccessError):
    """A permission's regular expression does not compile."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"invalid regular expression '{source}': {reason}")
        self.source = source
        self.reason = reason


@dataclass(frozen=True, slots=True)
class User:
    """A user; ``password_hash`` is '' for a user without a password (who cannot log in)."""

    name: str
    password_hash: str = ""
    hashing_algorithm: str = DEFAULT_HASHING
    tags: tuple[str, ...] = ()
    limits: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Vhost:
    """A virtual host's metadata, as RabbitMQ 3.10 keeps it."""

    name: str
    description: str = ""
    tags: tuple[str, ...] = ()
    default_queue_type: str = "undefined"
    limits: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Permission:
    """What a user may configure, write and read in one vhost (regex sources)."""

    configure: str
    write: str
    read: str


@dataclass(frozen=True, slots=True)
class TopicPermission:
    """What routing keys a user may publish with (write) and bind with (read) on one topic
    exchange; ``{username}`` and ``{vhost}`` stand for the user's and the vhost's names."""

    exchange: str
    write: str
    read: str


def compile_permission(source: str) -> re.Pattern[str]:
    """The regex a permission means ('' only matches ''); AccessError if it is invalid."""
    try:
        return re.compile(source or "^$")
    except re.error as exc:
        raise InvalidRegex(source, str(exc)) from None


@dataclass(frozen=True, slots=True)
class Grant:
    """What one user may do in one vhost: compiled regexes, checked per operation.

    ``topics`` maps a topic exchange's name to its (write, read) routing-key regexes, with the
    variables already expanded; an exchange without an entry has no topic restriction.
    """

    user: str
    configure: re.Pattern[str]
    write: re.Pattern[str]
    read: re.Pattern[str]
    topics: Mapping[str, tuple[re.Pattern[str], re.Pattern[str]]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def allows(self, permission: str, name: str) -> bool:
        """Whether ``permission`` ('configure', 'write' or 'read') covers resource ``name``."""
        pattern: re.Pattern[str] = getattr(self, permission)
        return pattern.search(name) is not None

    def topic_pattern(self, permission: str, exchange: str) -> re.Pattern[str] | None:
        """The routing keys the topic permission ('write' or 'read') on ``exchange`` allows
        (None: no topic restriction there)."""
        patterns = self.topics.get(exchange)
        if patterns is None:
            return None
        return patterns[0] if permission == "write" else patterns[1]

    def allows_topic(self, permission: str, exchange: str, routing_key: str) -> bool:
        """Whether the topic permission ('write' or 'read') on ``exchange`` covers the key."""
        pattern = self.topic_pattern(permission, exchange)
        return pattern is None or pattern.search(routing_key) is not None


def topic_refusal(routing_key: str, exchange: str, vhost: str, user: str) -> str:
    """RabbitMQ's text for a routing key a topic permission does not cover."""
    return (
        f"access to topic '{routing_key}' in exchange '{exchange}' in vhost '{vhost}' "
        f"refused for user '{user}'"
    )


def _expand(source: str, user: str, vhost: str) -> str:
    return source.replace("{username}", re.escape(user)).replace("{vhost}", re.escape(vhost))


def _limits(value: Mapping[str, Any], known: tuple[str, ...], what: str) -> dict[str, int]:
    """Validated limits: a negative value means 'no limit' and is dropped, as RabbitMQ."""
    limits: dict[str, int] = {}
    for name, limit in value.items():
        if name not in known:
            raise AccessError(f"unknown {what} limit '{name}'")
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise AccessError(f"{what} limit '{name}' must be an integer, not {limit!r}")
        if limit >= 0:
            limits[name] = limit
    return limits


def parse_tags(value: str | Iterable[str]) -> tuple[str, ...]:
    """Tags from a comma-separated string or a list, blanks dropped, order kept."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(dict.fromkeys(t.strip() for t in items if t.strip()))


class AccessControl:
    """Every user, vhost, permission and topic permission of one broker."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.vhosts: dict[str, Vhost] = {}
        self.permissions: dict[tuple[str, str], Permission] = {}  # (vhost, user)
        self.topic_permissions: dict[tuple[str, str], dict[str, TopicPermission]] = {}
        self.policies: dict[tuple[str, str], Policy] = {}  # (vhost, name)
        self.operator_policies: dict[tuple[str, str], Policy] = {}
        self.global_parameters: dict[str, Any] = {}  # name -> JSON value

    def copy(self) -> AccessControl:
        """An independent copy (the admin's snapshot; the state before a change)."""
        other = AccessControl()
        other.users = dict(self.users)
        other.vhosts = dict(self.vhosts)
        other.permissions = dict(self.permissions)
        other.topic_permissions = {k: dict(v) for k, v in self.topic_permissions.items()}
        other.policies = dict(self.policies)
        other.operator_policies = dict(self.operator_policies)
        other.global_parameters = dict(self.global_parameters)
        return other

    # ----- questions

    def user(self, name: str) -> User:
        """The user called ``name`` (AccessError if there is none)."""
        user = self.users.get(name)
        if user is None:
            raise NoSuchUser(name)
        return user

    def vhost(self, name: str) -> Vhost:
        """The vhost called ``name`` (AccessError if there is none)."""
        vhost = self.vhosts.get(name)
        if vhost is None:
            raise NoSuchVhost(name)
        return vhost

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is theirs; None for an unknown user, a wrong password
        or a user without one."""
        user = self.users.get(name)
        if user is None or not user.password_hash:
            return None
        try:
            ok = check_password(password, user.password_hash, user.hashing_algorithm)
        except ValueError:  # an algorithm we cannot verify: nobody logs in as them
            return None
        return user if ok else None

    def grant(self, vhost: str, user: str) -> Grant | None:
        """What ``user`` may do in ``vhost`` (None: no access at all)."""
        permission = self.permissions.get((vhost, user))
        if permission is None:
            return None
        topics = {
            name: (
                compile_permission(_expand(t.write, user, vhost)),
                compile_permission(_expand(t.read, user, vhost)),
            )
            for name, t in self.topic_permissions.get((vhost, user), {}).items()
        }
        return Grant(
            user,
            compile_permission(permission.configure),
            compile_permission(permission.write),
            compile_permission(permission.read),
            MappingProxyType(topics),
        )

    def vhosts_of(self, user: str) -> frozenset[str]:
        """The vhosts ``user`` has permissions in."""
        return frozenset(vhost for vhost, who in self.permissions if who == user)

    def grants(self, vhost: str) -> dict[str, Grant]:
        """Every user's grant in ``vhost``."""
        out: dict[str, Grant] = {}
        for (where, user), _ in self.permissions.items():
            if where == vhost:
                grant = self.grant(vhost, user)
                if grant is not None:
                    out[user] = grant
        return out

    # ----- users

    def add_user(
        self,
        name: str,
        password: str | None = None,
        tags: Iterable[str] = (),
        password_hash: str | None = None,
        hashing_algorithm: str = DEFAULT_HASHING,
    ) -> User:
        """Create or replace a user (definitions import replaces); a password is hashed here,
        a hash is taken as it is (its algorithm must be one RabbitMQ has)."""
        if not name:
            raise AccessError("user cannot be an empty string")
        if hashing_algorithm not in ALGORITHMS:
            raise AccessError(f"unknown hashing algorithm '{hashing_algorithm}'")
        if password is not None:
            password_hash = hash_password(password, hashing_algorithm)
        old = self.users.get(name)
        user = User(
            name,
            password_hash or "",
            hashing_algorithm,
            parse_tags(tags),
            old.limits if old is not None else {},
        )
        self.users[name] = user
        return user

    def change_password(self, name: str, password: str | None) -> User:
        """A new password (None clears it: the user can no longer log in with one)."""
        user = self.user(name)
        digest = "" if password is None else hash_password(password, DEFAULT_HASHING)
        user = replace(user, password_hash=digest, hashing_algorithm=DEFAULT_HASHING)
        self.users[name] = user
        return user

    def set_user_tags(self, name: str, tags: Iterable[str]) -> User:
        """Replace a user's tags."""
        user = replace(self.user(name), tags=parse_tags(tags))
        self.users[name] = user
        return user

    def set_user_limits(self, name: str, limits: Mapping[str, Any]) -> User:
        """Replace a user's limits (``max-connections``, ``max-channels``)."""
        user = replace(self.user(name), limits=_limits(limits, USER_LIMITS, "user"))
        self.users[name] = user
        return user

    def delete_user(self, name: str) -> User:
        """Remove a user with every permission they held."""
        user = self.user(name)
        del self.users[name]
        for key in [k for k in self.permissions if k[1] == name]:
            del self.permissions[key]
        for key in [k for k in self.topic_permissions if k[1] == name]:
            del self.topic_permissions[key]
        return user

    # ----- vhosts

    def add_vhost(
        self,
        name: str,
        description: str = "",
        tags: Iterable[str] = (),
        default_queue_type: str = "undefined",
    ) -> Vhost:
        """Create a vhost, or update its metadata."""
        old = self.vhosts.get(name)
        vhost = Vhost(
            name,
            description,
            parse_tags(tags),
            default_queue_type or "undefined",
            old.limits if old is not None else {},
        )
        self.vhosts[name] = vhost
        return vhost

    def set_vhost_limits(self, name: str, limits: Mapping[str, Any]) -> Vhost:
        """Replace a vhost's limits (``max-connections``, ``max-queues``)."""
        vhost = replace(self.vhost(name), limits=_limits(limits, VHOST_LIMITS, "vhost"))
        self.vhosts[name] = vhost
        return vhost

    def delete_vhost(self, name: str) -> Vhost:
        """Remove a vhost with every permission and policy in it."""
        vhost = self.vhost(name)
        del self.vhosts[name]
        tables: tuple[dict[tuple[str, str], Any], ...] = (
            self.permissions,
            self.topic_permissions,
            self.policies,
            self.operator_policies,
        )
        for table in tables:
            for key in [k for k in table if k[0] == name]:
                del table[key]
        return vhost

    # ----- permissions

    def set_permissions(
        self, vhost: str, user: str, configure: str, write: str, read: str
    ) -> Permission:
        """Give ``user`` these regexes in ``vhost`` (each must compile)."""
        self.user(user)
        self.vhost(vhost)
        for source in (configure, write, read):
            compile_permission(source)
        permission = Permission(configure, write, read)
        self.permissions[(vhost, user)] = permission
        return permission

    def clear_permissions(self, vhost: str, user: str) -> None:
        """Take every permission of ``user`` in ``vhost`` away."""
        self.user(user)
        self.vhost(vhost)
        self.permissions.pop((vhost, user), None)

    def set_topic_permissions(
        self, vhost: str, user: str, exchange: str, write: str, read: str
    ) -> TopicPermission:
        """Restrict the routing keys ``user`` may use on topic exchange ``exchange``."""
        self.user(user)
        self.vhost(vhost)
        for source in (write, read):
            compile_permission(_expand(source, user, vhost))
        topic = TopicPermission(exchange, write, read)
        self.topic_permissions.setdefault((vhost, user), {})[exchange] = topic
        return topic

    def clear_topic_permissions(self, vhost: str, user: str, exchange: str | None = None) -> None:
        """Remove ``user``'s topic permissions in ``vhost`` (on one exchange, or all)."""
        self.user(user)
        self.vhost(vhost)
        topics = self.topic_permissions.get((vhost, user))
        if topics is None:
            return
        if exchange is None:
            topics.clear()
        else:
            topics.pop(exchange, None)
        if not topics:
            del self.topic_permissions[(vhost, user)]

    # ----- policies and global parameters

    def set_policy(self, policy: Policy) -> Policy:
        """Create or replace a (validated) policy or operator policy of an existing vhost."""
        self.vhost(policy.vhost)
        table = self.operator_policies if policy.operator else self.policies
        table[(policy.vhost, policy.name)] = policy
        return policy

    def set_global_parameter(self, name: str, value: Any) -> None:
        """Create or replace a global runtime parameter (any name, any JSON value, as
        RabbitMQ's ``set_global``)."""
        self.global_parameters[name] = value
