"""Replica logs ("All Replicas" merged or one replica), build logs, and the event history of an endpoint."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from rtserve.server import paths
from rtserve.server.environments.preparation import read_build_log
from rtserve.server.errors import not_found
from rtserve.server.replica_logs import read_log_tail
from rtserve.server.store import repo

TAIL_BYTES = 256 * 1024


def replica_log_files(data_dir: Path, model: str, version: str) -> list[Path]:
    """The current log of each replica of the version, oldest replica first (rotated backups sit beside them).

    `version` must be a version number (400 otherwise): it and `model` reach the file system.
    """
    directory = paths.log_dir(data_dir, model, version)
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.log"), key=lambda p: p.stat().st_mtime)


def version_logs(data_dir: Path, model: str, version: str, replica_id: str | None) -> str:
    files = replica_log_files(data_dir, model, version)
    if replica_id is not None:
        # Only a replica whose log is in the version's directory: the id never becomes a path itself.
        chosen = [f for f in files if f.stem == replica_id]
        if not chosen:
            raise not_found(f"No logs for replica '{replica_id}' of version {version} of '{model}'.")
        return read_log_tail(chosen[0], TAIL_BYTES)
    return merge_replica_logs({f.stem: read_log_tail(f, TAIL_BYTES // 4) for f in files[-10:]})


def merge_replica_logs(logs: dict[str, str]) -> str:
    """All Replicas: every line tagged with its replica, in time order.

    Replicas prefix each line with an ISO-8601 UTC timestamp, which sorts as text; a line without
    one (a partial first line of a tail) keeps the time of the line before it.
    """
    tagged: list[tuple[str, int, str]] = []
    for replica_id, text in logs.items():
        stamp = ""
        for line in text.splitlines():
            head, _, rest = line.partition(" ")
            if len(head) == 24 and head.endswith("Z") and head[4] == "-":
                stamp = head
                tagged.append((stamp, len(tagged), f"{head} [{replica_id}] {rest}"))
            else:
                tagged.append((stamp, len(tagged), f"[{replica_id}] {line}"))
    tagged.sort()
    return "".join(line + "\n" for _, _, line in tagged)


async def event_history(sessions: sessionmaker[Session], model: str, version: str | None) -> list[dict]:
    """The model's events, newest first (read in a worker thread)."""
    return await asyncio.to_thread(_event_history, sessions, model, version)


def _event_history(sessions: sessionmaker[Session], model: str, version: str | None) -> list[dict]:
    with sessions() as session:
        rows = repo.list_events(session=session, model_name=model)
    return [
        {
            "timestamp": row.timestamp,
            "type": row.type,
            "endpoint_version_name": row.endpoint_version_name,
            "stage": row.stage,
            "message": row.message,
        }
        for row in rows
        if version is None or row.endpoint_version_name in (version, None)
    ]


async def build_logs(sessions: sessionmaker[Session], data_dir: Path, model: str, version: str) -> str:
    """A version's build: its environment (the decision, uv's output with timings), then its events
    (download, replica starts, failures), oldest first."""
    build = await asyncio.to_thread(read_build_log, paths.build_dir(data_dir, model, version))
    events = await event_history(sessions, model, version)
    lines = [
        f"{_iso(e['timestamp'])} {e['message']}" for e in reversed(events) if e["endpoint_version_name"] == version
    ]
    return build + "".join(line + "\n" for line in lines)


def _iso(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")
