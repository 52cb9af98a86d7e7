"""One backend per data dir: the lock is taken once per process, refused to another, and given up on release."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rtserve.server.store import instance_lock

pytestmark = pytest.mark.unit

OTHER_PROCESS = """
import sys
from pathlib import Path
from rtserve.server.store import instance_lock
try:
    instance_lock.hold(Path(sys.argv[1]))
except instance_lock.DataDirInUse as exc:
    print(exc)
    sys.exit(3)
"""


def other_process_takes(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(data_dir)], capture_output=True, text=True)


def test_taken_once_per_process_refused_to_another_and_free_after_release(tmp_path: Path):
    assert instance_lock.hold(tmp_path) is True
    try:
        assert instance_lock.hold(tmp_path) is False  # this process holds it already
        refused = other_process_takes(tmp_path)
        assert refused.returncode == 3 and "one backend per data dir" in refused.stdout
        assert f"pid {os.getpid()}" in refused.stdout
    finally:
        instance_lock.release(tmp_path)
    assert other_process_takes(tmp_path).returncode == 0
