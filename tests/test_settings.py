"""One Settings object holds every RTSERVE_* variable: documented with its default, validated, overridden by options."""

from __future__ import annotations

import os
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rtserve.server.cli import app
from rtserve.server.settings import NOT_FROM_ENV, Settings, SettingsError, doc_default

pytestmark = pytest.mark.unit
CONFIGURATION = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No RTSERVE_* variable of the shell running the tests leaks in; the umask the commands set is restored."""
    for name in list(os.environ):
        if name.upper().startswith("RTSERVE_"):
            monkeypatch.delenv(name)
    saved = os.umask(0o022)
    os.umask(saved)
    yield
    os.umask(saved)


def backend_table() -> dict[str, list[str]]:
    """docs/configuration.md's table of backend variables: variable -> its cells (option, default, meaning)."""
    text = CONFIGURATION.read_text()
    section = text.split("## Backend variables", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        found = re.match(r"\|\s*`(RTSERVE_[A-Z_]+)`\s*\|(.*)\|\s*$", line)
        if found:
            rows[found.group(1)] = [cell.strip() for cell in found.group(2).split("|")]
    return rows


def test_every_variable_is_documented_with_its_default():
    rows = backend_table()
    env_names = Settings.env_names()
    assert env_names, "Settings has no environment variables"
    for field, env_name in env_names.items():
        assert env_name in rows, f"{env_name} is missing from docs/configuration.md"
        default = doc_default(Settings.model_fields[field].default)
        cell = rows[env_name][1]
        expected = f"`{default}`" if default != "unset" else "unset"
        assert cell.startswith(expected), f"{env_name}: the docs say {cell!r}, the default is {default!r}"
    # ...and the table names no variable that Settings does not read.
    assert set(rows) == set(env_names.values())


def test_documented_options_are_the_ones_that_override():
    rows = backend_table()
    assert rows["RTSERVE_MAX_CONNECTIONS"][0] == "`--max-connections`"
    assert rows["RTSERVE_HEADER_TIMEOUT_SECONDS"][0] == "`--header-timeout`"
    assert rows["RTSERVE_DATA_DIR"][0].startswith("`--data-dir`")
    assert rows["RTSERVE_DATABASE_URL"][0].startswith("`--database-url`")


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch):
    assert Settings().request_timeout_seconds == 60.0
    monkeypatch.setenv("RTSERVE_REQUEST_TIMEOUT_SECONDS", "8")
    monkeypatch.setenv("RTSERVE_MAX_QUEUED_REQUESTS", "2")
    monkeypatch.setenv("RTSERVE_DATA_DIR", "/tmp/somewhere")
    monkeypatch.setenv("RTSERVE_ADMIN_TOKEN", "")  # empty: unset
    monkeypatch.setenv("RTSERVE_HOST", "http://127.0.0.1:9999")  # the clients' variable, not the bind address
    settings = Settings()
    assert settings.request_timeout_seconds == 8.0
    assert settings.max_queued_requests == 2
    assert settings.data_dir == Path("/tmp/somewhere")
    assert settings.admin_token is None
    assert settings.host == "127.0.0.1"
    assert "max_connections" not in settings.model_fields_set
    assert all(field not in Settings.env_names() for field in NOT_FROM_ENV)


def test_settings_are_immutable():
    settings = Settings()
    with pytest.raises(ValueError):
        settings.request_timeout_seconds = 1.0  # type: ignore[misc]


