"""`rtserve provider install`: the mirror layout, the CLI config, and idempotence."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtserve.provider import VERSION
from rtserve.provider.cli import provider_app
from rtserve.provider.install import HOME_ENV, cli_config_text, default_home, install, launcher_text, platform_dir

pytestmark = pytest.mark.unit


def test_the_launcher_lands_where_terraform_and_tofu_look_for_it(tmp_path: Path) -> None:
    result = install(tmp_path / "mirror", python="/opt/venv/bin/python")
    expected = [
        tmp_path / "mirror" / host / "rtserve/rtserve/0.1.0" / platform_dir() / "terraform-provider-rtserve_v0.1.0"
        for host in ("registry.terraform.io", "registry.opentofu.org")
    ]
    assert list(result.launchers) == expected
    for launcher in expected:
        assert launcher.read_text() == '#!/bin/sh\nexec /opt/venv/bin/python -P -m rtserve.provider "$@"\n'
        assert os.access(launcher, os.X_OK)
        assert [p.name for p in launcher.parent.iterdir()] == [launcher.name]


def test_the_cli_config_sends_only_rtserve_providers_to_the_mirror(tmp_path: Path) -> None:
    result = install(tmp_path / "mirror")
    text = result.cli_config.read_text()
    assert result.cli_config == tmp_path / "terraformrc"
    assert f'path    = "{tmp_path / "mirror"}"' in text
    assert 'include = ["registry.terraform.io/rtserve/*", "registry.opentofu.org/rtserve/*"]' in text
    assert 'exclude = ["registry.terraform.io/rtserve/*", "registry.opentofu.org/rtserve/*"]' in text
    assert result.env == {"TF_CLI_CONFIG_FILE": str(tmp_path / "terraformrc")}


def test_a_second_install_rewrites_nothing(tmp_path: Path) -> None:
    first = install(tmp_path / "mirror")
    stamps = [p.stat().st_mtime_ns for p in (*first.launchers, first.cli_config)]
    second = install(tmp_path / "mirror")
    assert first.changed and not second.changed
    assert [p.stat().st_mtime_ns for p in (*second.launchers, second.cli_config)] == stamps


def test_another_python_rewrites_the_launcher(tmp_path: Path) -> None:
    install(tmp_path / "mirror", python="/a/python")
    result = install(tmp_path / "mirror", python="/b/python")
    assert result.changed
    assert "/b/python" in result.launchers[0].read_text()


def test_stray_files_beside_the_launcher_are_removed(tmp_path: Path) -> None:
    first = install(tmp_path / "mirror")
    (first.launchers[0].parent / "old-build.zip").write_text("x")
    assert install(tmp_path / "mirror").changed
    assert [p.name for p in first.launchers[0].parent.iterdir()] == [first.launchers[0].name]


def test_paths_with_quotes_are_escaped_in_the_config() -> None:
    assert 'path    = "/x/\\"q\\"/m"' in cli_config_text(Path('/x/"q"/m'))
    assert launcher_text("/my venv/python").startswith("#!/bin/sh\nexec '/my venv/python' -P -m rtserve.provider")


def test_the_cli_command_prints_the_export_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(provider_app, ["install", "--mirror", str(tmp_path / "m"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"export TF_CLI_CONFIG_FILE={tmp_path / 'terraformrc'}"


def test_each_python_environment_has_its_own_default_mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(HOME_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sys, "prefix", "/venvs/one")
    one = default_home()
    monkeypatch.setattr(sys, "prefix", "/venvs/two")
    two = default_home()
    assert one != two and one.parent == two.parent == tmp_path / ".rtserve" / "terraform"
    assert one.name.startswith(f"{VERSION}-")
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "chosen"))
    assert default_home() == tmp_path / "chosen"
