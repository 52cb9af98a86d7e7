"""The provider as a process: it must not outlive Terraform."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.e2e


def test_the_provider_exits_when_terraform_dies() -> None:
    # A parent starts a child running exit_with_parent, waits until the child watches, then dies.
    child_code = (
        "from rtserve.provider.main import exit_with_parent; import time; exit_with_parent(0.05); "
        "print('watching', flush=True); time.sleep(30)"
    )
    parent_code = (
        "import subprocess, sys; "
        f"p = subprocess.Popen([sys.executable, '-c', {child_code!r}], stdout=subprocess.PIPE, text=True); "
        "p.stdout.readline(); print(p.pid, flush=True)"
    )
    done = subprocess.run([sys.executable, "-c", parent_code], capture_output=True, text=True, check=True, timeout=20)
    pid = int(done.stdout)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    raise AssertionError("the child outlived its parent")
