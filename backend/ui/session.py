"""Browser sessions of the UI: sign-in with a token, an HttpOnly cookie, and a CSRF token per session.

A session keeps the hash of the token it signed in with (as the tokens table does, never the clear
token), re-verified on every request, so revoking the token, or lowering its permission, applies to
open sessions within the verifier's cache window. Its CSRF token is an HMAC of its id under a key,
so it is never stored. `SessionStore` keeps sessions in this process's memory (one instance: they
end when it restarts); instances sharing a database keep them there (`store/ui_sessions.py`), so a
session and its CSRF token work on any instance. The cookie is honoured
only on /ui/ paths: the API routes never see it, so they stay free of CSRF.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from rtserve.server.auth import Principal, TokenVerifier

UI_PREFIX = "/ui/"
SESSION_COOKIE = "rtserve_session"
LOGIN_COOKIE = "rtserve_login"  # double-submit token of the sign-in form (there is no session yet)
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
# Reachable without a session: the redirects into the UI, the sign-in page and the static files.
PUBLIC_PATHS = frozenset({"/", "/ui", "/ui/login"})
PUBLIC_PREFIXES = ("/ui/static/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_T = TypeVar("_T")


@dataclass
class UiSession:
    session_id: str
    token_hash: str  # the hash of the token signed in with (never the clear token)
    csrf_token: str
    created_at: float
    last_seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (level, message) shown once after a redirect
    # Called when the flashes change, for a store that keeps them elsewhere than in this object.
    saved: Callable[[UiSession], None] | None = field(default=None, repr=False, compare=False)

    def flash(self, level: str, message: str) -> None:
        self.flashes.append((level, message))
        if self.saved is not None:
            self.saved(self)

    def pop_flashes(self) -> list[tuple[str, str]]:
        flashes, self.flashes = self.flashes, []
        if flashes and self.saved is not None:
            self.saved(self)
        return flashes


class SessionStore:
    """Sessions by id in this process's memory; each expires after `idle_seconds` without a request or
    `max_age_seconds` in all. `key` signs the CSRF tokens (random per process unless given)."""

    blocking = False  # its calls never wait on I/O: fine on the event loop

    def __init__(
        self,
        idle_seconds: float = 8 * 3600,
        max_age_seconds: float = 7 * 24 * 3600,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        key: bytes | None = None,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.max_age_seconds = max_age_seconds
        self.max_sessions = max_sessions
        self._clock = clock
        self._key = key or secrets.token_bytes(32)
        self._sessions: dict[str, UiSession] = {}
        self._lock = threading.Lock()

    def new_session(self, token_hash: str) -> UiSession:
        """A session with a fresh id (not stored yet)."""
        now = self._clock()
        session_id = secrets.token_urlsafe(32)
        return UiSession(session_id, token_hash, self.csrf_token(session_id), now, now)

    def csrf_token(self, session_id: str) -> str:
        return hmac.new(self._key, b"csrf:" + session_id.encode(), hashlib.sha256).hexdigest()

    def expired(self, created_at: float, last_seen: float, now: float) -> bool:
        return now - last_seen > self.idle_seconds or now - created_at > self.max_age_seconds

    def create(self, token_hash: str) -> UiSession:
        session = self.new_session(token_hash)
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
                del self._sessions[oldest.session_id]
            self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> UiSession | None:
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if self.expired(session.created_at, session.last_seen, now):
                del self._sessions[session_id]
                return None
            session.last_seen = now
            return session

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)


async def call_store(store: SessionStore, method: Callable[..., _T], *args: object) -> _T:
    """A store call: in a worker thread when the store waits on a database."""
    return await asyncio.to_thread(method, *args) if store.blocking else method(*args)


def csrf_matches(session: UiSession, presented: str | None) -> bool:
    if not presented:
        return False
    return secrets.compare_digest(presented.encode(), session.csrf_token.encode())


def cookie_value(scope: Scope, name: str) -> str | None:
    # Starlette's lenient parser: one malformed cookie of another app on this host must not hide ours.
    for key, value in scope.get("headers", []):
        if key == b"cookie" and (found := cookie_parser(value.decode("latin-1")).get(name)):
            return found
    return None


def is_ui_path(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(UI_PREFIX)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class BrowserAuth:
    """The UI's half of authentication, called by AuthMiddleware for /ui/ paths (and `/`).

    A valid session cookie puts the token's Principal in scope["state"]["principal"] (and the
    session in scope["state"]["ui_session"]), exactly where a header token would put it. Without
    one, a page request is redirected to the sign-in page instead of getting a JSON 401.
    Authorization headers are ignored here: browsers resend cached Basic credentials by themselves,
    which would reopen CSRF.
    """

    def __init__(self, verifier: Callable[[], TokenVerifier], store: Callable[[], SessionStore] | None = None) -> None:
        self.verifier = verifier
        own = SessionStore()
        self.store = store or (lambda: own)

    @staticmethod
    def handles(path: str) -> bool:
        return is_ui_path(path)

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        store = state["ui_sessions"] = self.store()
        session_id = cookie_value(scope, SESSION_COOKIE)
        session = await call_store(store, store.get, session_id)
        principal: Principal | None = None
        if session is not None:
            principal = await self.verifier().check_hash(session.token_hash)
            if principal is None:  # revoked since sign-in: the session ends with it
                await call_store(store, store.delete, session.session_id)
                session = None
        if principal is not None:
            state["principal"] = principal
            state["ui_session"] = session
        if principal is not None or is_public(scope["path"]):
            await app(scope, receive, send)
            return
        reason = "expired" if session_id else "signin"
        await redirect_to_login(scope, send, reason)


async def redirect_to_login(scope: Scope, send: Send, reason: str) -> None:
    """303 to the sign-in page, coming back to this page afterwards; htmx requests get HX-Redirect."""
    is_htmx = _header(scope, b"hx-request") is not None
    if is_htmx:  # a fragment: come back to the page it belongs to
        back = _same_site_path(_header(scope, b"hx-current-url") or UI_PREFIX)
    elif scope.get("method") not in SAFE_METHODS:  # a form post: come back to the page that posted it
        back = _same_site_path(_header(scope, b"referer") or UI_PREFIX)
    else:
        query = scope.get("query_string", b"").decode("latin-1")
        back = safe_next(scope["path"] + (f"?{query}" if query else ""))
    location = f"/ui/login?next={quote(back, safe='')}&reason={reason}"
    headers = [(b"cache-control", b"no-store")]
    if is_htmx:
        status, headers = 200, headers + [(b"hx-redirect", location.encode()), (b"content-length", b"0")]
    else:
        status, headers = 303, headers + [(b"location", location.encode()), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), None)


def _same_site_path(url: str) -> str:
    """The path and query of a URL, kept only if it is a UI path (so never another site)."""
    if "://" in url:
        url = "/" + url.split("://", 1)[1].partition("/")[2]
    return safe_next(url)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path under /ui/, never another site."""
    if not target or not target.startswith(UI_PREFIX) or target.startswith("//") or "\\" in target:
        return "/ui/"
    return target
