"""rtserve's own secret store: Databricks-style scopes of secrets, encrypted at rest.

Values are sealed with Fernet (the `cryptography` package) under a key kept apart from the database:
a key file, `<data-dir>/secrets.key` (0600, made at first use) unless `RTSERVE_SECRETS_KEY_FILE`
names another (several instances on one database must share it). A copy of the database alone reveals
no value. No route reads a value back: `value()` is called only when a replica starts, to fill its
environment variables (control/environment_vars.py).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from rtserve.server.errors import ApiError, invalid, not_found
from rtserve.server.store import repo
from rtserve.server.store.models import Secret, SecretScope

# Databricks' rules: scope names of letters, digits, dashes, underscores, periods and @; keys without @.
SCOPE_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}")
MAX_VALUE_BYTES = 128 * 1024


def load_key(path: Path) -> Fernet:
    """The Fernet key in `path`, made (mode 0600) if there is none yet."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as made:
            made.write(Fernet.generate_key())
    try:
        return Fernet(path.read_bytes().strip())
    except ValueError:
        raise ValueError(f"{path} does not hold a Fernet key (32 url-safe base64-encoded bytes)") from None


def check_scope(scope: object) -> str:
    if not isinstance(scope, str) or not SCOPE_PATTERN.fullmatch(scope):
        raise invalid(f"'scope' must be 1-128 letters, digits, dashes, underscores, periods or @; got {scope!r}.")
    return scope


def check_key(key: object) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise invalid(f"'key' must be 1-128 letters, digits, dashes, underscores or periods; got {key!r}.")
    return key


def open_store(sessions: sessionmaker[Session], key_path: Path) -> SecretStore:
    """The secret store over `sessions`, sealed with the key in `key_path` (made at first use)."""
    return SecretStore(sessions, load_key(key_path))


class MissingSecret(LookupError):
    """A secret reference names a scope or key that does not exist (any more)."""

    def __init__(self, scope: str, key: str) -> None:
        super().__init__(f"secret {key!r} does not exist in scope {scope!r}")
        self.scope = scope
        self.key = key


class SecretStore:
    """Scopes and secrets in rtserve's store. Blocking (database): call it in a thread."""

    def __init__(self, sessions: sessionmaker[Session], fernet: Fernet) -> None:
        self._sessions = sessions
        self._fernet = fernet

    def create_scope(self, scope: str) -> None:
        check_scope(scope)
        try:
            with self._sessions.begin() as session:
                if repo.get_secret_scope(session=session, name=scope) is not None:
                    raise _scope_exists(scope)
                repo.add_secret_scope(session=session, scope=SecretScope(name=scope, created_at=_now_ms()))
        except IntegrityError:  # created concurrently
            raise _scope_exists(scope) from None

    def delete_scope(self, scope: str) -> None:
        with self._sessions.begin() as session:
            self._require_scope(session, scope)
            repo.delete_secret_scope(session=session, name=scope)

    def list_scopes(self) -> list[str]:
        with self._sessions() as session:
            return [scope.name for scope in repo.list_secret_scopes(session=session)]

    def put(self, scope: str, key: str, value: str) -> None:
        check_key(key)
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise invalid(f"A secret's value may be at most {MAX_VALUE_BYTES} bytes; got {len(value.encode())}.")
        ciphertext = self._fernet.encrypt(value.encode()).decode()
        with self._sessions.begin() as session:
            self._require_scope(session, scope)
            secret = Secret(scope=scope, key=key, ciphertext=ciphertext, last_updated_timestamp=_now_ms())
            repo.put_secret(session=session, secret=secret)

    def delete(self, scope: str, key: str) -> None:
        with self._sessions.begin() as session:
            self._require_scope(session, scope)
            if repo.get_secret(session=session, scope=scope, key=key) is None:
                raise not_found(f"Secret '{key}' does not exist in scope '{scope}'.")
            repo.delete_secret(session=session, scope=scope, key=key)

    def list(self, scope: str) -> list[tuple[str, int]]:
        """(key, last updated, epoch ms) of each secret of the scope: never a value."""
        with self._sessions() as session:
            self._require_scope(session, scope)
            return [(s.key, s.last_updated_timestamp) for s in repo.list_secrets(session=session, scope=scope)]

    def exists(self, scope: str, key: str) -> bool:
        with self._sessions() as session:
            return repo.get_secret(session=session, scope=scope, key=key) is not None

    def value(self, scope: str, key: str) -> str:
        """The decrypted value, for a replica's environment only; MissingSecret if it is not there."""
        with self._sessions() as session:
            secret = repo.get_secret(session=session, scope=scope, key=key)
            if secret is None:
                raise MissingSecret(scope, key)
            ciphertext = secret.ciphertext
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise ValueError(
                f"secret {key!r} of scope {scope!r} was sealed with another key than the secrets key file's"
            ) from None

    @staticmethod
    def _require_scope(session: Session, scope: str) -> None:
        if repo.get_secret_scope(session=session, name=scope) is None:
            raise not_found(f"Scope '{scope}' does not exist.")


def _scope_exists(scope: str) -> ApiError:
    return ApiError("RESOURCE_ALREADY_EXISTS", f"Scope '{scope}' already exists.")


def _now_ms() -> int:
    return int(time.time() * 1000)
