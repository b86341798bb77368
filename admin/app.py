"""The Bottle application: the page, the management API and ``/metrics``.

Handlers run on the admin server's threads and never touch broker state: reads go through a
:class:`~admin.snapshot.SnapshotSource`, writes through :class:`~admin.commands.Commands`,
both carried out on the loop. Every handler is wrapped so that whatever happens becomes a
JSON answer in RabbitMQ's shape (``{"error": ..., "reason": ...}``): 400 for bad input, 401
for bad credentials, 404 ``Object Not Found`` for an unknown vhost or object, 503 when the
loop does not answer in time, 500 for a bug (logged); the admin thread itself never dies.

Path segments arrive still percent-encoded (see ``admin.server``) and are decoded here, so a
vhost named ``/`` is ``%2F`` in a path, as in RabbitMQ.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import decimal
import json
import logging
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import bottle

from dispatchd.admin import metrics
from dispatchd.admin.commands import ACK_MODES, CommandError, Commands, NotFound, encode_message
from dispatchd.admin.rates import RateTracker
from dispatchd.admin.records import Records
from dispatchd.admin.snapshot import SnapshotSource
from dispatchd.wire import sasl

if TYPE_CHECKING:
    from dispatchd.broker import Broker

__all__ = ["AdminApp", "ApiError"]

log = logging.getLogger("dispatchd.admin")

REALM = "dispatchd"
AUTH_TIMEOUT = 5.0
MAX_GET_COUNT = 10_000


class ApiError(Exception):
    """An HTTP error answer: status, RabbitMQ's ``error`` word and a ``reason``."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason


def not_found() -> ApiError:
    """RabbitMQ's 404 for an unknown vhost or object."""
    return ApiError(404, "Object Not Found", "Not Found")


def bad_request(reason: str) -> ApiError:
    """400 with the reason the input was refused."""
    return ApiError(400, "bad_request", reason)


