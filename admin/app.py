"""The Bottle application: the page, the management API and ``/metrics``.

Handlers run on the admin server's threads and never touch broker state: reads go through a
:class:`~admin.snapshot.SnapshotSource`, writes through :class:`~admin.commands.Commands`,
both carried out on the loop. Every handler is wrapped so that whatever happens becomes a
JSON answer in RabbitMQ's shape (``{"error": ..., "reason": ...}``): 400 for bad input, 401
for bad credentials, 403 for a change made with a session cookie but not its CSRF token, 404
``Object Not Found`` for an unknown vhost or object, 503 when the loop does not answer in time,
500 for a bug (logged); the admin thread itself never dies. Callers authenticate with HTTP
Basic credentials or the page's session cookie (``admin.sessions``).

Path segments arrive still percent-encoded (see ``admin.server``) and are decoded here, so a
vhost named ``/`` is ``%2F`` in a path, as in RabbitMQ.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import logging
import secrets
import struct
from collections.abc import Callable
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import bottle

from dispatchd.actors.content import Message
from dispatchd.admin import metrics
from dispatchd.admin.access_routes import add_access_routes
from dispatchd.admin.auth import REFUSALS, ApiUser, Level
from dispatchd.admin.commands import ACK_MODES, CommandError, Commands, NotFound, encode_message
from dispatchd.admin.http import (
    USER,
    ApiError,
    bad_request,
    challenge,
    created,
    current_user,
    error_response,
    flag,
    json_object,
    json_response,
    login_failed,
    not_authorised,
    not_found,
    refused,
    required,
    text,
)
from dispatchd.admin.rates import RateTracker
from dispatchd.admin.records import Records, properties_key
from dispatchd.admin.sessions import COOKIE, Session, Sessions
from dispatchd.admin.snapshot import SnapshotSource
from dispatchd.definitions import binding_method
from dispatchd.wire import sasl, spec

if TYPE_CHECKING:
    from dispatchd.access import AccessControl, User
    from dispatchd.broker import Broker

__all__ = ["AdminApp", "ApiError"]

log = logging.getLogger("dispatchd.admin")

AUTH_TIMEOUT = 5.0
MAX_GET_COUNT = 10_000

#: What a session cookie needs no CSRF token for; the header that carries it for the rest.
SAFE_METHODS = ("GET", "HEAD")
CSRF_HEADER = "X-CSRF-Token"

#: RabbitMQ's 401 reasons for a vhost, and an object (someone else's connection), the user
#: has no access to.
VHOST_REFUSED = "User not authorised to access virtual host"
OBJECT_REFUSED = "User not authorised to access object"

#: The health checks' answer when all is well.
HEALTHY = {"status": "ok"}

#: Binding paths' ``q``/``e`` as the bindings' ``destination_type``.
DESTINATION_TYPES = {"q": "queue", "e": "exchange"}


def _unhealthy(reason: str, **details: Any) -> bottle.HTTPResponse:
    """A failed health check: 503 with the reason, as RabbitMQ's."""
    return json_response(503, {"status": "failed", "reason": reason, **details})


