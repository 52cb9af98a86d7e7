"""Throw-away stores for tests: a PostgreSQL cluster (started as the `postgres` user when root) and
an external MLflow tracking server, each on a free port, stopped when the context ends."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
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
    """A new PostgreSQL cluster; yields the URL of its `postgres` database. Its data, socket and log are in a
    directory of its own in /tmp (owned by `postgres` when root), removed at the end: not under `root`, whose
    parents (pytest's `/tmp/pytest-of-<user>`, which every new pytest session sets back to 0700) the `postgres`
    user may not reach; `root` gets a copy of the server's log."""
    home = Path(tempfile.mkdtemp(prefix="rtpg-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    data, log = home / "cluster", home / "pg.log"
    port = free_port()
    try:
        _run_as_postgres(_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust")
        options = f"-k {home} -p {port} -c listen_addresses=127.0.0.1"
        _run_as_postgres(_pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o", options, "start")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres(_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"), capture_output=True)
        with contextlib.suppress(OSError):
            shutil.copyfile(log, root / "pg.log")
        shutil.rmtree(home, ignore_errors=True)


def _run_as_postgres(*argv: str) -> None:
    """Run a PostgreSQL program (as `postgres` when root); a failure says what it printed."""
    result = subprocess.run(_as_postgres(*argv), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {result.returncode}: {result.stderr or result.stdout}")


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
