"""The row-wise path: DataFrame requests scored alone or predicted together in one call (adaptive batching).

A model that works row by row on a DataFrame (a pyfunc with a column-based input schema, or with
no schema and DataFrame input) gives every row the same prediction whether the row comes alone or
among others. For such models, concurrent requests are parsed one by one with MLflow's own
functions, concatenated into one DataFrame, predicted in one call, and the prediction is split back
so that each caller gets exactly its own rows, serialized by MLflow's own `predictions_to_json`.

Conservative by design: anything unusual is scored alone by `scoring.score` (MLflow's complete
`invocations`), which also produces every error answer, so errors read exactly as unbatched ones.
That covers tensor-spec models, type-hint signatures, `instances`/`inputs`, the unified LLM format,
unusual content types, requests whose columns, dtypes or `params` differ from their neighbours',
a batched predict that raises (each request is then predicted alone, so one bad request fails
alone), and an output that does not have exactly one entry per input row.

The paths live in their own modules, each returning plain values:
- `parsing`: requests as DataFrames (MLflow's parser, the cast shortcut, the all-float shape).
- `exact`: float requests to an all-double signature, predicted without MLflow's second look.
- `joint`: one predict call for several requests, cut back into one answer each.
- `single`: one request; `batched`: concurrent requests, grouped.
`RowwiseScorer` ties them to one model and keeps the only state: whether batching still applies.
"""

from __future__ import annotations

import logging
from typing import Any

from rtserve.server.worker import batched, jsonbody, single
from rtserve.server.worker.joint import RowwiseModel
from rtserve.server.worker.limits import DEFAULT_MAX_INPUT_COLUMNS
from rtserve.server.worker.types import InvocationResult

logger = logging.getLogger(__name__)

# After this many batches in a row whose output could not be split per row (or that failed while
# every request succeeded alone), the model is taken as not row-wise and batching stops.
MAX_BATCH_MISFITS = 3


def is_row_wise(model: Any) -> bool:
    """True if the model takes DataFrames: a column-based input schema, or none at all.

    Tensor-spec models (arrays, not rows) and type-hint signatures (MLflow passes the raw input) are
    left alone.
    """
    metadata = model.metadata
    if getattr(metadata, "_is_signature_from_type_hint", lambda: False)():
        return False
    schema = metadata.get_input_schema()
    return schema is None or not schema.is_tensor_spec()


class RowwiseScorer:
    """Scores requests to one row-wise model; `score_many` predicts compatible requests together.

    `max_input_columns` is the server's limit on input columns, for the requests that go through
    MLflow's complete path (see `backend.worker.limits`).
    """

    def __init__(
        self, model: Any, input_schema: Any = None, *, max_input_columns: int = DEFAULT_MAX_INPUT_COLUMNS
    ) -> None:
        self._target = RowwiseModel.of(model, input_schema, max_input_columns)
        self.model = model
        self.input_schema = self._target.input_schema
        self._exact = self._target.exact
        self.batching = True  # switched off for good if the model turns out not to be row-wise
        self._misfits = 0

    def score_one(self, body: bytes, content_type: str | None, decoded: Any = jsonbody.UNDECODED) -> InvocationResult:
        """Score one request: the row-wise path when it applies, MLflow's complete path otherwise.

        `decoded` is the JSON body if the caller decoded it already."""
        return single.score_one(self._target, body, content_type, decoded)

    def score_many(
        self, requests: list[tuple[bytes, str | None]], decoded: list[Any] | None = None
    ) -> list[InvocationResult]:
        """Score concurrent requests, predicting those with the same columns, dtypes and params together.

        `decoded` holds each request's JSON body where the caller decoded it already (else `jsonbody.UNDECODED`)."""
        if decoded is None:
            decoded = [jsonbody.UNDECODED] * len(requests)
        if not self.batching or len(requests) == 1:
            return [
                single.score_one(self._target, body, content_type, json)
                for (body, content_type), json in zip(requests, decoded, strict=True)
            ]
        batch = batched.score_many(self._target, requests, decoded)
        for verdict in batch.verdicts:
            self._judge(verdict)
        return batch.answers

    def _judge(self, misfit: str | None) -> None:
        """Count batches in a row that were not row-wise (`misfit` says why; None: this one was)."""
        if misfit is None:
            self._misfits = 0
            return
        self._misfits += 1
        if self._misfits >= MAX_BATCH_MISFITS and self.batching:
            self.batching = False
            logger.warning("Batching turned off for this replica: the model is not row-wise (%s)", misfit)
