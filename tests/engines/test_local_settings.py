"""The local engine's settings: passed in explicitly, or read from the environment once, when it is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtserve.server.engines.local import LocalEngine, environment

pytestmark = pytest.mark.unit

VARIABLES = (environment.DRAIN_TIMEOUT_ENV, environment.MAX_BYTES_ENV, environment.MAX_INPUT_COLUMNS_ENV)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_without_settings_or_environment_the_defaults_apply(tmp_path: Path):
    engine = LocalEngine(str(tmp_path))

    assert (engine.stop_timeout, engine.log_max_bytes, engine.max_input_columns) == (10.0, 5 * 1024 * 1024, 1024)


def test_settings_left_out_are_read_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(environment.DRAIN_TIMEOUT_ENV, "2.5")
    monkeypatch.setenv(environment.MAX_BYTES_ENV, "65536")
    monkeypatch.setenv(environment.MAX_INPUT_COLUMNS_ENV, "64")

    engine = LocalEngine(str(tmp_path))

    assert (engine.stop_timeout, engine.log_max_bytes, engine.max_input_columns) == (2.5, 65536, 64)


def test_settings_passed_in_win_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(environment.DRAIN_TIMEOUT_ENV, "not a number")  # not even read
    monkeypatch.setenv(environment.MAX_BYTES_ENV, "5MB")
    monkeypatch.setenv(environment.MAX_INPUT_COLUMNS_ENV, "64")

    engine = LocalEngine(str(tmp_path), stop_timeout=1.0, log_max_bytes=4096, max_input_columns=8)

    assert (engine.stop_timeout, engine.log_max_bytes, engine.max_input_columns) == (1.0, 4096, 8)


def test_an_invalid_drain_timeout_is_refused():
    with pytest.raises(ValueError, match=environment.DRAIN_TIMEOUT_ENV):
        environment.drain_timeout_from_env({environment.DRAIN_TIMEOUT_ENV: "soon"})
    assert environment.drain_timeout_from_env({environment.DRAIN_TIMEOUT_ENV: "-3"}) == 0.0
