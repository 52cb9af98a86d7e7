"""The local engine's settings: passed in by the app from its one `Settings`; the engine reads no environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtserve.server.engines.local import LocalEngine
from rtserve.server.settings import Settings

pytestmark = pytest.mark.unit

VARIABLES = ("RTSERVE_REPLICA_DRAIN_TIMEOUT_SECONDS", "RTSERVE_REPLICA_LOG_MAX_BYTES", "RTSERVE_MAX_INPUT_COLUMNS")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_without_settings_the_defaults_apply_and_match_the_settings_defaults(tmp_path: Path):
    engine = LocalEngine(str(tmp_path))
    defaults = Settings(data_dir=tmp_path / "data")

    assert (engine.stop_timeout, engine.log_max_bytes, engine.max_input_columns) == (10.0, 5 * 1024 * 1024, 1024)
    assert (engine.stop_timeout, engine.log_max_bytes, engine.max_input_columns) == (
        defaults.replica_drain_timeout_seconds,
        defaults.replica_log_max_bytes,
        defaults.max_input_columns,
    )


def test_the_environment_reaches_the_engine_only_through_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RTSERVE_REPLICA_DRAIN_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("RTSERVE_REPLICA_LOG_MAX_BYTES", "65536")
    monkeypatch.setenv("RTSERVE_MAX_INPUT_COLUMNS", "64")

    assert LocalEngine(str(tmp_path / "a")).max_input_columns == 1024  # not read by the engine
    settings = Settings(data_dir=tmp_path / "data")
    engine = LocalEngine(
        str(tmp_path / "b"),
        stop_timeout=settings.replica_drain_timeout_seconds,
        log_max_bytes=settings.replica_log_max_bytes,
        max_input_columns=settings.max_input_columns,
    )

    assert (engine.stop_timeout, engine.log_max_bytes, engine.max_input_columns) == (2.5, 65536, 64)
