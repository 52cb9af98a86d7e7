"""The quick start's main job (`rtserve demo`, what `make demo` runs) works end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_the_demo_deploys_the_example_stacks_and_scores_every_format(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "rtserve.server", "demo", "--data-dir", str(tmp_path / "demo")],
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
