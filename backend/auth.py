"""Tokens and permissions: Bearer or Basic `token:<token>` on every route except health checks.

Tokens are stored as SHA-256 hashes. Verification is cached in memory for a few seconds so the
scoring path never waits on the database; revocation takes effect within that window.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from rtserve.server.errors import ApiError
from rtserve.server.store import repo
from rtserve.server.store.models import ApiToken

TOKEN_PREFIX = "rtsv"


class Permission(enum.IntEnum):
    """Ordered: each level includes the ones below it (Databricks' CAN_VIEW < CAN_QUERY < CAN_MANAGE)."""

    CAN_VIEW = 1
    CAN_QUERY = 2
    CAN_MANAGE = 3
    ADMIN = 4


@dataclass(frozen=True)
class Principal:
    token_id: str
    name: str
    permission: Permission

    def can(self, needed: Permission) -> bool:
        return self.permission >= needed


def authorize(held: Permission, needed: Permission, action: str, *, on: str = "", hint: str = "") -> None:
    """The one decision of authorization, and the one wording of its refusal (403 PERMISSION_DENIED).

    `held` is what the caller holds where it acts (its token's permission, or more through an
    endpoint's grants), `on` names that place (" on serving endpoint 'x'"), `hint` says how to get more.
    """
    if held < needed:
        raise ApiError("PERMISSION_DENIED", f"This token has {held.name}{on}; {action} needs {needed.name}.{hint}")


def generate_token() -> str:
    return f"{TOKEN_PREFIX}{secrets.token_hex(20)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_from_header(authorization: str | None) -> str | None:
    """The token in `Authorization: Bearer <t>` or Basic with user `token` and password `<t>`."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return password if user == "token" and password else None
    return None


class TokenNameInUse(ValueError):
    """An active token already has the name: a new one would share every grant given to that name."""

    def __init__(self, name: str, holders: list[ApiToken]) -> None:
        self.name = name
        # (id, permission) of each active token with the name, read while the rows are still attached.
        self.holders = [(row.id, row.permission) for row in holders]
        held = ", ".join(f"{token_id} ({permission})" for token_id, permission in self.holders)
        super().__init__(f"An active token is already named '{name}': {held}.")


def create_token(
    sessions: sessionmaker[Session],
    *,
    name: str,
    permission: Permission,
    token: str | None = None,
    allow_existing_name: bool = False,
) -> tuple[ApiToken, str]:
    """Store a new token (hashed) and return it with its clear text, which is shown only once.

    Serving endpoints grant permissions to token names, so a token named like an active one gets
    every grant given to that name: that raises `TokenNameInUse` unless `allow_existing_name`.
    """
    clear = token or generate_token()
    row = ApiToken(
        id=uuid.uuid4().hex[:12],
        name=name,
        token_hash=hash_token(clear),
        permission=permission.name,
        created_at=int(time.time() * 1000),
        revoked_at=None,
    )
    with sessions.begin() as session:
        if not allow_existing_name:
            holders = repo.list_active_tokens_named(session=session, name=name)
            if holders:
                raise TokenNameInUse(name, holders)
        repo.add_token(session=session, token=row)
    return row, clear


class AmbiguousTokenName(Exception):
    def __init__(self, name: str, token_ids: list[str]) -> None:
        super().__init__(name)
        self.token_ids = token_ids


def revoke_token(sessions: sessionmaker[Session], token: str) -> str | None:
    """Revoke the active token with this id, or else the one active token with this name; its id, or None.

    Several active tokens share a name only by `--allow-existing-name`: then the id must say which one.
    """
    with sessions.begin() as session:
        row = repo.get_token(session=session, token_id=token)
        if row is None or row.revoked_at is not None:
            named = list(repo.list_active_tokens_named(session=session, name=token))
            if len(named) > 1:
                raise AmbiguousTokenName(token, [t.id for t in named])
            row = named[0] if named else None
        if row is None:
            return None
        row.revoked_at = int(time.time() * 1000)
        return row.id


def bootstrap_admin_token(sessions: sessionmaker[Session], data_dir: Path, env_token: str | None) -> str | None:
    """At first start, create the admin token: RTSERVE_ADMIN_TOKEN, else a generated one in <data-dir>/admin-token."""
    with sessions() as session:
        if repo.list_tokens(session=session):
            return None
    _, clear = create_token(sessions, name="admin", permission=Permission.ADMIN, token=env_token)
    if env_token is None:
        path = data_dir / "admin-token"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(clear + "\n")
        os.chmod(path, 0o600)
    return clear


class TokenVerifier:
    """Maps a clear token to its Principal, caching hits and misses for `ttl_seconds`."""

    def __init__(
        self, sessions: sessionmaker[Session], ttl_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    async def check(self, token: str) -> Principal | None:
        """`verify` for the event loop: a cached answer at once, the store read in a worker thread."""
        return await self.check_hash(hash_token(token))

    async def check_hash(self, digest: str) -> Principal | None:
        """`check` of a token known by its hash (a UI session keeps only that)."""
        found, principal = self._cached(digest)
        return principal if found else await asyncio.to_thread(self.verify_hash, digest)

    def _cached(self, digest: str) -> tuple[bool, Principal | None]:
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return True, cached[1]
        return False, None

    def verify(self, token: str) -> Principal | None:
        """The token's Principal, or None; reads the store on a cache miss (blocks: not on the event loop)."""
        return self.verify_hash(hash_token(token))

    def verify_hash(self, digest: str) -> Principal | None:
        now = self._clock()
        found, principal = self._cached(digest)
        if found:
            return principal
        with self._sessions() as session:
            row = repo.find_token_by_hash(session=session, token_hash=digest)
            principal = Principal(row.id, row.name, Permission[row.permission]) if row else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
