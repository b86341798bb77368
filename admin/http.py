"""HTTP plumbing the admin's routes share: RabbitMQ's JSON answers and errors, and the body.

Errors are ``{"error": ..., "reason": ...}`` as RabbitMQ's management plugin sends them.
"""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

import bottle

from dispatchd.admin.auth import ApiUser
from dispatchd.admin.commands import CommandError

__all__ = [
    "ApiError",
    "bad_request",
    "created",
    "current_user",
    "challenge",
    "error_response",
    "flag",
    "json_object",
    "login_failed",
    "text",
    "json_response",
    "not_authorised",
    "not_found",
    "refused",
    "required",
]

REALM = "RabbitMQ Management"
USER = "dispatchd.user"  # the request's ApiUser, in the WSGI environ


class ApiError(Exception):
    """An HTTP error answer: status, RabbitMQ's ``error`` word and a ``reason`` (a text, or
    a list as RabbitMQ's terms render); ``challenge`` asks the browser for credentials."""

    def __init__(self, status: int, error: str, reason: Any, challenge: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason
        self.challenge = challenge


def login_failed(challenge: bool = True) -> ApiError:
    """401 for credentials that are not a user's (RabbitMQ spells this one with a z);
    ``challenge`` for Basic credentials, not for a login form or session cookie (so the
    browser does not ask for Basic credentials and remember them)."""
    return ApiError(401, "not_authorized", "Login failed", challenge=challenge)


def not_found() -> ApiError:
    """RabbitMQ's 404 for an unknown vhost or object."""
    return ApiError(404, "Object Not Found", "Not Found")


def bad_request(reason: Any) -> ApiError:
    """400 with the reason the input was refused."""
    return ApiError(400, "bad_request", reason)


def not_authorised(reason: str) -> ApiError:
    """401: the user may not do this."""
    return ApiError(401, "not_authorised", reason)


def refused(error: CommandError) -> ApiError:
    """The answer to a declare, delete or bind the broker refused, as RabbitMQ's management
    plugin gives it: 401 ``Access refused.``, 404 or 400 with the error's text."""
    if error.code == 403:
        return not_authorised("Access refused.")
    if error.code == 404:
        return ApiError(404, "not_found", error.text)
    return bad_request(error.text)


def current_user() -> ApiUser:
    """The user the request authenticated as."""
    user: ApiUser = bottle.request.environ[USER]
    return user


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
    """The JSON answer for an error."""
    response = json_response(error.status, {"error": error.error, "reason": error.reason})
    del response["Cache-Control"]
    if error.challenge:
        response.set_header("WWW-Authenticate", f'Basic realm="{REALM}"')
    return response


def challenge() -> bottle.HTTPResponse:
    """401 with an empty body for a request without credentials, as RabbitMQ's."""
    return bottle.HTTPResponse(status=401, headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})


def flag(name: str) -> bool:
    """A ``?name=true`` query flag."""
    return bottle.request.query.get(name, "false").lower() == "true"


def json_object() -> dict[str, Any]:
    """The request's JSON body, an object (empty or ``null``: ``{}``), or 400 as RabbitMQ."""
    raw = bottle.request.body.read()
    try:
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise bad_request("not_json") from None
    if body is None:
        return {}
    if isinstance(body, str):
        raise bad_request(
            "invalid payload: the request body JSON-decoded to a string. "
            "Is the input doubly-JSON-encoded?"
        )
    if not isinstance(body, dict):
        raise bad_request("not_json")
    return body


def required(body: dict[str, Any], *keys: str) -> list[Any]:
    """The values of ``keys``, which must all be in ``body``: else 400 naming every missing
    one as RabbitMQ does (``[{key_missing,write},{key_missing,read}]``)."""
    missing = [key for key in keys if key not in body]
    if missing:
        raise bad_request("[" + ",".join(f"{{key_missing,{key}}}" for key in missing) + "]")
    return [body[key] for key in keys]


def text(value: Any, key: str) -> str:
    """A body value that must be a string (400 otherwise)."""
    if not isinstance(value, str):
        raise bad_request(f"{key} must be a string")
    return value


def created() -> bottle.HTTPResponse:
    """201 Created, empty, as RabbitMQ answers a PUT that made something new."""
    return bottle.HTTPResponse(status=201)
