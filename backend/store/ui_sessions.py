"""UI sessions in the database, for instances sharing one PostgreSQL: sign in on one, act on any.

The same sessions as `ui.session.SessionStore` (expiry, CSRF tokens signed with a key the instances
share), kept in `ui_sessions` by the hash of their id, with the hash of their token. A request's
`last_seen` is written only when it is a minute old, so browsing costs one read per request.
Blocking: the UI calls it in a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from rtserve.server.store.models import UiSessionRow
from rtserve.server.ui.session import SessionStore, UiSession

# `last_seen` is refreshed at most this often: idle expiry is counted in hours.
TOUCH_SECONDS = 60.0


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class DatabaseSessionStore(SessionStore):
    blocking = True

    def __init__(
        self,
        sessions: sessionmaker[Session],
        key: bytes,
        idle_seconds: float = 8 * 3600,
        max_age_seconds: float = 7 * 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(idle_seconds, max_age_seconds, clock=clock, key=key)
        self.sessions = sessions

    def create(self, token_hash: str) -> UiSession:
        session = self.new_session(token_hash)
        now = session.created_at
        with self.sessions.begin() as db:
            # Expired sessions go when new ones come (the expiry check on reading stays the rule).
            db.execute(
                delete(UiSessionRow).where(
                    or_(
                        UiSessionRow.last_seen < now - self.idle_seconds,
                        UiSessionRow.created_at < now - self.max_age_seconds,
                    )
                )
            )
            db.add(
                UiSessionRow(id_hash=_id_hash(session.session_id), token_hash=token_hash, created_at=now, last_seen=now)
            )
        session.saved = self._save_flashes
        return session

    def get(self, session_id: str | None) -> UiSession | None:
        if not session_id:
            return None
        now = self._clock()
        with self.sessions.begin() as db:
            row = db.execute(
                select(UiSessionRow).where(UiSessionRow.id_hash == _id_hash(session_id))
            ).scalar_one_or_none()
            if row is None:
                return None
            if self.expired(row.created_at, row.last_seen, now):
                db.delete(row)
                return None
            if now - row.last_seen > TOUCH_SECONDS:
                row.last_seen = now
            flashes = [(str(level), str(message)) for level, message in json.loads(row.flashes or "[]")]
            return UiSession(
                session_id,
                row.token_hash,
                self.csrf_token(session_id),
                row.created_at,
                row.last_seen,
                flashes,
                saved=self._save_flashes,
            )

    def delete(self, session_id: str) -> None:
        with self.sessions.begin() as db:
            db.execute(delete(UiSessionRow).where(UiSessionRow.id_hash == _id_hash(session_id)))

    def _save_flashes(self, session: UiSession) -> None:
        with self.sessions.begin() as db:
            row = db.get(UiSessionRow, _id_hash(session.session_id))
            if row is not None:
                row.flashes = json.dumps(session.flashes)

    def __len__(self) -> int:
        with self.sessions() as db:
            return int(db.execute(select(func.count()).select_from(UiSessionRow)).scalar_one())
