"""The repository itself: no merge left half-done."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]


def test_no_tracked_file_holds_merge_conflict_markers():
    found = subprocess.run(
        ["git", "grep", "-n", "-E", "^(<<<<<<< |>>>>>>> )"], cwd=REPO, capture_output=True, text=True
    )
    assert found.stdout == "", f"conflict markers left by a merge:\n{found.stdout}"
