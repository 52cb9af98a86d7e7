"""Backend settings: command-line options and RTSERVE_* environment variables, resolved once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".rtserve")
    # SQLAlchemy URL of rtserve's own state; SQLite (WAL) under data_dir by default.
    database_url: str | None = None
    # An external MLflow tracking server; None embeds MLflow's own server in the backend.
    mlflow_tracking_uri: str | None = None
    admin_token: str | None = field(default_factory=lambda: os.environ.get("RTSERVE_ADMIN_TOKEN") or None)
    # Largest scoring or control request body accepted, in bytes (Databricks allows 16 MB).
    max_request_bytes: int = 16 * 1024 * 1024
    request_timeout_seconds: float = field(default_factory=lambda: _env_float("RTSERVE_REQUEST_TIMEOUT_SECONDS", 60.0))
    reconcile_interval_seconds: float = 0.5
    # How often the registry is re-read for stage changes made outside rtserve's own routes.
    registry_poll_seconds: float = 2.0
    # Requests one replica serves concurrently; maps workload concurrency to replica counts.
    replica_concurrency: int = 4
    # A scale-to-zero version with no request for this long stops all its replicas.
    scale_to_zero_idle_seconds: float = field(
        default_factory=lambda: _env_float("RTSERVE_SCALE_TO_ZERO_IDLE_SECONDS", 1800.0)
    )
    # Hysteresis of the autoscaler: how long a scaling decision must persist before it applies.
    upscale_delay_seconds: float = field(default_factory=lambda: _env_float("RTSERVE_UPSCALE_DELAY_SECONDS", 1.0))
    downscale_delay_seconds: float = field(default_factory=lambda: _env_float("RTSERVE_DOWNSCALE_DELAY_SECONDS", 30.0))
    # Requests a version may hold beyond what its replicas serve at once; past it, 429.
    max_queued_requests: int = field(default_factory=lambda: int(_env_float("RTSERVE_MAX_QUEUED_REQUESTS", 256)))
    # A connection must deliver each request head (request line and headers) within this; then it is closed.
    header_timeout_seconds: float = field(default_factory=lambda: _env_float("RTSERVE_HEADER_TIMEOUT_SECONDS", 5.0))
    # Open HTTP connections at once; past it, 503 and close (lowered to stay well under RLIMIT_NOFILE).
    max_connections: int = field(default_factory=lambda: int(_env_float("RTSERVE_MAX_CONNECTIONS", 1000)))

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'rtserve.db').resolve()}"

    @property
    def embedded_mlflow(self) -> bool:
        return self.mlflow_tracking_uri is None

    def ensure_dirs(self) -> None:
        """Create the data dir and its subdirectories private to this user, and tighten existing ones.

        The data dir holds token hashes, the registry, model artifacts, logs and the replicas' sockets:
        directories are 0700 and the database files 0600 (an existing data dir created under a looser
        umask is tightened at every start). `rtserve server` also sets its umask to 0o077, so the files
        it creates later are 0600 too.
        """
        import logging

        def make_private(path: Path, mode: int) -> None:
            try:
                if path.stat().st_mode & 0o777 & ~mode:
                    os.chmod(path, mode)
            except OSError as exc:  # not its owner: say so rather than refuse to start
                logging.getLogger(__name__).warning("Could not make %s private (mode %o): %s", path, mode, exc)

        for sub in ("", "models", "logs", "run", "mlartifacts"):
            path = self.data_dir / sub
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            make_private(path, 0o700)
        for name in ("rtserve.db", "mlflow.db", "admin-token"):
            for suffix in ("", "-wal", "-shm", "-journal"):
                path = self.data_dir / f"{name}{suffix}"
                if path.is_file():
                    make_private(path, 0o600)
