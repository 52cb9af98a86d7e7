"""Saved MLflow models shared by the worker tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.worker import models


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-models")


@pytest.fixture(scope="session")
def iris_path(model_dir: Path) -> Path:
    return models.save_iris_model(model_dir / "iris")


@pytest.fixture(scope="session")
def params_path(model_dir: Path) -> Path:
    return models.save_params_model(model_dir / "params")


@pytest.fixture(scope="session")
def tensor_path(model_dir: Path) -> Path:
    return models.save_tensor_model(model_dir / "tensor")


@pytest.fixture(scope="session")
def raising_path(model_dir: Path) -> Path:
    return models.save_raising_model(model_dir / "raising")
