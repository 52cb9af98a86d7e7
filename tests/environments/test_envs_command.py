"""`rtserve envs list|prune` over a data dir's environments (folders laid out as the builder leaves them)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtserve.server.cli import app
from rtserve.server.environments.builder import LAST_USED, LOCK_FILE, READY_MARKER

pytestmark = pytest.mark.unit
DAY = 86400.0


def environment(envs: Path, key: str, last_used: float) -> Path:
    path = envs / key
    (path / "bin").mkdir(parents=True)
    (path / READY_MARKER).write_text("3.11.7\n")
    (path / LOCK_FILE).write_text("# resolved\nroman==4.2\npandas==2.2.0\n")
    (path / LAST_USED).write_text(f"{last_used:.0f}\n")
    return path


def test_list_shows_each_complete_environment_most_recently_used_first(tmp_path: Path):
    envs = tmp_path / "data" / "envs"
    environment(envs, "aaaa000000000000", time.time() - 10 * DAY)
    environment(envs, "bbbb000000000000", time.time())
    (envs / "cccc000000000000.partial").mkdir()  # a build cut short is not an environment

    result = CliRunner().invoke(app, ["envs", "list", "--data-dir", str(tmp_path / "data")])

    assert result.exit_code == 0, result.output
    assert result.output.index("bbbb000000000000") < result.output.index("aaaa000000000000")
    assert "3.11.7" in result.output and "cccc" not in result.output


def test_prune_removes_environments_unused_for_the_given_days_and_builds_cut_short(tmp_path: Path):
    envs = tmp_path / "data" / "envs"
    old = environment(envs, "aaaa000000000000", time.time() - 10 * DAY)
    recent = environment(envs, "bbbb000000000000", time.time() - 1 * DAY)
    (envs / "cccc000000000000.partial").mkdir()

    result = CliRunner().invoke(app, ["envs", "prune", "--unused-days", "7", "--data-dir", str(tmp_path / "data")])

    assert result.exit_code == 0, result.output
    assert "Removed 2 environment(s): aaaa000000000000, cccc000000000000.partial" in result.output
    assert not old.exists() and recent.exists() and not (envs / "cccc000000000000.partial").exists()


def test_list_of_a_data_dir_without_environments_is_empty(tmp_path: Path):
    result = CliRunner().invoke(app, ["envs", "list", "--data-dir", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert "key" in result.output
