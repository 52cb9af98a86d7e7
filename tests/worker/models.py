"""Real MLflow models for the worker and engine tests, saved into a directory (no tracking server).

The PythonModel classes below are pickled *by value* (cloudpickle), so a saved model loads in any
process without importing this test module; that is how a user's model reaches a replica too.
Their `predict` inputs are annotated with pandas/numpy types, which MLflow accepts without deriving
a signature from them (unannotated, MLflow warns; annotated with other types, it changes parsing).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.models.signature import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import Schema, TensorSpec

# Pip requirements given explicitly: inferring them starts a subprocess that loads the model, slow.
_REQUIREMENTS = ["mlflow", "pandas", "numpy"]


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's advice about logging (input examples) and its own pandas deprecations."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        warnings.filterwarnings("ignore", message=".*Operation with range is deprecated.*")
        yield


def iris_frame() -> tuple[pd.DataFrame, np.ndarray]:
    """The iris features (float64 columns with the sklearn names) and the integer targets."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    return iris.data, iris.target.to_numpy()


def save_iris_model(path: Path) -> Path:
    """An iris LogisticRegression saved with a signature and an input example."""
    from sklearn.linear_model import LogisticRegression

    features, target = iris_frame()
    model = LogisticRegression(max_iter=500).fit(features, target)
    signature = infer_signature(features, model.predict(features))
    with _quiet_mlflow():
        mlflow.sklearn.save_model(
            model,
            str(path),
            signature=signature,
            input_example=features.head(3),
            pip_requirements=[*_REQUIREMENTS, "scikit-learn"],
        )
    return path


class ScaledSum(PythonModel):
    """Sums each row's columns and multiplies by the `multiplier` param."""

    def predict(self, context, model_input: pd.DataFrame, params=None):
        multiplier = (params or {}).get("multiplier", 1.0)
        return (model_input.sum(axis=1) * multiplier).tolist()


class DoubledTensor(PythonModel):
    """Doubles a float32 tensor of shape (-1, 3)."""

    def predict(self, context, model_input: np.ndarray, params=None):
        return np.asarray(model_input) * 2


class RaisingPredict(PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None):
        raise ValueError("boom")


class FailingLoad(PythonModel):
    def load_context(self, context):
        raise RuntimeError("cannot load")

    def predict(self, context, model_input: pd.DataFrame, params=None):
        return model_input


class SlowIdentity(PythonModel):
    """Sleeps `seconds` (a param) then returns its input: makes requests overlap in drain tests."""

    def predict(self, context, model_input: pd.DataFrame, params=None):
        import time

        time.sleep(float((params or {}).get("seconds", 0.0)))
        return model_input["x"].tolist()


def _save_python_model(path: Path, python_model: PythonModel, signature: ModelSignature | None) -> Path:
    this_module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(this_module)
    try:
        with _quiet_mlflow():
            mlflow.pyfunc.save_model(
                str(path), python_model=python_model, signature=signature, pip_requirements=_REQUIREMENTS
            )
    finally:
        cloudpickle.unregister_pickle_by_value(this_module)
    return path


def save_params_model(path: Path) -> Path:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    signature = infer_signature(frame, [4.0, 6.0], params={"multiplier": 1.0})
    return _save_python_model(path, ScaledSum(), signature)


def save_tensor_model(path: Path) -> Path:
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3))]),
    )
    return _save_python_model(path, DoubledTensor(), signature)


def save_raising_model(path: Path) -> Path:
    signature = infer_signature(pd.DataFrame({"x": [1.0]}), [1.0])
    return _save_python_model(path, RaisingPredict(), signature)


def save_failing_load_model(path: Path) -> Path:
    return _save_python_model(path, FailingLoad(), None)


def save_slow_model(path: Path) -> Path:
    signature = infer_signature(pd.DataFrame({"x": [1.0]}), [1.0], params={"seconds": 0.0})
    return _save_python_model(path, SlowIdentity(), signature)


class ExitingLoad(PythonModel):
    """Exits the process with code 3 while loading, like a native library aborting."""

    def load_context(self, context):
        import os

        os._exit(3)

    def predict(self, context, model_input: pd.DataFrame, params=None):
        return model_input


def save_exiting_load_model(path: Path) -> Path:
    return _save_python_model(path, ExitingLoad(), None)


def save_missing_file_model(path: Path, iris_path: Path) -> Path:
    """A copy of the iris model whose MLmodel references a serialized model file that is gone."""
    import shutil

    shutil.copytree(iris_path, path)
    (path / "model.skops").unlink()
    return path


class EnvEcho(PythonModel):
    """Answers with the value of the environment variable named by the `name` param."""

    def predict(self, context, model_input: pd.DataFrame, params=None):
        import os

        return [os.environ.get((params or {}).get("name", ""), "<unset>")] * len(model_input)


def save_env_echo_model(path: Path) -> Path:
    signature = infer_signature(pd.DataFrame({"x": [1.0]}), ["value"], params={"name": "VARIABLE"})
    return _save_python_model(path, EnvEcho(), signature)


class PickyDouble(PythonModel):
    """Doubles `x` row by row, but refuses a whole input that holds a negative `x`."""

    def predict(self, context, model_input: pd.DataFrame, params=None):
        if (model_input["x"] < 0).any():
            raise ValueError("negative x is not allowed")
        return (model_input["x"] * 2).tolist()


def save_picky_model(path: Path) -> Path:
    signature = infer_signature(pd.DataFrame({"x": [1.0]}), [2.0])
    return _save_python_model(path, PickyDouble(), signature)


class TotalOfAll(PythonModel):
    """Not row-wise: one number for the whole input, however many rows it has."""

    def predict(self, context, model_input: pd.DataFrame, params=None):
        return [float(model_input["x"].sum())]


def save_total_model(path: Path) -> Path:
    signature = infer_signature(pd.DataFrame({"x": [1.0]}), [1.0])
    return _save_python_model(path, TotalOfAll(), signature)


class RowFrame(PythonModel):
    """Row-wise, answering a DataFrame that keeps the input's index and adds a column per row."""

    def predict(self, context, model_input: pd.DataFrame, params=None):
        return pd.DataFrame({"x2": model_input["x"] * 2, "label": [f"row-{v:g}" for v in model_input["x"]]})


def save_row_frame_model(path: Path) -> Path:
    return _save_python_model(path, RowFrame(), None)


class DyingPredict(PythonModel):
    """Prints to stdout and stderr, then kills its own process with SIGKILL (a native crash, say)."""

    def predict(self, context, model_input: pd.DataFrame, params=None):
        import os
        import signal
        import sys

        print("last words on stdout", flush=True)
        sys.stderr.write("last words on stderr\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def save_dying_model(path: Path) -> Path:
    signature = infer_signature(pd.DataFrame({"x": [1.0]}), [1.0])
    return _save_python_model(path, DyingPredict(), signature)
