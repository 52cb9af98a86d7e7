"""Which backend instance leads: the one whose controller acts (starts and stops replicas, promotes, records events).

Several instances may share one PostgreSQL database. Exactly one of them holds a session-level
advisory lock (`pg_try_advisory_lock`) on a dedicated autocommit connection of its own: the leader.
The others try again at every heartbeat, so when the leader dies (its connection closes, and
PostgreSQL drops the lock) one of them takes over within a heartbeat or two. A leader whose connection
breaks stops leading at once and tries again like any other.

Two instances can both believe they lead for at most a heartbeat (the old one has not noticed yet
that it lost its connection), so the actions are fenced too: a leader checks its lock just before it
acts, promotions are conditional updates (control/serving_endpoints.py), and a replica starts only in
a slot it claimed in the database (store/replica_slots.py).

The same connection takes a second lock that keeps the local engine alone: replicas of the local
engine are children of one process, which no other instance can see or reach, so an instance on the
local engine holds that lock exclusively and instances on the Ray engine share it.

On SQLite there is one instance (the data dir's lock refuses a second: store/instance_lock.py), and
it always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger("rtserve.leadership")

# Fixed 64-bit keys of rtserve's advisory locks (store/db.py holds the migrations' one).
LEADER_LOCK_KEY = 0x7274_7365_7276_6502
ENGINE_LOCK_KEY = 0x7274_7365_7276_6503


class EngineConflict(RuntimeError):
    """Another instance on this database runs an engine this one cannot share replicas with."""


class Leadership:
    """The leadership of this instance: `leading` now, `confirm()` before acting.

    `url` is the database's (PostgreSQL, or anything else for a single instance that always leads);
    `heartbeat` the seconds between two checks of the lock; `engine` the engine this instance runs.
    """

    def __init__(self, url: str, heartbeat: float = 1.0, engine: str = "local") -> None:
        self.shared = url.startswith(("postgresql://", "postgresql+"))
        self._url = "postgresql://" + url.split("://", 1)[1] if self.shared else url
        self.heartbeat = heartbeat
        self.engine = engine
        self.leading = not self.shared
        self._connection: Any = None  # psycopg.Connection, used from one thread at a time
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def alone(cls) -> Leadership:
        """The leadership of an instance that shares its state with none: it always leads."""
        return cls("")

    async def start(self) -> None:
        """Connect, take the engine's lock (or raise EngineConflict), try to lead, and keep trying."""
        if not self.shared:
            return
        await self._beat(first=True)
        self._task = asyncio.create_task(self._run(), name="rtserve-leadership")

    async def close(self) -> None:
        """Give leadership up at once (closing the connection drops its locks), for the next leader."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._lock:
            await asyncio.to_thread(self._disconnect)
        self.leading = not self.shared

    async def confirm(self) -> bool:
        """Whether this instance still leads, checked on the database now (just before an action)."""
        if not self.shared:
            return True
        if self.leading:
            await self._beat()
        return self.leading

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self._beat()
            except EngineConflict as exc:  # another engine kind took the database while we were away
                log.error("%s", exc)

    async def _beat(self, first: bool = False) -> None:
        async with self._lock:
            was = self.leading
            self.leading = await asyncio.to_thread(self._check, first)
        if self.leading != was:
            log.warning("This instance %s the reconciler leader", "is now" if self.leading else "is no longer")

    # -- blocking: run in a thread -----------------------------------------------------------------
    def _check(self, first: bool) -> bool:
        """Whether this instance leads now: a live connection holding the leader's lock, taken if free."""
        try:
            held = self.leading
            if self._connection is None or self._connection.closed:
                self._connect(first)
                held = False  # a new connection holds no lock yet
            if held:
                self._connection.execute("SELECT 1")  # the lock lives as long as the connection
                return True
            row = self._connection.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()
            return bool(row and row[0])
        except EngineConflict:
            raise
        except Exception as exc:  # noqa: BLE001 - a database out of reach means not leading, never a crash
            if first:
                raise
            log.warning(
                "Leadership check failed (%s: %s); following until the database answers", type(exc).__name__, exc
            )
            self._disconnect()
            return False

    def _connect(self, first: bool) -> None:
        import psycopg

        # Keepalives: a leader cut off from the database (not just idle) notices it within seconds.
        timeout = max(1, round(self.heartbeat * 3))
        self._connection = psycopg.connect(
            self._url,
            autocommit=True,
            connect_timeout=timeout,
            keepalives=1,
            keepalives_idle=timeout,
            keepalives_interval=1,
            keepalives_count=3,
            application_name="rtserve-leadership",
        )
        take = "pg_try_advisory_lock" if self.engine == "local" else "pg_try_advisory_lock_shared"
        row = self._connection.execute(f"SELECT {take}(%s)", (ENGINE_LOCK_KEY,)).fetchone()
        if not (row and row[0]):
            self._disconnect()
            if self.engine == "local":
                message = (
                    "Another rtserve backend already uses this database: the local engine runs replicas as "
                    "processes of one backend, which other instances cannot reach, so it serves one instance "
                    "only. Run every instance with --engine ray (one Ray cluster), or stop the other backend."
                )
            else:
                message = (
                    "A backend on the local engine already uses this database: it serves one instance only. "
                    "Stop it, or run every instance with --engine ray."
                )
            raise EngineConflict(message)
        if not first:
            log.info("Reconnected to the database for leadership")

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()
