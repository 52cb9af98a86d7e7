"""The Terraform runner's plumbing: command lines, environment, and reading `-json` events."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rtserve.provider.install import Installation
from rtserve.provider.terraform import ChangeSummary, RunResult, Terraform, _digest

pytestmark = pytest.mark.unit


def runner(tmp_path: Path, **kwargs) -> Terraform:  # type: ignore[no-untyped-def]
    installation = Installation(tmp_path / "m", tmp_path / "rc", (), changed=False)
    return Terraform(tmp_path, installation, **kwargs)


def test_the_embedded_terraform_runs_as_a_child_python(tmp_path: Path) -> None:
    assert runner(tmp_path).argv(["plan"]) == [
        sys.executable,
        "-m",
        "rtserve.provider.tfcli",
        f"-chdir={tmp_path}",
        "plan",
    ]


def test_a_named_binary_is_resolved_on_path(tmp_path: Path) -> None:
    assert runner(tmp_path, terraform_bin="sh").argv(["init"])[0].endswith("/sh")
    with pytest.raises(FileNotFoundError):
        runner(tmp_path, terraform_bin="no-such-terraform")


def test_the_environment_points_terraform_at_the_mirror_and_adds_the_callers(tmp_path: Path) -> None:
    env = runner(tmp_path, env={"RTSERVE_TOKEN": "t"}).environment()
    assert env["TF_CLI_CONFIG_FILE"] == str(tmp_path / "rc")
    assert env["RTSERVE_TOKEN"] == "t" and env["TF_IN_AUTOMATION"] == "1"


def test_events_give_the_summary_changes_drift_and_diagnostics() -> None:
    result = RunResult(command="plan", returncode=2, seconds=0.1)
    _digest(
        result,
        [
            {"type": "resource_drift", "change": {"resource": {"addr": "a.b"}, "action": "delete"}},
            {"type": "planned_change", "change": {"resource": {"addr": "a.b"}, "action": "create"}},
            {"type": "change_summary", "changes": {"add": 1, "change": 0, "remove": 0, "operation": "plan"}},
            {"type": "diagnostic", "diagnostic": {"severity": "warning", "summary": "w", "detail": "d"}},
        ],
    )
    assert result.ok
    assert result.summary == ChangeSummary(add=1)
    assert str(result.summary) == "1 to add, 0 to change, 0 to destroy"
    assert [(c.address, c.action) for c in result.changes] == [("a.b", "create")]
    assert [(c.address, c.action) for c in result.drift] == [("a.b", "delete")]
    assert result.errors == []


def test_a_failed_apply_shows_terraforms_errors() -> None:
    result = RunResult(command="apply", returncode=1, seconds=0.1)
    _digest(
        result,
        [
            {
                "type": "diagnostic",
                "diagnostic": {
                    "severity": "error",
                    "summary": "Could not enable: X",
                    "detail": "msg",
                    "address": "r.x",
                },
            }
        ],
    )
    assert not result.ok
    assert result.error_text() == "Error: Could not enable: X (r.x)\nmsg"


LOCK = """# This file is maintained automatically by "terraform init".

provider "registry.terraform.io/hashicorp/random" {
  version = "3.6.0"
  hashes = [
    "h1:aaa=",
  ]
}

provider "registry.terraform.io/rtserve/rtserve" {
  version     = "0.1.0"
  constraints = "0.1.0"
  hashes = [
    "h1:bbb=",
  ]
}
"""


def test_a_stale_rtserve_lock_entry_is_dropped_and_the_others_kept(tmp_path: Path) -> None:
    (tmp_path / ".terraform.lock.hcl").write_text(LOCK)
    assert runner(tmp_path)._forget_locked_rtserve()
    text = (tmp_path / ".terraform.lock.hcl").read_text()
    assert "hashicorp/random" in text and "h1:aaa=" in text
    assert "rtserve" not in text
    assert not runner(tmp_path)._forget_locked_rtserve()
