"""The `rtserve` command's first steps: its version, readable help, and a busy port refused before anything starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtserve import __version__
from rtserve.server.cli import app

pytestmark = pytest.mark.unit


def test_version_is_printed_and_exits_zero():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"rtserve {__version__}"


@pytest.mark.parametrize("command", [[], ["server"], ["tokens", "create"], ["plan"], ["demo"], ["sql"]])
def test_help_names_values_and_defaults_without_type_noise(command: list[str]):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "<str>" not in result.stdout and "<bool>" not in result.stdout and "list[str]" not in result.stdout
    if command == ["server"]:
        assert "--port PORT" in result.stdout and "[default: 8080]" in result.stdout


def test_a_busy_port_is_refused_at_once_with_a_free_one_suggested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("RTSERVE_DATA_DIR", raising=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        data_dir = tmp_path / "data"
        result = CliRunner().invoke(app, ["server", "--port", str(port), "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert f"port {port} on 127.0.0.1 is in use" in message and "--port " in message
    assert not data_dir.exists()  # refused before anything was created
