"""`rtserve server` keeps its data dir private to its user, whatever the umask it was started with.

The data dir holds the token hashes (rtserve.db), the registry (mlflow.db), the model artifacts, the
replica logs and the replicas' sockets: under a umask of 022 they used to be readable by every local
user. Each test runs a real `rtserve server` process started with umask 022.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rtserve.server.process import BackendProcess

pytestmark = pytest.mark.api
TOKEN = "rtsv-admin-for-data-dir-tests"


def run_server_once(data_dir: Path, log_path: Path) -> None:
    """Start `rtserve server` on `data_dir` with umask 022 (the child inherits it), wait for /health, stop it."""
    saved = os.umask(0o022)
    try:
        process = BackendProcess(data_dir, admin_token=TOKEN, log_path=log_path).start()
    finally:
        os.umask(saved)
    process.stop()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def loose(data_dir: Path) -> list[str]:
    """Everything under the data dir that another local user could read, write or enter."""
    found = []
    for path in [data_dir, *data_dir.rglob("*")]:
        if not path.is_symlink() and mode(path) & 0o077:
            found.append(f"{path.relative_to(data_dir)}: {oct(mode(path))}")
    return found


def test_a_fresh_data_dir_and_everything_the_server_creates_are_private(tmp_path: Path):
    data_dir = tmp_path / "data"

    run_server_once(data_dir, tmp_path / "backend.log")

    assert mode(data_dir) == 0o700
    for name in ("mlartifacts", "logs", "models", "run"):
        assert mode(data_dir / name) == 0o700, name
    for name in ("rtserve.db", "mlflow.db"):
        assert mode(data_dir / name) == 0o600, name
    assert loose(data_dir) == []


def test_an_existing_data_dir_with_loose_modes_is_tightened_at_start(tmp_path: Path):
    data_dir = tmp_path / "data"
    run_server_once(data_dir, tmp_path / "backend.log")
    # What an older rtserve left behind under umask 022.
    for path in (data_dir, data_dir / "mlartifacts", data_dir / "logs"):
        path.chmod(0o755)
    for path in (data_dir / "rtserve.db", data_dir / "mlflow.db"):
        path.chmod(0o644)

    run_server_once(data_dir, tmp_path / "backend.log")

    assert mode(data_dir) == 0o700
    assert mode(data_dir / "mlartifacts") == mode(data_dir / "logs") == 0o700
    assert mode(data_dir / "rtserve.db") == mode(data_dir / "mlflow.db") == 0o600
