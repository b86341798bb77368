"""The admin page's login over real HTTP: sessions, their cookie, CSRF tokens, and no CORS.

A session cookie reaches every API route as Basic credentials do; a change made with it needs
the session's CSRF token; the user behind it is checked again on every request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from dispatchd.admin import sessions
from dispatchd.admin.sessions import COOKIE, Sessions
from tests.admin_support import (
    AdminClient,
    Answer,
    admin_broker,  # noqa: F401 - fixture
    vpath,
)
from tests.conftest import BrokerProcess

LOGIN_FAILED = {"error": "not_authorized", "reason": "Login failed"}
CSRF_REFUSED = {"error": "forbidden", "reason": "CSRF token missing or wrong"}


@dataclass
class Login:
    """A logged-in session: sends its cookie (and, when asked, its CSRF token)."""

    client: AdminClient
    cookie: str
    csrf: str

    def request(
        self, method: str, path: str, body: object = None, csrf: str | None = None
    ) -> Answer:
        headers = {"Cookie": f"{COOKIE}={self.cookie}"}
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf
        return self.client.request(method, path, body, headers=headers)


def log_in(port: int, user: str, password: str) -> Answer:
    return AdminClient(port, user=None).request(
        "POST", "/login", {"username": user, "password": password}
    )


def session(port: int, user: str = "guest", password: str = "guest") -> Login:
    answer = log_in(port, user, password)
    assert answer.status == 200, answer.body
    cookie = answer.headers["Set-Cookie"].split(";")[0].removeprefix(f"{COOKIE}=")
    return Login(AdminClient(port, user=None), cookie, answer.body["csrf_token"])


@pytest.fixture
def api(admin_broker: tuple[BrokerProcess, AdminClient]) -> AdminClient:  # noqa: F811
    return admin_broker[1]


@pytest.fixture
def user(api: AdminClient):
    """A fresh user with the tags asked for and every permission in ``/`` (deleted after)."""
    made: list[str] = []

    def make(tags: str) -> str:
        name = f"login-{uuid.uuid4().hex[:8]}"
        body = {"password": "pw", "tags": tags}
        assert api.request("PUT", f"/api/users/{name}", body).status == 201
        everything = {"configure": ".*", "write": ".*", "read": ".*"}
        assert api.request("PUT", f"/api/permissions/%2F/{name}", everything).status == 201
        made.append(name)
        return name

    yield make
    for name in made:
        api.request("DELETE", f"/api/users/{name}")


def test_login_sets_a_strict_http_only_cookie_that_reaches_the_api(api) -> None:
    answer = log_in(api.port, "guest", "guest")
    assert answer.status == 200
    assert answer.body["name"] == "guest" and answer.body["tags"] == ["administrator"]
    attributes = answer.headers["Set-Cookie"].split("; ")
    assert attributes[0].startswith(f"{COOKIE}=") and len(attributes[0]) > len(COOKIE) + 40
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(attributes)
    assert "Secure" not in attributes  # no HTTPS yet
    login = session(api.port)
    assert login.cookie != attributes[0].split("=", 1)[1]  # every login its own token
    assert login.request("GET", "/api/whoami").body == {"name": "guest", "tags": ["administrator"]}
    assert login.request("GET", "/session").body == {
        "name": "guest",
        "tags": ["administrator"],
        "csrf_token": login.csrf,
    }
    assert login.request("GET", "/api/overview").body["product_name"] == "dispatchd"
    assert login.request("HEAD", "/api/overview").status == 200


def test_login_refusals_are_rabbitmqs_texts_without_a_basic_challenge(api, user) -> None:
    for name, password in (("guest", "wrong"), ("nobody", "guest")):
        refused = log_in(api.port, name, password)
        assert (refused.status, refused.body) == (401, LOGIN_FAILED)
        assert "WWW-Authenticate" not in refused.headers
        assert "Set-Cookie" not in refused.headers
    untagged = log_in(api.port, user(""), "pw")
    assert untagged.status == 401
    assert untagged.body == {"error": "not_authorised", "reason": "Not management user"}
    assert "Set-Cookie" not in untagged.headers
    # A form post from another site (no JSON content type) logs nobody in.
    form = AdminClient(api.port, user=None).request(
        "POST",
        "/login",
        raw=b'{"username": "guest", "password": "guest"}',
        headers={"Content-Type": "text/plain"},
    )
    assert form.status == 400 and "Set-Cookie" not in form.headers
    missing = AdminClient(api.port, user=None).request("POST", "/login", {"username": "guest"})
    assert missing.status == 400 and missing.body["reason"] == "[{key_missing,password}]"


def test_a_change_with_the_cookie_needs_the_csrf_token(api) -> None:
    login = session(api.port)
    queue = f"csrf-{uuid.uuid4().hex[:8]}"
    path = f"/api/queues/{vpath('/', queue)}"
    for token in (None, "wrong", ""):
        refused = login.request("PUT", path, {"durable": False}, csrf=token)
        assert (refused.status, refused.body) == (403, CSRF_REFUSED)
    assert api.request("GET", path).status == 404  # nothing was declared
    assert login.request("PUT", path, {"durable": False}, csrf=login.csrf).status == 201
    assert api.get(path)["name"] == queue
    get = {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}
    assert login.request("POST", f"{path}/get", get).status == 403
    assert login.request("POST", f"{path}/get", get, csrf=login.csrf).body == []
    assert login.request("DELETE", path, csrf="wrong").status == 403
    assert api.get(path)["name"] == queue
    assert login.request("DELETE", path, csrf=login.csrf).status == 204
    assert api.request("GET", path).status == 404
    # Another session's token is not this one's.
    other = session(api.port)
    assert login.request("PUT", path, {}, csrf=other.csrf).status == 403


def test_logout_ends_the_session(api) -> None:
    login = session(api.port)
    assert login.request("POST", "/logout").status == 403  # no token: still logged in
    assert login.request("GET", "/api/overview").status == 200
    out = login.request("POST", "/logout", csrf=login.csrf)
    assert out.status == 204
    assert out.headers["Set-Cookie"].startswith(f"{COOKIE}=; Max-Age=0;")
    after = login.request("GET", "/api/overview")
    assert (after.status, after.body) == (401, LOGIN_FAILED)
    assert "WWW-Authenticate" not in after.headers  # no Basic prompt for a cookie
    assert login.request("GET", "/session").status == 401
    assert login.request("POST", "/logout").status == 204  # logged out already: nothing to do
    bogus = Login(login.client, "not-a-session", "x").request("GET", "/api/queues")
    assert (bogus.status, bogus.body) == (401, LOGIN_FAILED)
    assert "WWW-Authenticate" not in bogus.headers


def test_the_sessions_user_is_checked_on_every_request(api, user) -> None:
    name = user("management")
    login = session(api.port, name, "pw")
    assert login.request("GET", "/api/whoami").body == {"name": name, "tags": ["management"]}
    assert login.request("GET", "/api/users").body["reason"] == "Not administrator user"
    # New tags take effect at once (same password hash: the session lives on).
    record = api.get(f"/api/users/{name}")
    keep = {k: record[k] for k in ("password_hash", "hashing_algorithm")}
    assert api.request("PUT", f"/api/users/{name}", {**keep, "tags": "administrator"}).status == 204
    assert login.request("GET", "/api/users").status == 200
    assert api.request("PUT", f"/api/users/{name}", {**keep, "tags": ""}).status == 204
    assert login.request("GET", "/api/overview").body["reason"] == "Not management user"
    assert api.request("PUT", f"/api/users/{name}", {**keep, "tags": "management"}).status == 204
    assert login.request("GET", "/api/overview").status == 200
    # A new password ends the session; so does deleting the user.
    changed = {"password": "new", "tags": "management"}
    assert api.request("PUT", f"/api/users/{name}", changed).status == 204
    assert login.request("GET", "/api/overview").body == LOGIN_FAILED
    again = session(api.port, name, "new")
    assert again.request("GET", "/api/overview").status == 200
    assert api.request("DELETE", f"/api/users/{name}").status == 204
    assert again.request("GET", "/api/overview").body == LOGIN_FAILED
    assert api.request("PUT", f"/api/users/{name}", changed).status == 201  # same name, new user
    assert again.request("GET", "/api/overview").body == LOGIN_FAILED


def test_no_cors(api) -> None:
    evil = {"Origin": "http://evil.example"}
    answers = [
        api.request("GET", "/api/overview", headers=evil),
        api.request("GET", "/", headers=evil),
        AdminClient(api.port, user=None).request(
            "POST", "/login", {"username": "guest", "password": "guest"}, headers=evil
        ),
    ]
    preflight = {**evil, "Access-Control-Request-Method": "PUT"}
    for path in ("/api/queues/%2F/q", "/api/overview", "/login"):
        answer = AdminClient(api.port, user=None).request("OPTIONS", path, headers=preflight)
        assert answer.status >= 400
        answers.append(answer)
    for answer in answers:
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")]


def test_sessions_expire_unused(monkeypatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(sessions.time, "monotonic", lambda: now[0])
    store = Sessions(timeout=60.0)
    first = store.create("guest", "hash")
    assert first.token != first.csrf
    now[0] += 59
    assert store.get(first.token) is first  # used: another 60 s from now
    now[0] += 59
    assert store.get(first.token) is first
    now[0] += 61
    assert store.get(first.token) is None
    second = store.create("guest", "hash")
    store.end(second.token)
    assert store.get(second.token) is None
    assert store.get("") is None
