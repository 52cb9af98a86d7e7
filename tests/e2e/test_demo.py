"""The quick start's main job (`rtserve demo`, what `make demo` runs) works end to end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_the_demo_deploys_the_example_stacks_and_scores_every_format(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "rtserve.server", "demo", "--data-dir", str(tmp_path / "demo"), "--keep"],
        capture_output=True,
        text=True,
        timeout=600,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "synthesized 2 stacks" in output
    assert "every request scored" in output
    for target in ("Production", "Staging"):
        assert f"/model-endpoint/iris-classifier/{target}/invocations" in output
    assert "/serving-endpoints/iris-classifier-canary/invocations" in output
    assert "answered by current" in output  # the serving endpoint's traffic split, 90% to version 1
    assert "rate limits: 600 calls per minute per user; grants: users CAN_QUERY" in output  # declared in main.py
    # The two versions disagree on one of the rows, so Production (version 1) and Staging (version 2) read apart.
    assert _predictions(output, "Production") != _predictions(output, "Staging")
    # --keep: the backend is still up, and the output says where, with what, and how to stop it.
    pid, ui, token = (
        _found(pattern, output) for pattern in (r"keeps running \(pid (\d+)\)", r"UI: +(\S+/ui/)", r"token: (\S+)")
    )
    try:
        assert httpx.get(ui.removesuffix("/ui/") + "/health", timeout=10).status_code == 200
        listed = httpx.get(ui.removesuffix("/ui/") + "/api/2.0/serving-endpoints", auth=("token", token), timeout=10)
        assert listed.status_code == 200
        assert f"kill {pid}" in output
    finally:
        os.kill(int(pid), signal.SIGTERM)


def _found(pattern: str, output: str) -> str:
    match = re.search(pattern, output)
    assert match, (pattern, output[-2000:])
    return match.group(1)


def _predictions(output: str, target: str) -> str:
    """The predictions column of the demo's table row for `target` and dataframe_split."""
    row = next(line for line in output.splitlines() if target in line and "dataframe_split" in line)
    return row.rsplit("│", 2)[-2].strip()
