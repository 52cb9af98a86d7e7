"""Backend instances and their state: one per SQLite data dir; several may start at once on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtserve.server.process import BackendProcess

pytestmark = pytest.mark.api
TOKEN = "rtsv-instances"


def test_a_second_backend_on_the_same_data_dir_is_refused_and_the_first_keeps_serving(tmp_path: Path):
    data = tmp_path / "data"
    with BackendProcess(data, admin_token=TOKEN, log_path=tmp_path / "first.log") as first:
        second = BackendProcess(data, admin_token=TOKEN, log_path=tmp_path / "second.log")
        with pytest.raises(RuntimeError) as refused:
            second.start(timeout=30)
        assert second.process is not None and second.process.returncode == 1
        message = " ".join(refused.value.args[0].split())
        assert f"pid {first.process.pid}" in message
        assert "one backend per data dir" in message and "--data-dir" in message
        assert first.process.poll() is None

    # The lock goes with its process, however it ends: a killed backend leaves none behind.
    again = BackendProcess(data, admin_token=TOKEN, log_path=tmp_path / "again.log").start()
    again.kill()
    BackendProcess(data, admin_token=TOKEN, log_path=tmp_path / "after-kill.log").start().stop()
