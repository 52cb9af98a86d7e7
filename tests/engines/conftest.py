"""Saved MLflow models and an engine runner for the engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.worker import models


@pytest.fixture(scope="session")
def engine_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engine-models")


@pytest.fixture(scope="session")
def iris_path(engine_models: Path) -> Path:
    return models.save_iris_model(engine_models / "iris")


@pytest.fixture(scope="session")
def slow_path(engine_models: Path) -> Path:
    return models.save_slow_model(engine_models / "slow")


@pytest.fixture(scope="session")
def failing_load_path(engine_models: Path) -> Path:
    return models.save_failing_load_model(engine_models / "failing-load")


@pytest.fixture(scope="session")
def exiting_load_path(engine_models: Path) -> Path:
    return models.save_exiting_load_model(engine_models / "exiting-load")


@pytest.fixture(scope="session")
def missing_file_path(engine_models: Path, iris_path: Path) -> Path:
    return models.save_missing_file_model(engine_models / "missing-file", iris_path)


@pytest.fixture(scope="session")
def env_echo_path(engine_models: Path) -> Path:
    return models.save_env_echo_model(engine_models / "env-echo")


@pytest.fixture(scope="session")
def dying_path(engine_models: Path) -> Path:
    return models.save_dying_model(engine_models / "dying")
