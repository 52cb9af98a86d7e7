"""Predict the rows of several requests in one call, and cut the output back into one answer each.

Shared by the row-wise paths: `backend.worker.single` (one request) and `backend.worker.batched`
(concurrent requests). `RowwiseModel` holds what scoring one row-wise model needs, built once per
replica; `predict_together` returns the answers, or an `Unanswered` saying why there are none, so
that the caller decides what follows (score alone, count a misfit): nothing is signalled through
state.
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from io import StringIO
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import scoring_server
from mlflow.pyfunc.model import _log_warning_if_params_not_in_predict_signature

from rtserve.server.worker.errors import JSON
from rtserve.server.worker.exact import ExactFramePredictor
from rtserve.server.worker.limits import DEFAULT_MAX_INPUT_COLUMNS
from rtserve.server.worker.parsing import FloatRows, FrameParser, Parsed, joined_rows
from rtserve.server.worker.scoring import score
from rtserve.server.worker.types import InvocationResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowwiseModel:
    """One row-wise model and what scoring it takes, computed once."""

    model: Any
    input_schema: Any
    parser: FrameParser
    # Float requests to an all-double signature skip MLflow's second look (see backend.worker.exact).
    exact: ExactFramePredictor | None
    accepts_params: bool
    max_input_columns: int  # the server's limit on input columns, for MLflow's complete path

    @classmethod
    def of(
        cls, model: Any, input_schema: Any = None, max_input_columns: int = DEFAULT_MAX_INPUT_COLUMNS
    ) -> RowwiseModel:
        schema = input_schema if input_schema is not None else model.metadata.get_input_schema()
        return cls(
            model=model,
            input_schema=schema,
            parser=FrameParser(schema),
            exact=ExactFramePredictor.for_model(model),
            accepts_params="params" in inspect.signature(model.predict).parameters,
            max_input_columns=max_input_columns,
        )

    def score_alone(self, body: bytes, content_type: str | None) -> InvocationResult:
        """MLflow's complete path (`backend.worker.scoring`), which also words every error answer."""
        return score(body, content_type, self.model, self.input_schema, max_input_columns=self.max_input_columns)


class Failure(enum.Enum):
    RAISED = "the model raised"  # on bad input, or because it is not row-wise: scoring alone tells
    NOT_ONE_PER_ROW = "the output does not have one entry per input row"  # not row-wise
    NOT_SERIALIZABLE = "a piece of the output could not be serialized"


@dataclass(frozen=True)
class Unanswered:
    """Why a prediction gave no answers; each request then goes another way."""

    failure: Failure
    detail: str = ""


def predict_together(
    target: RowwiseModel,
    data: pd.DataFrame,
    sizes: list[int],
    params: dict[str, Any] | None,
    predict: Callable[[pd.DataFrame], Any] | None = None,
) -> list[InvocationResult] | Unanswered:
    """Predict `data` in one call and cut the output into `sizes` rows per request, one answer each.

    `predict` replaces the model's own predict for an exact frame without params (see
    `backend.worker.exact`). With one size the output is not cut, so it cannot be NOT_ONE_PER_ROW.
    """
    try:
        if predict is not None:
            raw = predict(data)
        elif target.accepts_params:
            raw = target.model.predict(data, params=params)
        else:
            _log_warning_if_params_not_in_predict_signature(logger, params)
            raw = target.model.predict(data)
    except Exception:
        # MLflow's complete path predicts it again and reports the failure the way MLflow does.
        return Unanswered(Failure.RAISED)
    pieces = [raw] if len(sizes) == 1 else split(raw, sizes)
    if pieces is None:
        return Unanswered(
            Failure.NOT_ONE_PER_ROW, f"its output ({type(raw).__name__}) does not have one entry per input row"
        )
    answers = []
    for piece in pieces:
        buffer = StringIO()
        try:
            scoring_server.predictions_to_json(piece, buffer)
        except Exception:
            return Unanswered(Failure.NOT_SERIALIZABLE)
        answers.append(InvocationResult(status=200, body=buffer.getvalue().encode(), content_type=JSON))
    return answers


def predict_parsed(target: RowwiseModel, group: list[Parsed]) -> list[InvocationResult] | Unanswered:
    """Predict parsed requests (same columns, dtypes and params) in one call, one answer each."""
    frames = [item.frame for item in group]
    data = frames[0] if len(frames) == 1 else pd.concat(frames)
    return predict_together(target, data, [len(frame) for frame in frames], group[0].params)


def exact_frame(exact: ExactFramePredictor, members: list[FloatRows]) -> pd.DataFrame | None:
    """The members' rows as the frame MLflow's enforcement would hand the model, if they allow it."""
    if members[0].params is not None:
        return None
    data, index = joined_rows(members)
    try:
        return exact.frame(members[0].columns, data, index)
    except Exception:
        return None


def split(raw: Any, sizes: list[int]) -> list[Any] | None:
    """`raw` cut into consecutive pieces of `sizes` rows, or None unless it has exactly one entry per row."""
    total = sum(sizes)
    cut: Callable[[slice], Any]
    if isinstance(raw, np.ndarray):
        if raw.ndim == 0 or raw.shape[0] != total:
            return None
        cut = raw.__getitem__
    elif isinstance(raw, pd.DataFrame | pd.Series):
        if len(raw) != total:
            return None
        cut = raw.iloc.__getitem__
    elif isinstance(raw, list):
        if len(raw) != total:
            return None
        cut = raw.__getitem__
    else:
        return None
    pieces, start = [], 0
    for size in sizes:
        pieces.append(cut(slice(start, start + size)))
        start += size
    return pieces
