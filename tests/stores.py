"""Throw-away stores for tests: a PostgreSQL cluster (started as the `postgres` user when root) and
an external MLflow tracking server, each on a free port, stopped when the context ends."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from rtserve.server.process import free_port


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        pytest.skip(f"PostgreSQL's {name} is not installed (make system-deps installs it)")
    return str(candidates[-1])


def _as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


@contextmanager
def postgres_cluster(root: Path) -> Iterator[str]:
    """A new PostgreSQL cluster under `root`; yields the URL of its `postgres` database."""
    data = root / "cluster"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        os.chmod(root, 0o755)
        for parent in root.parents:  # postgres must be able to reach its data dir
            if parent == Path("/"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
    port = free_port()
    subprocess.run(
        _as_postgres(_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"),
        check=True,
        capture_output=True,
    )
    options = f"-k {root} -p {port} -c listen_addresses=127.0.0.1"
    subprocess.run(
        _as_postgres(_pg_bin("pg_ctl"), "-D", str(data), "-l", str(root / "pg.log"), "-w", "-o", options, "start"),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres(_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"), capture_output=True)


@contextmanager
def mlflow_server(root: Path, timeout: float = 60.0) -> Iterator[str]:
    """`mlflow server` (SQLite store, proxied artifacts under `root`); yields its URL."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    argv += [
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    server = subprocess.Popen([*argv, "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(20)
