"""Replica logs ("All Replicas" merged or one replica) and the event history of an endpoint."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from sqlalchemy.orm import Session, sessionmaker

from backend.errors import not_found
from backend.store import repo

TAIL_BYTES = 256 * 1024


def _tail(path: Path, max_bytes: int) -> str:
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - max_bytes))
        data = handle.read()
    text = data.decode("utf-8", errors="replace")
    return text.split("\n", 1)[1] if size > max_bytes and "\n" in text else text


def replica_log_files(data_dir: Path, model: str, version: str) -> list[Path]:
    directory = data_dir / "logs" / quote(model, safe="") / version
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.log"), key=lambda p: p.stat().st_mtime)


def version_logs(data_dir: Path, model: str, version: str, replica_id: str | None) -> str:
    files = replica_log_files(data_dir, model, version)
    if replica_id is not None:
        chosen = [f for f in files if f.stem == replica_id]
        if not chosen:
            raise not_found(f"No logs for replica '{replica_id}' of version {version} of '{model}'.")
        return _tail(chosen[0], TAIL_BYTES)
    # All Replicas: every line prefixed with the replica it came from.
    parts = []
    for path in files[-10:]:
        lines = _tail(path, TAIL_BYTES // 4).splitlines()
        parts.extend(f"[{path.stem}] {line}" for line in lines)
    return "\n".join(parts) + ("\n" if parts else "")


def event_history(sessions: sessionmaker[Session], model: str, version: str | None) -> list[dict]:
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
