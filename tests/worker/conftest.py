"""Saved MLflow models shared by the worker tests (built once per session)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
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


@pytest.fixture(scope="session")
def picky_path(model_dir: Path) -> Path:
    return models.save_picky_model(model_dir / "picky")


@pytest.fixture(scope="session")
def total_path(model_dir: Path) -> Path:
    return models.save_total_model(model_dir / "total")


@pytest.fixture(scope="session")
def row_frame_path(model_dir: Path) -> Path:
    return models.save_row_frame_model(model_dir / "row-frame")


# Loaded once per module: scoring and batching tests compare against the same pyfunc models.
@pytest.fixture(scope="module")
def iris(iris_path: Path) -> Any:
    return mlflow.pyfunc.load_model(str(iris_path))


@pytest.fixture(scope="module")
def params_model(params_path: Path) -> Any:
    return mlflow.pyfunc.load_model(str(params_path))


@pytest.fixture(scope="module")
def tensor_model(tensor_path: Path) -> Any:
    return mlflow.pyfunc.load_model(str(tensor_path))
