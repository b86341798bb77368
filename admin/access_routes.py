"""The management API's users, vhosts, permissions and limits (RabbitMQ 3.10's endpoints).

Reads come from the snapshot's copy of the broker's access state; every change goes through
:class:`~dispatchd.management.Management` (validated, committed to the store, then in force),
so the API, ``dispatchd ctl`` and definitions imports change things one way. Only
administrators reach these routes, except the vhost limits (each user sees those of the
vhosts they list).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import bottle

from dispatchd.access import parse_tags
from dispatchd.admin.auth import Level
from dispatchd.admin.http import (
    ApiError,
    bad_request,
    created,
    current_user,
    json_object,
    not_found,
    required,
    text,
)
from dispatchd.passwords import DEFAULT_HASHING

if TYPE_CHECKING:
    from dispatchd.access import AccessControl, User, Vhost
    from dispatchd.admin.app import AdminApp

__all__ = ["add_access_routes"]


def add_access_routes(app: AdminApp) -> None:
    """Serve the access endpoints on ``app``."""
    AccessRoutes(app).add()


class AccessRoutes:
    """Handlers for users, vhosts, permissions, topic permissions and limits."""

    def __init__(self, app: AdminApp) -> None:
        self.app = app
        self.call = app.commands.call
        self.management = app.commands.management

    def add(self) -> None:
        """Register the routes."""
        admin = Level.ADMINISTRATOR

        def r(path: str, method: str, handler: Any) -> None:
            self.app.route(path, method, handler, admin)

        r("/api/users", "GET", lambda: self.app.records().users())
        r("/api/users/without-permissions", "GET", self.users_without_permissions)
        r("/api/users/bulk-delete", "POST", self.bulk_delete_users)
        r("/api/users/<name>", "GET", self.get_user)
        r("/api/users/<name>", "PUT", self.put_user)
        r("/api/users/<name>", "DELETE", self.delete_user)
        r("/api/users/<name>/permissions", "GET", lambda name: self._permissions("user", name))
        r(
            "/api/users/<name>/topic-permissions",
            "GET",
            lambda name: self._topic_permissions("user", name),
        )
        r("/api/vhosts/<vhost>", "PUT", self.put_vhost)
        r("/api/vhosts/<vhost>", "DELETE", self.delete_vhost)
        r(
            "/api/vhosts/<vhost>/permissions",
            "GET",
            lambda vhost: self._permissions("vhost", vhost),
        )
        r(
            "/api/vhosts/<vhost>/topic-permissions",
            "GET",
            lambda vhost: self._topic_permissions("vhost", vhost),
        )
        r("/api/permissions", "GET", lambda: self.app.records().permissions())
        r("/api/permissions/<vhost>/<user>", "GET", self.get_permission)
        r("/api/permissions/<vhost>/<user>", "PUT", self.put_permission)
        r("/api/permissions/<vhost>/<user>", "DELETE", self.delete_permission)
        r("/api/topic-permissions", "GET", lambda: self.app.records().topic_permissions())
        r("/api/topic-permissions/<vhost>/<user>", "GET", self.get_topic_permissions)
        r("/api/topic-permissions/<vhost>/<user>", "PUT", self.put_topic_permission)
        r("/api/topic-permissions/<vhost>/<user>", "DELETE", self.delete_topic_permissions)
        self.app.route("/api/vhost-limits", "GET", self.get_all_vhost_limits)
        self.app.route("/api/vhost-limits/<vhost>", "GET", self.get_vhost_limits)
        r("/api/vhost-limits/<vhost>/<name>", "PUT", self.put_vhost_limit)
        r("/api/vhost-limits/<vhost>/<name>", "DELETE", self.delete_vhost_limit)
        r("/api/user-limits", "GET", lambda: self.app.records().user_limits())
        r("/api/user-limits/<user>", "GET", self.get_user_limits)
        r("/api/user-limits/<user>/<name>", "PUT", self.put_user_limit)
        r("/api/user-limits/<user>/<name>", "DELETE", self.delete_user_limit)

    # ----- helpers

    def _access(self) -> AccessControl:
        return self.app.access()

    def _user_exists(self, name: str) -> User:
        """The user (404 if there is none)."""
        user = self._access().users.get(name)
        if user is None:
            raise not_found()
        return user

    def _vhost_exists(self, name: str) -> Vhost:
        """The vhost (404 if there is none)."""
        vhost = self._access().vhosts.get(name)
        if vhost is None:
            raise not_found()
        return vhost

    def _vhost_found(self, name: str) -> Vhost:
        """For a change: the vhost, or 404 ``vhost_not_found``."""
        vhost = self._access().vhosts.get(name)
        if vhost is None:
            raise ApiError(404, "not_found", "vhost_not_found")
        return vhost

    def _both_exist(self, vhost: str, user: str) -> AccessControl:
        """For a permission change: 400 unless both are there, as RabbitMQ's; the state."""
        access = self._access()
        if vhost not in access.vhosts or user not in access.users:
            raise bad_request("vhost_or_user_not_found")
        return access

    def _change_limit(
        self, operation: Any, owner: str, limits: Mapping[str, Any], name: str, value: Any
    ) -> None:
        """Set (``value`` None: remove) one of a user's or vhost's limits."""
        changed = dict(limits)
        if value is None:
            changed.pop(name, None)
        else:
            changed[name] = value
        self.call(operation, owner, changed)

    def _permissions(self, field: str, value: str) -> list[dict[str, Any]]:
        (self._user_exists if field == "user" else self._vhost_exists)(value)
        return [p for p in self.app.records().permissions() if p[field] == value]

    def _topic_permissions(self, field: str, value: str) -> list[dict[str, Any]]:
        (self._user_exists if field == "user" else self._vhost_exists)(value)
        return [p for p in self.app.records().topic_permissions() if p[field] == value]

    # ----- users

    def users_without_permissions(self) -> list[dict[str, Any]]:
        """``GET /api/users/without-permissions``."""
        granted = {p["user"] for p in self.app.records().permissions()}
        return [u for u in self.app.records().users() if u["name"] not in granted]

    def get_user(self, name: str) -> dict[str, Any]:
        """``GET /api/users/{name}``."""
        for user in self.app.records().users():
            if user["name"] == name:
                return user
        raise not_found()

    def put_user(self, name: str) -> bottle.HTTPResponse | None:
        """``PUT /api/users/{name}``: create or replace, as RabbitMQ's: ``tags`` required;
        ``password``, or ``password_hash`` (with ``hashing_algorithm``), or neither for a
        user who cannot log in with a password (on an existing user: the password goes)."""
        body = json_object()
        if "tags" not in body:
            raise bad_request("tags_not_present")
        tags = body["tags"]
        if not isinstance(tags, str | list):
            raise bad_request("tags must be a string or a list")
        if "password" in body and "password_hash" in body:
            raise bad_request("both_password_and_password_hash_are_provided")
        password = text(body["password"], "password") if "password" in body else None
        password_hash = None
        if password is None:
            password_hash = text(body.get("password_hash", ""), "password_hash")
        exists = name in self._access().users
        self.call(
            self.management.add_user,
            name,
            password,
            parse_tags(tags),
            password_hash=password_hash,
            hashing_algorithm=text(body.get("hashing_algorithm", DEFAULT_HASHING), "algorithm"),
            exists_ok=True,
        )
        return None if exists else created()

    def delete_user(self, name: str) -> None:
        """``DELETE /api/users/{name}``: their connections are closed."""
        self._user_exists(name)
        self.call(self.management.delete_user, name)

    def bulk_delete_users(self) -> None:
        """``POST /api/users/bulk-delete`` with ``{"users": [...]}``: deleted in order, up to
        the first that does not exist (400), as RabbitMQ's."""
        [names] = required(json_object(), "users")
        if not isinstance(names, list):
            raise bad_request("users must be a list")
        for name in map(str, names):
            if name not in self._access().users:
                raise bad_request(["no_such_user", name])
            self.call(self.management.delete_user, name)

    # ----- vhosts

    def put_vhost(self, vhost: str) -> bottle.HTTPResponse | None:
        """``PUT /api/vhosts/{vhost}``: create, or replace its metadata (what the body leaves
        out is reset, as RabbitMQ's). The default queue type is ``default_queue_type`` or the
        UI's ``defaultqueuetype`` (RabbitMQ 3.10.8 honours only the latter)."""
        body = json_object()
        exists = vhost in self._access().vhosts
        queue_type = body.get("default_queue_type", body.get("defaultqueuetype", "undefined"))
        self.call(
            self.management.add_vhost,
            vhost,
            text(body.get("description", ""), "description"),
            parse_tags(body.get("tags") or ()),
            text(queue_type, "default_queue_type"),
            exists_ok=True,
        )
        return None if exists else created()

    def delete_vhost(self, vhost: str) -> None:
        """``DELETE /api/vhosts/{vhost}``: its connections close, its objects go."""
        self._vhost_exists(vhost)
        self.call(self.management.delete_vhost, vhost)

    # ----- permissions

    def get_permission(self, vhost: str, user: str) -> dict[str, Any]:
        """``GET /api/permissions/{vhost}/{user}``."""
        for p in self.app.records().permissions():
            if p["vhost"] == vhost and p["user"] == user:
                return p
        raise not_found()

    def put_permission(self, vhost: str, user: str) -> bottle.HTTPResponse | None:
        """``PUT /api/permissions/{vhost}/{user}`` with configure, write and read."""
        regexes = required(json_object(), "configure", "write", "read")
        exists = (vhost, user) in self._both_exist(vhost, user).permissions
        self.call(
            self.management.set_permissions, vhost, user, *(text(r, "regex") for r in regexes)
        )
        return None if exists else created()

    def delete_permission(self, vhost: str, user: str) -> None:
        """``DELETE /api/permissions/{vhost}/{user}``."""
        if (vhost, user) not in self._access().permissions:
            raise not_found()
        self.call(self.management.clear_permissions, vhost, user)

    def get_topic_permissions(self, vhost: str, user: str) -> list[dict[str, Any]]:
        """``GET /api/topic-permissions/{vhost}/{user}``."""
        found = [
            p
            for p in self.app.records().topic_permissions()
            if p["vhost"] == vhost and p["user"] == user
        ]
        if not found:
            raise not_found()
        return found

    def put_topic_permission(self, vhost: str, user: str) -> bottle.HTTPResponse | None:
        """``PUT /api/topic-permissions/{vhost}/{user}`` with exchange, write and read."""
        values = required(json_object(), "exchange", "write", "read")
        exchange, write, read = (text(v, "topic permission") for v in values)
        access = self._both_exist(vhost, user)
        exists = bool(access.topic_permissions.get((vhost, user)))
        self.call(self.management.set_topic_permissions, vhost, user, exchange, write, read)
        return None if exists else created()

    def delete_topic_permissions(self, vhost: str, user: str) -> None:
        """``DELETE /api/topic-permissions/{vhost}/{user}``: all of them (RabbitMQ 3.10.8
        ignores an ``?exchange=`` query, and so do we)."""
        if not self._access().topic_permissions.get((vhost, user)):
            raise not_found()
        self.call(self.management.clear_topic_permissions, vhost, user, None)

    # ----- limits

    def get_all_vhost_limits(self) -> list[dict[str, Any]]:
        """``GET /api/vhost-limits``: of the vhosts the user lists."""
        user = current_user()
        return [v for v in self.app.records().vhost_limits() if user.lists_vhost(v["vhost"])]

    def get_vhost_limits(self, vhost: str) -> list[dict[str, Any]]:
        """``GET /api/vhost-limits/{vhost}``."""
        self._vhost_exists(vhost)
        return [v for v in self.get_all_vhost_limits() if v["vhost"] == vhost]

    def put_vhost_limit(self, vhost: str, name: str) -> None:
        """``PUT /api/vhost-limits/{vhost}/{name}`` with ``{"value": n}``."""
        [value] = required(json_object(), "value")
        limits = self._vhost_found(vhost).limits
        self._change_limit(self.management.set_vhost_limits, vhost, limits, name, value)

    def delete_vhost_limit(self, vhost: str, name: str) -> None:
        """``DELETE /api/vhost-limits/{vhost}/{name}`` (a limit that is not set: 204 too)."""
        limits = self._vhost_found(vhost).limits
        self._change_limit(self.management.set_vhost_limits, vhost, limits, name, None)

    def get_user_limits(self, user: str) -> list[dict[str, Any]]:
        """``GET /api/user-limits/{user}``."""
        self._user_exists(user)
        return [u for u in self.app.records().user_limits() if u["user"] == user]

    def put_user_limit(self, user: str, name: str) -> None:
        """``PUT /api/user-limits/{user}/{name}`` with ``{"value": n}``."""
        [value] = required(json_object(), "value")
        limits = self._user_exists(user).limits
        self._change_limit(self.management.set_user_limits, user, limits, name, value)

    def delete_user_limit(self, user: str, name: str) -> None:
        """``DELETE /api/user-limits/{user}/{name}`` (a limit that is not set: 204 too)."""
        limits = self._user_exists(user).limits
        self._change_limit(self.management.set_user_limits, user, limits, name, None)