def _jsonable(value: Any) -> Any:
    """JSON for what AMQP field tables hold besides str/int/float/bool/list/dict."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "items"):
        return dict(value.items())
    return str(value)


def json_response(status: int, body: Any) -> bottle.HTTPResponse:
    """A JSON answer (``None`` body: 204 No Content)."""
    if body is None:
        return bottle.HTTPResponse(status=204)
    return bottle.HTTPResponse(
        body=json.dumps(body, default=_jsonable, separators=(",", ":")),
        status=status,
        headers={"Content-Type": "application/json", "Cache-Control": "no-cache"},
    )


def error_response(error: ApiError) -> bottle.HTTPResponse:
    """The JSON answer for an error; 401 also asks the browser for credentials."""
    response = json_response(error.status, {"error": error.error, "reason": error.reason})
    if error.status == 401:
        response.set_header("WWW-Authenticate", f'Basic realm="{REALM}"')
    return response


def _flag(name: str) -> bool:
    return bottle.request.query.get(name, "false").lower() == "true"


def _json_body() -> Any:
    raw = bottle.request.body.read()
    try:
        return json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"malformed JSON: {exc}") from None


class AdminApp:
    """The admin's Bottle app for one broker (``.wsgi`` is the WSGI callable)."""

    def __init__(self, broker: Broker, port: int) -> None:
        self.broker = broker
        self.port = port
        self.snapshots = SnapshotSource(broker)
        self.commands = Commands(broker)
        self.rates = RateTracker()
        self.page = resources.files(__package__).joinpath("page.html").read_bytes()
        self.wsgi = bottle.Bottle()
        self.wsgi.default_error_handler = self._bottle_error  # type: ignore[method-assign]
        self._add_routes()

    # ----- plumbing

    def _bottle_error(self, error: bottle.HTTPError) -> str:
        """Bottle's own errors (no such route: 404, wrong method: 405) in the JSON shape."""
        bottle.response.content_type = "application/json"
        if error.status_code == 404:
            body = {"error": "Object Not Found", "reason": "Not Found"}
        else:
            body = {"error": error.status_line, "reason": str(error.body)}
        return json.dumps(body, separators=(",", ":"))

    def route(
        self, path: str, method: str, handler: Callable[..., Any], *, auth: bool = True
    ) -> None:
        """Serve ``handler`` at ``path``: decode the path segments, authenticate, and turn
        whatever it returns or raises into an HTTP answer."""

        def serve(**params: str) -> Any:
            try:
                if auth:
                    self._authenticate()
                result = handler(**{k: unquote(v) for k, v in params.items()})
                if isinstance(result, bottle.HTTPResponse):
                    return result
                return json_response(200, result)
            except ApiError as error:
                return error_response(error)
            except NotFound:
                return error_response(not_found())
            except CommandError as exc:
                return error_response(bad_request(str(exc)))
            except (TimeoutError, concurrent.futures.CancelledError) as exc:
                log.warning("admin %s %s: broker did not answer: %r", method, path, exc)
                reason = "the broker did not answer in time"
                return error_response(ApiError(503, "service_unavailable", reason))
            except Exception as exc:
                log.exception("admin %s %s failed", method, bottle.request.path)
                return error_response(ApiError(500, "internal_error", repr(exc)))

        self.wsgi.route(path, method, serve)

    def _authenticate(self) -> str:
        """Check HTTP basic credentials against the broker's users (loopback rule included)."""
        credentials = bottle.request.auth
        if credentials is None:
            raise ApiError(401, "not_authorised", "Login failed")
        user, password = credentials
        # REMOTE_ADDR itself: bottle's remote_addr would trust X-Forwarded-For.
        peer = bottle.request.environ.get("REMOTE_ADDR", "")
        broker = self.broker

        def check() -> str | None:
            if not broker.check_password(user, password or ""):
                return "Login failed"
            if not sasl.loopback_allowed(user, peer, broker.loopback_users):
                return "User can only log in via localhost"
            return None

        refused = broker.runtime.run_in_loop_threadsafe(check, timeout=AUTH_TIMEOUT)
        if refused is not None:
            raise ApiError(401, "not_authorised", refused)
        return user

    def records(self) -> Records:
        """Records of a fresh snapshot."""
        return Records(self.snapshots.get(), self.rates)

    def _vhost_records(self, vhost: str | None) -> Records:
        records = self.records()
        if vhost is not None and not records.has_vhost(vhost):
            raise not_found()
        return records

    @staticmethod
    def _one(items: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
        for item in items:
            if all(item.get(k) == v for k, v in match.items()):
                return item
        raise not_found()

    # ----- routes

    def _add_routes(self) -> None:
        r = self.route
        r("/", "GET", self.get_page)
        r("/metrics", "GET", self.get_metrics, auth=False)
        r("/api/overview", "GET", lambda: self.records().overview(self.port))
        r("/api/whoami", "GET", lambda: {"name": self._authenticate(), "tags": ["administrator"]})
        r("/api/connections", "GET", lambda: self.records().connections())
        r("/api/connections/<name>", "GET", self.get_connection)
        r("/api/connections/<name>", "DELETE", self.delete_connection)
        r("/api/connections/<name>/channels", "GET", self.get_connection_channels)
        r("/api/channels", "GET", lambda: self.records().channels())
        r(
            "/api/channels/<name>",
            "GET",
            lambda name: self._one(self.records().channels(), name=name),
        )
        r("/api/exchanges", "GET", lambda: self.records().exchanges())
        r(
            "/api/exchanges/<vhost>",
            "GET",
            lambda vhost: self._vhost_records(vhost).exchanges(vhost),
        )
        r("/api/exchanges/<vhost>/<name>", "GET", self.get_exchange)
        r("/api/exchanges/<vhost>/<name>/bindings/source", "GET", self.get_bindings_from)
        r("/api/exchanges/<vhost>/<name>/bindings/destination", "GET", self.get_bindings_to)
        r("/api/queues", "GET", lambda: self.records().queues())
        r("/api/queues/<vhost>", "GET", lambda vhost: self._vhost_records(vhost).queues(vhost))
        r("/api/queues/<vhost>/<name>", "GET", self.get_queue)
        r("/api/queues/<vhost>/<name>", "DELETE", self.delete_queue)
        r("/api/queues/<vhost>/<name>/bindings", "GET", self.get_queue_bindings)
        r("/api/queues/<vhost>/<name>/contents", "DELETE", self.purge_queue)
        r("/api/queues/<vhost>/<name>/get", "POST", self.get_messages)
        r("/api/bindings", "GET", lambda: self.records().bindings())
        r("/api/bindings/<vhost>", "GET", lambda vhost: self._vhost_records(vhost).bindings(vhost))
        r("/api/consumers", "GET", lambda: self.records().consumers())
        r(
            "/api/consumers/<vhost>",
            "GET",
            lambda vhost: self._vhost_records(vhost).consumers(vhost),
        )
        r("/api/vhosts", "GET", lambda: self.records().vhosts())
        r("/api/vhosts/<vhost>", "GET", lambda vhost: self._one(self.records().vhosts(vhost)))
        r("/api/users", "GET", lambda: self.records().users())
        r("/api/users/<name>", "GET", lambda name: self._one(self.records().users(), name=name))
        r("/api/definitions", "GET", lambda: self.records().definitions())
        r("/api/definitions", "POST", lambda: self.post_definitions(None))
        r("/api/definitions/<vhost>", "GET", self.get_vhost_definitions)
        r("/api/definitions/<vhost>", "POST", self.post_definitions)
        r("/api/actors", "GET", lambda: self.records().actors())
        r("/api/dashboard", "GET", lambda: self.records().dashboard(self.port))
        r("/api/actors/<urn>", "GET", self.get_actor)

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
        """``GET /api/connections/{name}``."""
        return self._one(self.records().connections(), name=name)

    def get_connection_channels(self, name: str) -> list[dict[str, Any]]:
        """``GET /api/connections/{name}/channels``."""
        records = self.records()
        self._one(records.connections(), name=name)
        return [c for c in records.channels() if c["connection_details"]["name"] == name]

    def delete_connection(self, name: str) -> None:
        """``DELETE /api/connections/{name}`` (reason from the ``X-Reason`` header)."""
        reason = bottle.request.get_header("X-Reason") or "Closed via management plugin"
        self.commands.close_connection(name, reason)

    # ----- exchanges

    def get_exchange(self, vhost: str, name: str) -> dict[str, Any]:
        """``GET /api/exchanges/{vhost}/{name}`` (``amq.default`` names the default exchange)."""
        name = "" if name == "amq.default" else name
        return self._one(self._vhost_records(vhost).exchanges(vhost), name=name)

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
        self.commands.delete_queue(vhost, name, _flag("if-unused"), _flag("if-empty"))

    def purge_queue(self, vhost: str, name: str) -> None:
        """``DELETE /api/queues/{vhost}/{name}/contents``."""
        self.commands.purge_queue(vhost, name)

    def get_messages(self, vhost: str, name: str) -> list[dict[str, Any]]:
        """``POST /api/queues/{vhost}/{name}/get`` with ``{count, ackmode, encoding, truncate}``."""
        body = _json_body()
        if not isinstance(body, dict):
            raise bad_request("expected a JSON object")
        count = body.get("count", 1)
        ackmode = body.get("ackmode", "ack_requeue_true")
        encoding = body.get("encoding", "auto")
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
            raise bad_request("encoding must be auto or base64")
        if truncate is not None and (not isinstance(truncate, int) or truncate < 0):
            raise bad_request("truncate must be a non-negative integer")
        taken = self.commands.get_messages(vhost, name, count, ACK_MODES[ackmode])
        return [encode_message(t, encoding, truncate) for t in taken]

    # ----- definitions

    def get_vhost_definitions(self, vhost: str) -> dict[str, Any]:
        """``GET /api/definitions/{vhost}``."""
        return self._vhost_records(vhost).definitions(vhost)

    def post_definitions(self, vhost: str | None) -> None:
        """``POST /api/definitions[/{vhost}]``: 204, or 400 listing what was refused."""
        body = _json_body()
        if not isinstance(body, dict):
            raise bad_request("definitions must be a JSON object")
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