def test_a_bad_value_names_the_variable_and_the_value(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RTSERVE_REQUEST_TIMEOUT_SECONDS", "abc")
    monkeypatch.setenv("RTSERVE_MAX_CONNECTIONS", "0")
    with pytest.raises(SettingsError) as raised:
        Settings()
    message = str(raised.value)
    assert "RTSERVE_REQUEST_TIMEOUT_SECONDS='abc'" in message
    assert "RTSERVE_MAX_CONNECTIONS='0'" in message
    assert "valid number" in message and "greater than or equal to 1" in message
    assert "pydantic" not in message and "errors.pydantic.dev" not in message


def test_the_engine_is_local_or_ray_from_option_or_variable(monkeypatch: pytest.MonkeyPatch):
    assert (Settings().engine, Settings().ray_address, Settings().ray_namespace) == ("local", None, "rtserve")
    monkeypatch.setenv("RTSERVE_ENGINE", "ray")
    monkeypatch.setenv("RTSERVE_RAY_ADDRESS", "10.0.0.5:6379")
    assert (Settings().engine, Settings().ray_address) == ("ray", "10.0.0.5:6379")
    assert Settings(engine="local", ray_address="head:6379").engine == "local"  # the option wins
    monkeypatch.setenv("RTSERVE_ENGINE", "kubernetes")
    with pytest.raises(SettingsError, match="RTSERVE_ENGINE='kubernetes'"):
        Settings()
    with pytest.raises(SettingsError, match="--engine='k8s'"):
        Settings(engine="k8s")


def test_the_ray_warm_pool_keeps_one_actor_per_node_unless_set_and_0_turns_it_off(monkeypatch: pytest.MonkeyPatch):
    assert Settings().ray_warm_actors_per_node == 1
    monkeypatch.setenv("RTSERVE_RAY_WARM_ACTORS_PER_NODE", "0")
    assert Settings().ray_warm_actors_per_node == 0
    monkeypatch.setenv("RTSERVE_RAY_WARM_ACTORS_PER_NODE", "-1")
    with pytest.raises(SettingsError, match="RTSERVE_RAY_WARM_ACTORS_PER_NODE='-1'"):
        Settings()


@pytest.mark.parametrize("ports", ["20000", "20000-19999", "0-10", "20000-70000", "a-b"])
def test_ray_replica_ports_are_any_free_port_unless_a_range_is_set(monkeypatch: pytest.MonkeyPatch, ports: str):
    assert Settings().ray_replica_port_range is None
    monkeypatch.setenv("RTSERVE_RAY_REPLICA_PORTS", "20000-20999")
    assert Settings().ray_replica_port_range == (20000, 20999)
    monkeypatch.setenv("RTSERVE_RAY_REPLICA_PORTS", ports)
    with pytest.raises(SettingsError, match=f"RTSERVE_RAY_REPLICA_PORTS='{ports}'"):
        Settings()


def test_the_admin_token_is_never_shown():
    with pytest.raises(SettingsError) as raised:
        Settings(admin_token=12345)
    assert "12345" not in str(raised.value)
    assert "s3cret" not in repr(Settings(admin_token="s3cret"))


def test_the_smtp_password_is_never_shown():
    with pytest.raises(SettingsError) as raised:
        Settings(smtp_password=67890)
    assert "67890" not in str(raised.value) and "smtp_password=(hidden)" in str(raised.value)
    assert "s3cret" not in repr(Settings(smtp_host="mail.example.com", smtp_password="s3cret"))


@pytest.mark.parametrize("command", [["server"], ["tokens", "list"]])
def test_a_bad_value_stops_the_command_with_a_message_not_a_traceback(
    command: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("RTSERVE_REQUEST_TIMEOUT_SECONDS", "abc")
    monkeypatch.setenv("RTSERVE_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "RTSERVE_REQUEST_TIMEOUT_SECONDS='abc'" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "data").exists()  # nothing was created


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`rtserve server` up to uvicorn.run: what it would serve, and with which settings."""
    seen: dict[str, Any] = {}
    fake_app = types.ModuleType("rtserve.server.app")

    def create_app(settings: Settings) -> object:
        seen["settings"] = settings
        seen["admin_token_in_environment"] = os.environ.get("RTSERVE_ADMIN_TOKEN")
        seen["smtp_password_in_environment"] = os.environ.get("RTSERVE_SMTP_PASSWORD")
        return object()

    fake_app.create_app = create_app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rtserve.server.app", fake_app)
    monkeypatch.setattr("uvicorn.run", lambda asgi, **kwargs: seen.update(run=kwargs))
    monkeypatch.setattr("rtserve.server.cli._check_port", lambda host, port: None)  # nothing listens here
    return seen


def test_an_option_beats_its_variable(started: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("RTSERVE_MAX_CONNECTIONS", "7")
    monkeypatch.setenv("RTSERVE_HEADER_TIMEOUT_SECONDS", "9")
    monkeypatch.setenv("RTSERVE_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("RTSERVE_REQUEST_TIMEOUT_SECONDS", "8")
    monkeypatch.setenv("RTSERVE_ADMIN_TOKEN", "rtsv-from-the-environment")
    monkeypatch.setenv("RTSERVE_SMTP_PASSWORD", "smtp-from-the-environment")
    options = ["--max-connections", "5", "--header-timeout", "2", "--data-dir", str(tmp_path / "from-option")]
    result = CliRunner().invoke(app, ["server", "--port", "18080", *options])
    assert result.exit_code == 0, result.output
    settings: Settings = started["settings"]
    assert settings.max_connections == 5
    assert settings.header_timeout_seconds == 2.0
    assert settings.data_dir == tmp_path / "from-option"
    assert settings.request_timeout_seconds == 8.0  # no option: the variable
    assert settings.admin_token == "rtsv-from-the-environment"
    assert started["admin_token_in_environment"] is None  # popped before anything starts
    assert settings.smtp_password == "smtp-from-the-environment"
    assert started["smtp_password_in_environment"] is None  # no replica inherits it
    assert started["run"]["port"] == 18080


def test_a_variable_beats_the_default(started: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("RTSERVE_MAX_CONNECTIONS", "7")
    monkeypatch.setenv("RTSERVE_DATA_DIR", str(tmp_path / "from-env"))
    result = CliRunner().invoke(app, ["server"])
    assert result.exit_code == 0, result.output
    settings: Settings = started["settings"]
    assert settings.max_connections == 7
    assert "max_connections" in settings.model_fields_set  # chosen, so a lowered cap is warned about
    assert settings.header_timeout_seconds == 5.0
    assert settings.data_dir == tmp_path / "from-env"


def test_tokens_commands_read_the_same_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RTSERVE_DATA_DIR", str(tmp_path / "from-env"))
    creating = ["tokens", "create", "--name", "ci", "--create"]
    assert CliRunner().invoke(app, creating).exit_code == 0
    assert (tmp_path / "from-env" / "rtserve.db").is_file()
    result = CliRunner().invoke(app, [*creating, "--data-dir", str(tmp_path / "from-option")])
    assert result.exit_code == 0
    assert (tmp_path / "from-option" / "rtserve.db").is_file()

    database = tmp_path / "elsewhere.db"
    monkeypatch.setenv("RTSERVE_DATABASE_URL", f"sqlite:///{database}")
    assert CliRunner().invoke(app, ["tokens", "list"]).exit_code == 0
    assert database.is_file()


def test_tokens_commands_refuse_a_data_dir_without_state_rather_than_make_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """Run from the wrong directory, `rtserve tokens` says where the server's state is expected; it creates
    nothing, so no token lands in a store the server never reads."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RTSERVE_DATA_DIR", raising=False)
    monkeypatch.delenv("RTSERVE_DATABASE_URL", raising=False)
    for command in (["tokens", "list"], ["tokens", "create", "--name", "ci"], ["tokens", "revoke", "abc"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1, command
        message = " ".join(result.stderr.split())
        assert f"no rtserve state in {tmp_path / '.rtserve'}" in message and "--data-dir" in message
        assert "--create" in message
    assert not (tmp_path / ".rtserve").exists()
