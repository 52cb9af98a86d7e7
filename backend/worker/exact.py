"""Predict DataFrames that already match the model's signature, without MLflow checking them again.

For the common numeric model (a signature of named `double` columns and no params) and a request
whose every value is a JSON float, MLflow's path costs more than many models' own predict: its
parser builds a DataFrame column by column, then `_enforce_schema` checks every column, finds it
already float64, and builds the same DataFrame once more. `ExactFramePredictor` builds that final
frame directly (one float64 block, columns in signature order, the request's own index) and calls
the flavor's predict the way `PyFuncModel.predict` does, minus the enforcement, which for such a
frame returns an equal frame. The worker tests compare these frames and every answer with MLflow's
complete path.

Only for models where that holds: a loaded `PyFuncModel` whose signature is not derived from type
hints and has only named, required `double` inputs, and no params schema. Anything else about a
request (another column set, params, a non-float value) is for the caller's usual path.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models.dependencies_schemas import _get_dependencies_schema_from_model
from mlflow.pyfunc import PyFuncModel
from mlflow.pyfunc.context import Context, set_prediction_context
from mlflow.tracing.utils import _try_get_prediction_context
from mlflow.types import DataType

_FLOAT64 = np.dtype(np.float64)


class ExactFramePredictor:
    """Builds signature-exact float64 frames for one model and predicts them as MLflow would."""

    def __init__(self, model: PyFuncModel, columns: Sequence[str]) -> None:
        self._model = model
        self._columns = tuple(columns)
        self._column_set = frozenset(columns)
        self._column_index = pd.Index(list(columns))
        self._predict_fn = model._predict_fn
        params = inspect.signature(self._predict_fn).parameters.get("params")
        # PyFuncModel passes params (None here) only to a predict that names them.
        self._pass_params = params is not None and params.kind != inspect.Parameter.VAR_KEYWORD
        self._permutations: dict[tuple[str, ...], list[int] | None] = {}

    @classmethod
    def for_model(cls, model: Any) -> ExactFramePredictor | None:
        """A predictor for `model`, or None if its signature is not only named, required doubles."""
        if not isinstance(model, PyFuncModel):
            return None
        metadata = model.metadata
        if metadata._is_signature_from_type_hint() or metadata._is_type_hint_from_example():
            return None
        if metadata.get_params_schema() is not None:
            return None
        schema = metadata.get_input_schema()
        if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
            return None
        specs = schema.inputs
        if not specs or any(spec.type != DataType.double or not spec.required for spec in specs):
            return None
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            return None
        return cls(model, names)

    def frame(self, columns: Sequence[str], rows: list[list[float]], index: list[Any] | None) -> pd.DataFrame | None:
        """The frame MLflow would predict on for float `rows` under `columns`, or None if not exact.

        `columns` must be the signature's inputs in any order (no extra, none missing); `index` is
        the request's own labels (all ints or all strings), or None for 0..n-1.
        """
        key = tuple(columns)
        order = None
        if key != self._columns:
            order = self._permutation(key)
            if order is None:
                return None
        values = np.array(rows, dtype=_FLOAT64)
        if values.ndim != 2 or values.shape[1] != len(self._columns):
            return None
        if order is not None:
            values = values[:, order]
        return pd.DataFrame(values, columns=self._column_index, index=None if index is None else pd.Index(index))

    def _permutation(self, columns: tuple[str, ...]) -> list[int] | None:
        """Positions that put `columns` in signature order, or None if they are not the signature's."""
        if columns not in self._permutations:
            exact = len(columns) == len(self._columns) and frozenset(columns) == self._column_set
            order = [columns.index(name) for name in self._columns] if exact else None
            if len(self._permutations) >= 64:  # bounded: column orders come from clients
                self._permutations.clear()
            self._permutations[columns] = order
        return self._permutations[columns]

    def predict(self, frame: pd.DataFrame) -> Any:
        """`PyFuncModel.predict(frame)` without the schema enforcement (a no-op for an exact frame)."""
        context = _try_get_prediction_context() or Context()
        with set_prediction_context(context):
            if schema := _get_dependencies_schema_from_model(self._model.metadata):
                context.update(**schema)
            if self._model.model_id:
                context.update(model_id=self._model.model_id)
            if self._pass_params:
                return self._predict_fn(frame, params=None)
            return self._predict_fn(frame)