def _boolean(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"  # rabbitmqadmin sends booleans as strings
    if not isinstance(value, bool):
        raise bad_request(["not_boolean", value])
    return value


def _arguments(body: dict[str, Any]) -> dict[str, Any]:
    arguments = body.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise bad_request("arguments must be a JSON object")
    return arguments


def _properties(properties: Any) -> bytes:
    """Encoded content properties from the API's ``properties`` object."""
    if not isinstance(properties, dict):
        raise bad_request("properties must be a JSON object")
    known = {k: v for k, v in properties.items() if k in spec.BasicProperties.FIELDS}
    for key in ("delivery_mode", "priority", "timestamp"):  # the rest are ignored, as there
        if key in known and (not isinstance(known[key], int) or isinstance(known[key], bool)):
            raise bad_request(["not_int", key])
    try:
        return spec.BasicProperties(**known).encode()
    except (TypeError, ValueError, OverflowError, struct.error) as exc:
        raise bad_request(f"invalid properties: {exc}") from None


def _payload(payload: Any, encoding: Any) -> bytes:
    payload = text(payload, "payload")
    if encoding == "string":
        return payload.encode()
    if encoding == "base64":
        try:
            return base64.b64decode(payload, validate=True)
        except ValueError:
            raise bad_request(["not_base64", payload]) from None
    raise bad_request(["unsupported_encoding", encoding])


def _admitted(user: ApiUser, level: Level) -> ApiUser:
    """``user``, once their tags reach ``level`` (401 with RabbitMQ's refusal otherwise)."""
    if not user.reaches(level):
        raise not_authorised(REFUSALS[level])
    return user


def _check_csrf(session: Session) -> None:
    """403 unless the request carries the session's CSRF token."""
    sent = bottle.request.get_header(CSRF_HEADER) or ""
    if not secrets.compare_digest(sent.encode(), session.csrf.encode()):
        raise ApiError(403, "forbidden", "CSRF token missing or wrong")


def _session_record(user: ApiUser, session: Session) -> dict[str, Any]:
    """What the page learns of its session: the user (as ``/api/whoami``) and the CSRF token."""
    return {"name": user.name, "tags": list(user.tags), "csrf_token": session.csrf}


def _cookie(value: str, expiry: str = "") -> str:
    """The session cookie's ``Set-Cookie`` value, ``Secure`` when the request came over HTTPS."""
    secure = "Secure; " if bottle.request.environ.get("wsgi.url_scheme") == "https" else ""
    return f"{COOKIE}={value}; {expiry}{secure}HttpOnly; SameSite=Strict; Path=/"


class AdminApp:
    """The admin's Bottle app for one broker (``.wsgi`` is the WSGI callable)."""

    def __init__(self, broker: Broker, port: int) -> None:
        self.broker = broker
        self.port = port
        self.snapshots = SnapshotSource(broker)
        self.commands = Commands(broker)
        self.rates = RateTracker()
        self.sessions = Sessions(broker.settings.login_session_timeout * 60.0)
        self.page = resources.files(__package__).joinpath("page.html").read_bytes()
        self.wsgi = bottle.Bottle()
        self.wsgi.default_error_handler = self._bottle_error  # type: ignore[method-assign]
        self._add_routes()

    # ----- plumbing

    def _bottle_error(self, error: bottle.HTTPError) -> str:
        """Bottle's own errors (no such route: 404, wrong method: 405) in the JSON shape."""
        if error.status_code == 405:
            return ""  # RabbitMQ's 405: an empty body and the Allow header
        bottle.response.content_type = "application/json"
        if error.status_code == 404:
            body = {"error": "Object Not Found", "reason": "Not Found"}
        else:
            body = {"error": error.status_line, "reason": str(error.body)}
        return json.dumps(body, separators=(",", ":"))

    def route(
        self,
        path: str,
        method: str,
        handler: Callable[..., Any],
        level: Level | None = Level.MANAGEMENT,
    ) -> None:
        """Serve ``handler`` at ``path``: decode the path segments, authenticate a user whose
        tags reach ``level`` (None: anyone), and turn whatever it returns or raises into an
        HTTP answer."""

        def serve(**params: str) -> Any:
            try:
                if level is not None:
                    if bottle.request.auth is None and bottle.request.get_cookie(COOKIE) is None:
                        return challenge()
                    bottle.request.environ[USER] = _admitted(self._authenticate(), level)
                result = handler(**{k: unquote(v) for k, v in params.items()})
                if isinstance(result, bottle.HTTPResponse):
                    return result
                return json_response(200, result)
            except ApiError as error:
                return error_response(error)
            except NotFound:
                return error_response(not_found())
            except CommandError as exc:
                return error_response(refused(exc))
            except (TimeoutError, concurrent.futures.CancelledError) as exc:
                log.warning("admin %s %s: broker did not answer: %r", method, path, exc)
                reason = "the broker did not answer in time"
                return error_response(ApiError(503, "service_unavailable", reason))
            except Exception as exc:
                log.exception("admin %s %s failed", method, bottle.request.path)
                return error_response(ApiError(500, "internal_error", repr(exc)))

        self.wsgi.route(path, method, serve)

    def _authenticate(self) -> ApiUser:
        """The request's user: HTTP Basic credentials if it has them, else its session cookie
        (and the session's CSRF token unless the method is safe)."""
        credentials = bottle.request.auth
        if credentials is not None:
            name, password = credentials
            return self._check(name, lambda access: access.authenticate(name, password or ""))[0]
        session = self._session()
        if bottle.request.method not in SAFE_METHODS:
            _check_csrf(session)
        return self._session_user(session)

    def _check(
        self, name: str, find: Callable[[AccessControl], User | None], basic: bool = True
    ) -> tuple[ApiUser, str]:
        """On the loop, the user ``find`` finds in the broker's access state (none: 401
        ``Login failed``, with the Basic challenge for ``basic`` credentials), the loopback
        rule applied to the request's address; the user and their password hash."""
        # REMOTE_ADDR itself: bottle's remote_addr would trust X-Forwarded-For.
        peer = bottle.request.environ.get("REMOTE_ADDR", "")
        broker = self.broker

        def check() -> tuple[ApiUser, str] | str:
            account = find(broker.access)
            if account is None:
                return "Login failed"
            if not sasl.loopback_allowed(name, peer, broker.loopback_users):
                return "User can only log in via localhost"
            user = ApiUser(name, account.tags, broker.access.vhosts_of(name))
            return user, account.password_hash

        found = broker.runtime.run_in_loop_threadsafe(check, timeout=AUTH_TIMEOUT)
        if found == "Login failed":
            raise login_failed(challenge=basic)
        if isinstance(found, str):
            raise not_authorised(found)
        return found

    def _session(self) -> Session:
        """The live session of the request's cookie (none, or expired: 401, no challenge)."""
        session = self.sessions.get(bottle.request.get_cookie(COOKIE) or "")
        if session is None:
            raise login_failed(challenge=False)
        return session

    def _session_user(self, session: Session) -> ApiUser:
        """The session's user as they are now; the session ends (401) once they are gone, have
        a new password or are loopback-only and the request is not from loopback."""

        def same(access: AccessControl) -> User | None:
            account = access.users.get(session.user)
            if account is None or account.password_hash != session.password_hash:
                return None
            return account

        try:
            return self._check(session.user, same, basic=False)[0]
        except ApiError:
            self.sessions.end(session.token)
            raise

    def records(self) -> Records:
        """Records of a fresh snapshot."""
        return Records(self.snapshots.get(), self.rates)

    def _vhost_records(self, vhost: str | None) -> Records:
        """Records, once ``vhost`` exists (404) and the user may see it (401)."""
        records = self.records()
        if vhost is not None:
            if not records.has_vhost(vhost):
                raise not_found()
            if not current_user().sees_vhost(vhost):
                raise not_authorised(VHOST_REFUSED)
        return records

    def access(self) -> AccessControl:
        """A copy of the broker's users, vhosts, permissions and policies, taken now on the
        loop (cheap: no snapshot of the actors)."""
        broker = self.broker
        return broker.runtime.run_in_loop_threadsafe(broker.access.copy, timeout=AUTH_TIMEOUT)

    def _enter(self, vhost: str) -> None:
        """Before a change in ``vhost``: it exists (404 ``vhost_not_found``) and the user may
        act there (401); the change itself is then checked against their permissions."""
        if vhost not in self.access().vhosts:
            raise ApiError(404, "not_found", "vhost_not_found")
        if not current_user().sees_vhost(vhost):
            raise not_authorised(VHOST_REFUSED)

    @staticmethod
    def _visible(items: list[dict[str, Any]], field: str = "vhost") -> list[dict[str, Any]]:
        """The records the user may see (see ``admin.auth``): by the record's ``vhost`` (or
        ``queue`` for consumers, ``name`` for vhosts) or ``user``."""
        user = current_user()
        if field == "user":
            return [item for item in items if user.sees_user(item["user"])]
        if field == "name":
            return [item for item in items if user.lists_vhost(item["name"])]
        if field == "queue":
            return [item for item in items if user.sees_vhost(item["queue"]["vhost"])]
        return [item for item in items if user.sees_vhost(item[field])]

    @staticmethod
    def _one(items: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
        for item in items:
            if all(item.get(k) == v for k, v in match.items()):
                return item
        raise not_found()

    # ----- routes

    def _add_routes(self) -> None:
        r = self.route
        v = self._visible
        monitor = Level.MONITORING
        admin = Level.ADMINISTRATOR
        r("/", "GET", self.get_page, None)
        r("/login", "POST", self.login, None)
        r("/logout", "POST", self.logout, None)
        r("/session", "GET", self.get_session, None)
        r("/metrics", "GET", self.get_metrics, None)
        r("/api/overview", "GET", self.get_overview)
        r("/api/cluster-name", "GET", lambda: {"name": self.records().cluster_name})
        r("/api/whoami", "GET", self.whoami)
        r("/api/nodes", "GET", lambda: [self.records().node_record()], monitor)
        r("/api/nodes/<name>", "GET", self.get_node, monitor)
        r("/api/health/checks/alarms", "GET", lambda: self.check_alarms("in the cluster"))
        r("/api/health/checks/local-alarms", "GET", lambda: self.check_alarms("on the node"))
        r("/api/health/checks/virtual-hosts", "GET", self.check_virtual_hosts)
        r("/api/health/checks/port-listener/<port>", "GET", self.check_port_listener)
        r("/api/aliveness-test/<vhost>", "GET", self.aliveness_test)
        r("/api/connections", "GET", lambda: v(self.records().connections(), "user"))
        r("/api/connections/<name>", "GET", self.get_connection)
        r("/api/connections/<name>", "DELETE", self.delete_connection)
        r("/api/connections/<name>/channels", "GET", self.get_connection_channels)
        r("/api/channels", "GET", lambda: v(self.records().channels(), "user"))
        r(
            "/api/channels/<name>",
            "GET",
            lambda name: self._one(v(self.records().channels(), "user"), name=name),
        )
        r("/api/exchanges", "GET", lambda: v(self.records().exchanges()))
        r(
            "/api/exchanges/<vhost>",
            "GET",
            lambda vhost: self._vhost_records(vhost).exchanges(vhost),
        )
        r("/api/exchanges/<vhost>/<name>", "GET", self.get_exchange)
        r("/api/exchanges/<vhost>/<name>", "PUT", self.put_exchange)
        r("/api/exchanges/<vhost>/<name>", "DELETE", self.delete_exchange)
        r("/api/exchanges/<vhost>/<name>/publish", "POST", self.publish)
        r("/api/exchanges/<vhost>/<name>/bindings/source", "GET", self.get_bindings_from)
        r("/api/exchanges/<vhost>/<name>/bindings/destination", "GET", self.get_bindings_to)
        r("/api/queues", "GET", lambda: v(self.records().queues()))
        r("/api/queues/<vhost>", "GET", lambda vhost: self._vhost_records(vhost).queues(vhost))
        r("/api/queues/<vhost>/<name>", "GET", self.get_queue)
        r("/api/queues/<vhost>/<name>", "PUT", self.put_queue)
        r("/api/queues/<vhost>/<name>", "DELETE", self.delete_queue)
        r("/api/queues/<vhost>/<name>/bindings", "GET", self.get_queue_bindings)
        r("/api/queues/<vhost>/<name>/contents", "DELETE", self.purge_queue)
        r("/api/queues/<vhost>/<name>/get", "POST", self.get_messages)
        r("/api/bindings", "GET", lambda: v(self.records().bindings()))
        r("/api/bindings/<vhost>", "GET", lambda vhost: self._vhost_records(vhost).bindings(vhost))
        for kind in ("q", "e"):
            between = f"/api/bindings/<vhost>/e/<source>/{kind}/<destination>"
            r(between, "GET", partial(self.get_bindings_between, kind=kind))
            r(between, "POST", partial(self.post_binding, kind=kind))
            r(f"{between}/<props>", "GET", partial(self.get_binding, kind=kind))
            r(f"{between}/<props>", "DELETE", partial(self.delete_binding, kind=kind))
        r("/api/consumers", "GET", lambda: v(self.records().consumers(), "queue"))
        r(
            "/api/consumers/<vhost>",
            "GET",
            lambda vhost: self._vhost_records(vhost).consumers(vhost),
        )
        r("/api/vhosts", "GET", lambda: v(self.records().vhosts(), "name"))
        r(
            "/api/vhosts/<vhost>",
            "GET",
            lambda vhost: self._one(self._vhost_records(vhost).vhosts(vhost)),
            admin,
        )
        policymaker = Level.POLICYMAKER
        for path, operator in (("policies", False), ("operator-policies", True)):
            r(f"/api/{path}", "GET", self._policies(operator), policymaker)
            r(f"/api/{path}/<vhost>", "GET", self._policies(operator), policymaker)
            r(f"/api/{path}/<vhost>/<name>", "GET", self._policies(operator), policymaker)
        r("/api/definitions", "GET", lambda: self.records().definitions(), admin)
        r("/api/definitions", "POST", lambda: self.post_definitions(None), admin)
        r("/api/definitions/<vhost>", "GET", self.get_vhost_definitions, admin)
        r("/api/definitions/<vhost>", "POST", self.post_definitions, admin)
        r("/api/actors", "GET", lambda: self.records().actors(), monitor)
        r("/api/dashboard", "GET", lambda: self.records().dashboard(self.port), monitor)
        r("/api/actors/<urn>", "GET", self.get_actor, monitor)
        add_access_routes(self)

    def get_overview(self) -> dict[str, Any]:
        """``GET /api/overview``; without ``monitoring``, no node, listeners or contexts."""
        overview = self.records().overview(self.port)
        if not current_user().monitors:
            for key in ("node", "listeners", "contexts"):
                del overview[key]
        return overview

    def whoami(self) -> dict[str, Any]:
        """``GET /api/whoami``."""
        user = current_user()
        return {"name": user.name, "tags": list(user.tags)}

    # ----- login sessions (the page's; see admin.sessions)

    def login(self) -> bottle.HTTPResponse:
        """``POST /login`` with JSON ``{"username", "password"}`` (JSON only: no other site's
        form can log a browser in): a session, its cookie, and ``GET /session``'s answer."""
        if bottle.request.content_type.split(";")[0].strip() != "application/json":
            raise bad_request("the login must be a JSON object")
        name, password = required(json_object(), "username", "password")
        name, password = text(name, "username"), text(password, "password")
        found, password_hash = self._check(
            name, lambda access: access.authenticate(name, password), basic=False
        )
        user = _admitted(found, Level.MANAGEMENT)
        session = self.sessions.create(name, password_hash)
        response = json_response(200, _session_record(user, session))
        response.add_header("Set-Cookie", _cookie(session.token))
        return response

    def get_session(self) -> dict[str, Any]:
        """``GET /session``: the cookie's user and the session's CSRF token, for the page
        (401 without a live session)."""
        session = self._session()
        return _session_record(_admitted(self._session_user(session), Level.MANAGEMENT), session)

    def logout(self) -> bottle.HTTPResponse:
        """``POST /logout``: end the cookie's session (CSRF token required) and delete the
        cookie."""
        session = self.sessions.get(bottle.request.get_cookie(COOKIE) or "")
        if session is not None:
            _check_csrf(session)
            self.sessions.end(session.token)
        response = json_response(204, None)
        response.add_header("Set-Cookie", _cookie("", "Max-Age=0; "))
        return response

    # ----- node and health checks

    def get_node(self, name: str) -> dict[str, Any]:
        """``GET /api/nodes/{name}``."""
        node = self.records().node_record()
        if node["name"] != name:
            raise not_found()
        return node

    def check_alarms(self, where: str) -> Any:
        """``GET /api/health/checks/alarms`` and ``local-alarms``: 503 while one is on."""
        alarms = self.records().alarms()
        if alarms:
            return _unhealthy(f"There are alarms in effect {where}", alarms=alarms)
        return HEALTHY

    def check_virtual_hosts(self) -> dict[str, Any]:
        """``GET /api/health/checks/virtual-hosts``: every vhost's actor is running."""
        snap = self.snapshots.get()
        down = sorted(set(snap.access.vhosts) - set(snap.vhosts))
        if down:
            return _unhealthy(f"Some virtual hosts are down: {', '.join(down)}")
        return HEALTHY

    def check_port_listener(self, port: str) -> Any:
        """``GET /api/health/checks/port-listener/{port}``."""
        try:
            wanted = int(port)
        except ValueError:
            raise bad_request(f"invalid port: {port}") from None
        ports = sorted({x.port for x in self.snapshots.get().listeners})
        if wanted in ports:
            return {"status": "ok", "port": wanted}
        return _unhealthy("No active listener", missing=wanted, ports=ports)

    def aliveness_test(self, vhost: str) -> dict[str, Any]:
        """``GET /api/aliveness-test/{vhost}``: declare ``aliveness-test``, publish to it and
        get the message back, as the user."""
        self._enter(vhost)
        user = current_user().name
        queue = "aliveness-test"
        self.commands.request(vhost, spec.QueueDeclare(queue=queue), user)
        message = Message("", queue, b"", b"test_message")
        self.commands.publish(vhost, message, user)
        taken = self.commands.get_messages(vhost, queue, 1, None, user)
        if not taken or taken[0].entry.message.body != b"test_message":
            return {"status": "failed", "reason": "the message did not come back"}
        return {"status": "ok"}

    # ----- page and metrics

    def get_page(self) -> bottle.HTTPResponse:
        """``GET /``: the admin page (static; it polls the JSON API)."""
        return bottle.HTTPResponse(
            body=self.page,
            headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"},
        )

    def get_metrics(self) -> bottle.HTTPResponse:
        """``GET /metrics``: Prometheus text format (no credentials, as RabbitMQ's plugin)."""
        return bottle.HTTPResponse(
            body=metrics.render(self.records()), headers={"Content-Type": metrics.CONTENT_TYPE}
        )

    # ----- connections

    def get_connection(self, name: str) -> dict[str, Any]:
        """``GET /api/connections/{name}``: one's own, or any with ``monitoring``."""
        connection = self._one(self.records().connections(), name=name)
        if not current_user().sees_user(connection["user"]):
            raise not_authorised(OBJECT_REFUSED)
        return connection

    def get_connection_channels(self, name: str) -> list[dict[str, Any]]:
        """``GET /api/connections/{name}/channels``."""
        self.get_connection(name)
        channels = self._visible(self.records().channels(), "user")
        return [c for c in channels if c["connection_details"]["name"] == name]

    def delete_connection(self, name: str) -> None:
        """``DELETE /api/connections/{name}`` (reason from the ``X-Reason`` header): one's own,
        or any for an administrator."""
        reason = bottle.request.get_header("X-Reason") or "Closed via management plugin"
        connection = self._one(self.records().connections(), name=name)
        if not current_user().closes_user(connection["user"]):
            raise not_authorised(OBJECT_REFUSED)
        self.commands.close_connection(name, reason)

    # ----- exchanges

    def get_exchange(self, vhost: str, name: str) -> dict[str, Any]:
        """``GET /api/exchanges/{vhost}/{name}`` (``amq.default`` names the default exchange)."""
        name = "" if name == "amq.default" else name
        return self._one(self._vhost_records(vhost).exchanges(vhost), name=name)

    def put_exchange(self, vhost: str, name: str) -> bottle.HTTPResponse | None:
        """``PUT /api/exchanges/{vhost}/{name}``: declare it (201), or nothing new (204)."""
        body = json_object()
        self._enter(vhost)
        exists = self._exchange_exists(vhost, name)
        method = spec.ExchangeDeclare(
            exchange=name,
            type=str(body.get("type") or "direct"),
            durable=_boolean(body, "durable", False),
            auto_delete=_boolean(body, "auto_delete", False),
            internal=_boolean(body, "internal", False),
            arguments=_arguments(body),
        )
        self.commands.request(vhost, method, current_user().name)
        return None if exists else created()

    def _exchange_exists(self, vhost: str, name: str) -> bool:
        return any(x["name"] == name for x in self.records().exchanges(vhost))

    def delete_exchange(self, vhost: str, name: str) -> None:
        """``DELETE /api/exchanges/{vhost}/{name}[?if-unused=true]``."""
        self._enter(vhost)
        if not self._exchange_exists(vhost, name):
            raise not_found()
        method = spec.ExchangeDelete(exchange=name, if_unused=flag("if-unused"))
        self.commands.request(vhost, method, current_user().name)

    def publish(self, vhost: str, name: str) -> dict[str, bool]:
        """``POST /api/exchanges/{vhost}/{name}/publish`` with ``{properties, routing_key,
        payload, payload_encoding}``: ``{"routed": bool}``; what the broker refuses is a 400
        with the AMQP code and text, as RabbitMQ's channel-based publish reports it."""
        body = json_object()
        properties, key, payload, encoding = required(
            body, "properties", "routing_key", "payload", "payload_encoding"
        )
        self._enter(vhost)
        message = Message(
            "" if name == "amq.default" else name,
            text(key, "routing_key"),
            _properties(properties),
            _payload(payload, encoding),
        )
        try:
            routed = self.commands.publish(vhost, message, current_user().name)
        except CommandError as exc:
            raise bad_request(f"{exc.code} {exc.reply_text}") from None
        return {"routed": routed}

    def _exchange_bindings(self, vhost: str, name: str, field: str) -> list[dict[str, Any]]:
        records = self._vhost_records(vhost)
        name = "" if name == "amq.default" else name
        self._one(records.exchanges(vhost), name=name)
        bindings = records.bindings(vhost)
        if field == "destination":
            return [b for b in bindings if b["destination_type"] == "exchange" and b[field] == name]
        return [b for b in bindings if b[field] == name]

    def get_bindings_from(self, vhost: str, name: str) -> list[dict[str, Any]]:
        """``GET /api/exchanges/{vhost}/{name}/bindings/source``."""
        return self._exchange_bindings(vhost, name, "source")

    def get_bindings_to(self, vhost: str, name: str) -> list[dict[str, Any]]:
        """``GET /api/exchanges/{vhost}/{name}/bindings/destination``."""
        return self._exchange_bindings(vhost, name, "destination")

    # ----- queues

    def get_queue(self, vhost: str, name: str) -> dict[str, Any]:
        """``GET /api/queues/{vhost}/{name}``."""
        record = self._vhost_records(vhost).queue(vhost, name)
        if record is None:
            raise not_found()
        return record

    def put_queue(self, vhost: str, name: str) -> bottle.HTTPResponse | None:
        """``PUT /api/queues/{vhost}/{name}``: declare it (201), or nothing new (204)."""
        body = json_object()
        self._enter(vhost)
        exists = self.records().queue_actor(vhost, name) is not None
        method = spec.QueueDeclare(
            queue=name,
            durable=_boolean(body, "durable", False),
            auto_delete=_boolean(body, "auto_delete", False),
            arguments=_arguments(body),
        )
        self.commands.request(vhost, method, current_user().name)
        return None if exists else created()

    def get_queue_bindings(self, vhost: str, name: str) -> list[dict[str, Any]]:
        """``GET /api/queues/{vhost}/{name}/bindings``."""
        records = self._vhost_records(vhost)
        if records.queue_actor(vhost, name) is None:
            raise not_found()
        return [
            b
            for b in records.bindings(vhost)
            if b["destination_type"] == "queue" and b["destination"] == name
        ]

    def delete_queue(self, vhost: str, name: str) -> None:
        """``DELETE /api/queues/{vhost}/{name}[?if-unused=true][&if-empty=true]``."""
        self._enter(vhost)
        user = current_user().name
        self.commands.delete_queue(vhost, name, flag("if-unused"), flag("if-empty"), user)

    def purge_queue(self, vhost: str, name: str) -> None:
        """``DELETE /api/queues/{vhost}/{name}/contents``."""
        self._enter(vhost)
        self.commands.purge_queue(vhost, name, current_user().name)

    def get_messages(self, vhost: str, name: str) -> list[dict[str, Any]]:
        """``POST /api/queues/{vhost}/{name}/get`` with ``{count, ackmode, encoding, truncate}``;
        what the broker refuses comes back as RabbitMQ's channel-based get reports it."""
        body = json_object()
        ackmode, count, encoding = required(body, "ackmode", "count", "encoding")
        self._enter(vhost)
        truncate = body.get("truncate")
        if isinstance(count, str) and count.isdigit():
            count = int(count)  # RabbitMQ's own page sends numbers as strings
        if isinstance(truncate, str) and truncate.isdigit():
            truncate = int(truncate)
        if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= MAX_GET_COUNT:
            raise bad_request(f"count must be an integer from 1 to {MAX_GET_COUNT}")
        if ackmode not in ACK_MODES:
            raise bad_request(f"ackmode must be one of {', '.join(ACK_MODES)}")
        if encoding not in ("auto", "base64"):
            raise bad_request("Unsupported encoding. Please use auto or base64.")
        if truncate is not None and (not isinstance(truncate, int) or truncate < 0):
            raise bad_request("truncate must be a non-negative integer")
        user = current_user().name
        try:
            taken = self.commands.get_messages(vhost, name, count, ACK_MODES[ackmode], user)
        except NotFound:
            reason = f"NOT_FOUND - no queue '{name}' in vhost '{vhost}'"
            raise ApiError(404, "not_found", reason) from None
        except CommandError as exc:
            if exc.code == 403:
                raise not_authorised(exc.reply_text) from None
            if exc.code == 404:
                raise ApiError(404, "not_found", exc.reply_text) from None
            raise
        return [encode_message(t, encoding, truncate) for t in taken]

    # ----- bindings

    def get_bindings_between(
        self, vhost: str, source: str, destination: str, kind: str
    ) -> list[dict[str, Any]]:
        """``GET /api/bindings/{vhost}/e/{source}/{q|e}/{destination}``."""
        records = self._vhost_records(vhost)
        source = "" if source == "amq.default" else source
        self._one(records.exchanges(vhost), name=source)
        if kind == "q" and records.queue_actor(vhost, destination) is None:
            raise not_found()
        if kind == "e":
            self._one(records.exchanges(vhost), name=destination)
        dest_type = DESTINATION_TYPES[kind]
        return [
            b
            for b in records.bindings(vhost)
            if b["source"] == source
            and b["destination"] == destination
            and b["destination_type"] == dest_type
        ]

    def get_binding(
        self, vhost: str, source: str, destination: str, props: str, kind: str
    ) -> dict[str, Any]:
        """``GET /api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{props}``."""
        found = self.get_bindings_between(vhost, source, destination, kind)
        return self._one(found, properties_key=props)

    def post_binding(
        self, vhost: str, source: str, destination: str, kind: str
    ) -> bottle.HTTPResponse:
        """``POST /api/bindings/{vhost}/e/{source}/{q|e}/{destination}`` with ``{routing_key,
        arguments}``: 201 with the new binding's path in ``Location``."""
        body = json_object()
        self._enter(vhost)
        source = "" if source == "amq.default" else source
        key = str(body.get("routing_key", ""))
        arguments = _arguments(body)
        method = binding_method(DESTINATION_TYPES[kind], source, destination, key, arguments)
        self.commands.request(vhost, method, current_user().name)
        response = created()
        props = quote(properties_key(key, arguments), safe="")
        response.set_header("Location", f"{quote(destination, safe='')}/{props}")
        return response

    def delete_binding(
        self, vhost: str, source: str, destination: str, props: str, kind: str
    ) -> None:
        """``DELETE /api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{props}``."""
        binding = self.get_binding(vhost, source, destination, props, kind)
        self._enter(vhost)
        method = binding_method(
            binding["destination_type"],
            binding["source"],
            destination,
            binding["routing_key"],
            binding["arguments"],
            unbind=True,
        )
        self.commands.request(vhost, method, current_user().name)

    # ----- policies

    def _policies(self, operator: bool) -> Callable[..., Any]:
        """``GET /api/policies[/{vhost}[/{name}]]`` (``operator``: ``/api/operator-policies``),
        of the vhosts the user sees."""

        def get(vhost: str | None = None, name: str | None = None) -> Any:
            found = self._visible(self._vhost_records(vhost).policies(vhost, operator))
            return found if name is None else self._one(found, name=name)

        return get

    # ----- definitions

    def get_vhost_definitions(self, vhost: str) -> dict[str, Any]:
        """``GET /api/definitions/{vhost}``."""
        return self._vhost_records(vhost).definitions(vhost)

    def post_definitions(self, vhost: str | None) -> None:
        """``POST /api/definitions[/{vhost}]``: 204, or 400 listing what was refused."""
        body = json_object()
        if vhost is not None:
            self._vhost_records(vhost)
        errors = self.commands.import_definitions(body, vhost)
        if errors:
            raise bad_request("; ".join(errors))

    # ----- actors

    def get_actor(self, urn: str) -> dict[str, Any]:
        """``GET /api/actors/{urn}``: one actor with its own description."""
        records = self.records()
        info = records.snap.by_urn.get(urn)
        if info is None:
            raise not_found()
        return records.actor(info, details=True)
