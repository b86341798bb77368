"""The admin page's login sessions, kept in the admin thread's memory.

A login (``POST /login``) makes a :class:`Session`: a random token (the ``HttpOnly;
SameSite=Strict`` cookie, ``Secure`` too over HTTPS) and a random CSRF token (given to the
page, sent back as ``X-CSRF-Token`` with every change). It remembers the user's name and
password hash, so a request with it is refused once the user is gone or has a new password
(checked on the loop, as Basic credentials are). A session ends at logout or after ``timeout``
seconds unused, as RabbitMQ's management ``login_session_timeout`` (minutes, default 480). A
broker restart ends them all.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

__all__ = ["COOKIE", "Session", "Sessions"]

#: The session cookie's name.
COOKIE = "dispatchd_session"


@dataclass(slots=True)
class Session:
    """One login: the user, their password hash then, the CSRF token and when it expires."""

    token: str
    csrf: str
    user: str
    password_hash: str
    expires: float


class Sessions:
    """Live sessions by token (thread-safe: the admin serves each request on its own thread)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, user: str, password_hash: str) -> Session:
        """A new session for ``user`` (expired ones are dropped meanwhile)."""
        now = time.monotonic()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session = Session(token, csrf, user, password_hash, now + self.timeout)
        with self._lock:
            for token in [t for t, s in self._by_token.items() if s.expires <= now]:
                del self._by_token[token]
            self._by_token[session.token] = session
        return session

    def get(self, token: str) -> Session | None:
        """The live session of ``token``, its expiry pushed back (None: none, or expired)."""
        now = time.monotonic()
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            if session.expires <= now:
                del self._by_token[token]
                return None
            session.expires = now + self.timeout
            return session

    def end(self, token: str) -> None:
        """End the session of ``token`` (if there is one)."""
        with self._lock:
            self._by_token.pop(token, None)
