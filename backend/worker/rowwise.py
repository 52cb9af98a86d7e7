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

Two shortcuts, neither of which changes a value:
- MLflow casts every column to its schema type, even columns already of exactly that numeric dtype
  (an `astype` to the same dtype copies the column); such columns are left out of the schema
  handed to MLflow's cast.
- Building a DataFrame costs far more than the rows in it. Requests in the common all-float shape
  (`dataframe_split` or `dataframe_records` whose every value is a JSON float, with the same
  columns) are checked one by one and their rows built into one DataFrame: exactly the frame that
  parsing each with MLflow's parser and concatenating gives (float64 columns, each request's index).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from io import StringIO
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import scoring_server
from mlflow.pyfunc.model import _log_warning_if_params_not_in_predict_signature
from mlflow.pyfunc.utils.serving_data_parser import is_unified_llm_input
from mlflow.types import DataType, Schema
from mlflow.utils.proto_json_utils import cast_df_types_according_to_schema, dataframe_from_parsed_json
from rtserve.server.engines.base import InvocationResult
from rtserve.server.worker.errors import JSON
from rtserve.server.worker.exact import ExactFramePredictor
from rtserve.server.worker.scoring import score

logger = logging.getLogger(__name__)

_DATAFRAME_FORMATS = {scoring_server.DF_SPLIT: "split", scoring_server.DF_RECORDS: "records"}
_JSON = scoring_server.CONTENT_TYPE_JSON
_JSON_CONTENT_TYPES = frozenset({_JSON, f"{_JSON}; charset=utf-8", f"{_JSON}; charset=UTF-8", f"{_JSON};charset=utf-8"})
# Schema types whose cast is a plain `astype` to a numpy dtype: a no-op when the dtype already matches.
_PLAIN_TYPES = frozenset({DataType.double, DataType.float, DataType.long, DataType.integer, DataType.boolean})
# After this many batches in a row whose output could not be split per row (or that failed while
# every request succeeded alone), the model is taken as not row-wise and batching stops.
MAX_BATCH_MISFITS = 3


@dataclass(frozen=True)
class Parsed:
    """One request parsed into the DataFrame MLflow would predict on."""

    frame: pd.DataFrame
    params: dict[str, Any] | None
    params_key: str | None

    @cached_property
    def key(self) -> tuple[Any, ...]:
        """Requests with equal keys (columns, dtypes, params) can share one predict call."""
        return tuple(self.frame.columns.tolist()), tuple(self.frame.dtypes.tolist()), self.params_key


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
    """Scores requests to one row-wise model; `score_many` predicts compatible requests together."""

    def __init__(self, model: Any, input_schema: Any = None) -> None:
        self.model = model
        self.input_schema = input_schema if input_schema is not None else model.metadata.get_input_schema()
        self.batching = True  # switched off for good if the model turns out not to be row-wise
        self._misfits = 0
        self._raised = False  # whether the last `_predict` failed because the model raised
        self._accepts_params = "params" in inspect.signature(model.predict).parameters
        self._plain_columns: dict[str, np.dtype] = {}
        self._schema_specs: list[Any] = []
        if self.input_schema is not None and self.input_schema.has_input_names():
            self._schema_specs = list(self.input_schema.inputs)
            for spec in self._schema_specs:
                if isinstance(spec.type, DataType) and spec.type in _PLAIN_TYPES:
                    self._plain_columns[spec.name] = np.dtype(spec.type.to_pandas())
        self._cast_schemas: dict[tuple[str, ...], Schema] = {}
        # Float requests to an all-double signature skip MLflow's second look (see backend.worker.exact).
        self._exact = ExactFramePredictor.for_model(model)

    # -- one request ---------------------------------------------------------------------------
    def parse(self, body: bytes, content_type: str | None) -> Parsed | None:
        """The request as a DataFrame, or None if it must go through MLflow's complete path instead."""
        if not content_type:
            return None
        mime_type, *parameters = (part.strip() for part in content_type.split(";"))
        for parameter in parameters:
            # Exactly what MLflow accepts; it answers anything else itself (a 415).
            key, _, value = parameter.partition("=")
            if key != "charset" or value.lower() != "utf-8":
                return None
        try:
            if mime_type == scoring_server.CONTENT_TYPE_JSON:
                frame, params = self._parse_json(body)
            elif mime_type == scoring_server.CONTENT_TYPE_CSV:
                frame = scoring_server.parse_csv_input(StringIO(body.decode("utf-8")), schema=self.input_schema)
                params = None
            else:
                return None
        except Exception:
            return None  # an invalid request: score() gives MLflow's answer, with its message
        if frame is None or not isinstance(frame, pd.DataFrame) or len(frame) == 0:
            return None
        try:
            params_key = None if params is None else json.dumps(params, sort_keys=True, allow_nan=True)
        except (TypeError, ValueError):
            return None
        return Parsed(frame, params, params_key)

    def _parse_json(self, body: bytes) -> tuple[pd.DataFrame | None, dict[str, Any] | None]:
        """`scoring_server._parse_json_data` for the two DataFrame formats, with the cast shortcut."""
        decoded = json.loads(body)
        if not isinstance(decoded, dict) or is_unified_llm_input(decoded):
            return None, None
        formats = [key for key in decoded if key in scoring_server.SUPPORTED_FORMATS]
        if len(formats) != 1 or formats[0] not in _DATAFRAME_FORMATS:
            return None, None
        params = decoded.get(scoring_server.SERVING_PARAMS_KEY)
        if params is not None and not isinstance(params, dict):
            return None, None
        frame = dataframe_from_parsed_json(decoded[formats[0]], pandas_orient=_DATAFRAME_FORMATS[formats[0]])
        cast_schema = self._cast_schema(frame)
        if cast_schema is not None:
            frame = cast_df_types_according_to_schema(frame, cast_schema)
        return frame, params

    def _cast_schema(self, frame: pd.DataFrame) -> Schema | None:
        """The input schema without the columns `frame` already holds in exactly their numeric schema dtype."""
        if not self._plain_columns:  # nothing to leave out (or unnamed columns, which MLflow casts by position)
            return self.input_schema  # None without a schema: MLflow casts nothing then either
        columns = frame.columns.tolist()
        if len(set(columns)) != len(columns):
            return self.input_schema
        dtypes = dict(zip(columns, frame.dtypes.tolist(), strict=True))
        needed = tuple(
            spec.name
            for spec in self._schema_specs
            if spec.name in dtypes and dtypes[spec.name] != self._plain_columns.get(spec.name)
        )
        if not needed:
            return None
        if len(needed) == len(self._schema_specs):
            return self.input_schema
        schema = self._cast_schemas.get(needed)
        if schema is None:
            schema = Schema([spec for spec in self._schema_specs if spec.name in needed])
            if len(self._cast_schemas) < 256:
                self._cast_schemas[needed] = schema
        return schema

    def score_one(self, body: bytes, content_type: str | None) -> InvocationResult:
        """Score one request: the row-wise path when it applies, MLflow's complete path otherwise."""
        if self._exact is not None:
            rows = _float_rows(body, content_type)
            frame = None if rows is None else self._exact_frame([rows])
            if frame is not None:
                results = self._predict_joint(frame, [len(frame)], None, self._exact.predict)
                # On failure MLflow's complete path predicts again and words the error its way.
                return results[0] if results is not None else score(body, content_type, self.model, self.input_schema)
        parsed = self.parse(body, content_type)
        if parsed is not None:
            results = self._predict([parsed])
            if results is not None:
                return results[0]
        return score(body, content_type, self.model, self.input_schema)

    # -- several requests ----------------------------------------------------------------------
    def score_many(self, requests: list[tuple[bytes, str | None]]) -> list[InvocationResult]:
        """Score concurrent requests, predicting those with the same columns, dtypes and params together."""
        if not self.batching or len(requests) == 1:
            return [self.score_one(body, content_type) for body, content_type in requests]
        results: list[InvocationResult | None] = [None] * len(requests)
        # All-float DataFrame requests (numeric features, the common case) are checked one by one and
        # then built into one DataFrame: the very frame that parsing each and concatenating gives.
        floats: dict[tuple[Any, ...], list[tuple[int, _FloatRows]]] = {}
        others = []
        for index, (body, content_type) in enumerate(requests):
            rows = _float_rows(body, content_type)
            if rows is None:
                others.append(index)
            else:
                floats.setdefault(rows.key, []).append((index, rows))
        for members in floats.values():
            if len(members) == 1:
                others.append(members[0][0])
                continue
            indexes = [index for index, _ in members]
            group = [rows for _, rows in members]
            answers, self._raised = None, False
            exact = self._exact_frame(group)
            if exact is not None:
                answers = self._predict_joint(exact, [rows.count for rows in group], None, self._exact.predict)
            else:
                data = self._float_frame(group)
                if data is not None:
                    answers = self._predict_joint(data, [rows.count for rows in group], group[0].params)
            self._settle(indexes, answers, requests, results)
        # Everything else: parsed one by one by MLflow's parser, grouped by columns, dtypes and params.
        parsed = {index: self.parse(*requests[index]) for index in sorted(others)}
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, item in parsed.items():
            if item is not None:
                groups.setdefault(item.key, []).append(index)
        for indexes in groups.values():
            group = [parsed[index] for index in indexes]
            self._settle(indexes, self._predict(group), requests, results)  # type: ignore[arg-type]
        return [
            result if result is not None else score(body, content_type, self.model, self.input_schema)
            for result, (body, content_type) in zip(results, requests, strict=True)
        ]

    def _settle(
        self,
        indexes: list[int],
        answers: list[InvocationResult] | None,
        requests: list[tuple[bytes, str | None]],
        results: list[InvocationResult | None],
    ) -> None:
        """Record a group's answers; if it could not be predicted together, each request alone."""
        if answers is None and len(indexes) > 1:
            # Failed or not splittable together: each alone, so a bad request fails by itself.
            raised = self._raised
            answers = [self.score_one(*requests[index]) for index in indexes]
            if raised and all(answer.status == 200 for answer in answers):
                self._misfit("a batched prediction failed although every request succeeded alone")
        if answers is not None:
            for index, answer in zip(indexes, answers, strict=True):
                results[index] = answer

    def _float_frame(self, members: list[_FloatRows]) -> pd.DataFrame | None:
        """The DataFrame of all members' rows, cast like MLflow casts a request, or None on any surprise."""
        first = members[0]
        data, index = _joined_rows(members)
        try:
            frame = pd.DataFrame(data=data, columns=list(first.columns), index=index)
            cast_schema = self._cast_schema(frame)
            return frame if cast_schema is None else cast_df_types_according_to_schema(frame, cast_schema)
        except Exception:
            return None

    def _exact_frame(self, members: list[_FloatRows]) -> pd.DataFrame | None:
        """The members' rows as the frame MLflow's enforcement would hand the model, if they allow it."""
        if self._exact is None or members[0].params is not None:
            return None
        data, index = _joined_rows(members)
        try:
            return self._exact.frame(members[0].columns, data, index)
        except Exception:
            return None

    def _predict(self, group: list[Parsed]) -> list[InvocationResult] | None:
        """Predict the group in one call and split the output per request; None if that is not possible."""
        frames = [item.frame for item in group]
        data = frames[0] if len(frames) == 1 else pd.concat(frames)
        return self._predict_joint(data, [len(frame) for frame in frames], group[0].params)

    def _predict_joint(
        self,
        data: pd.DataFrame,
        sizes: list[int],
        params: dict[str, Any] | None,
        predict: Callable[[pd.DataFrame], Any] | None = None,
    ) -> list[InvocationResult] | None:
        """Predict `data` in one call and cut the output into `sizes` rows per request; None if impossible."""
        self._raised = False
        try:
            if predict is not None:  # an exact frame, no params: see backend.worker.exact
                raw = predict(data)
            elif self._accepts_params:
                raw = self.model.predict(data, params=params)
            else:
                _log_warning_if_params_not_in_predict_signature(logger, params)
                raw = self.model.predict(data)
        except Exception:
            # score() predicts it again and reports the failure the way MLflow does.
            self._raised = True
            return None
        if len(sizes) == 1:
            pieces: list[Any] | None = [raw]
        else:
            pieces = _split(raw, sizes)
            if pieces is None:
                self._misfit(f"its output ({type(raw).__name__}) does not have one entry per input row")
                return None
            self._misfits = 0
        answers = []
        for piece in pieces:
            buffer = StringIO()
            try:
                scoring_server.predictions_to_json(piece, buffer)
            except Exception:
                return None
            answers.append(InvocationResult(status=200, body=buffer.getvalue().encode(), content_type=JSON))
        return answers

    def _misfit(self, reason: str) -> None:
        self._misfits += 1
        if self._misfits >= MAX_BATCH_MISFITS and self.batching:
            self.batching = False
            logger.warning("Batching turned off for this replica: the model is not row-wise (%s)", reason)


def _joined_rows(members: list[_FloatRows]) -> tuple[list[list[float]], list[Any] | None]:
    """All members' rows and their index (each member's labels, or 0..n-1 each; None for one unlabelled member)."""
    data = [row for member in members for row in member.rows]
    if all(member.index is None for member in members):
        return data, None if len(members) == 1 else [i for member in members for i in range(member.count)]
    return data, [i for member in members for i in (member.index or range(member.count))]


def _split(raw: Any, sizes: list[int]) -> list[Any] | None:
    """`raw` cut into consecutive pieces of `sizes` rows, or None unless it has exactly one entry per row."""
    total = sum(sizes)
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


@dataclass(frozen=True)
class _FloatRows:
    """A DataFrame request whose every value is a JSON number with a fraction or exponent (a float)."""

    columns: tuple[str, ...]
    rows: list[list[float]]
    index: list[Any] | None  # the request's own index (dataframe_split), or None for 0..n-1
    params: dict[str, Any] | None
    key: tuple[Any, ...]

    @property
    def count(self) -> int:
        return len(self.rows)


def _float_rows(body: bytes, content_type: str | None) -> _FloatRows | None:
    """The rows of an all-float dataframe_split or dataframe_records request; None for anything else.

    Narrow on purpose: exactly the requests for which MLflow's parser yields float64 columns named
    `columns`, with the given index (or 0..n-1), so that one DataFrame built from several of them
    equals the concatenation of their separately parsed frames.
    """
    if content_type not in _JSON_CONTENT_TYPES:
        return None
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(decoded, dict) or not 1 <= len(decoded) <= 2:
        return None
    params = decoded.get(scoring_server.SERVING_PARAMS_KEY)
    if len(decoded) == 2 and params is None:
        return None  # another key besides the format: MLflow's rules apply
    if params is not None and not isinstance(params, dict):
        return None
    index: list[Any] | None = None
    if scoring_server.DF_SPLIT in decoded:
        split = decoded[scoring_server.DF_SPLIT]
        if not isinstance(split, dict) or not {"columns", "data"} <= split.keys() <= {"columns", "data", "index"}:
            return None
        columns, rows = split["columns"], split["data"]
        if not isinstance(columns, list) or not isinstance(rows, list):
            return None
        if "index" in split:
            index = split["index"]
            if not isinstance(index, list) or len(index) != len(rows) or not _uniform_labels(index):
                return None
    elif scoring_server.DF_RECORDS in decoded:
        records = decoded[scoring_server.DF_RECORDS]
        if not isinstance(records, list) or not records or not isinstance(records[0], dict):
            return None
        columns = list(records[0])
        rows = []
        for record in records:
            if not isinstance(record, dict) or list(record) != columns:
                return None
            rows.append(list(record.values()))
    else:
        return None
    if not rows or not columns or len(set(columns)) != len(columns) or not all(type(c) is str for c in columns):
        return None
    width = len(columns)
    for row in rows:
        if type(row) is not list or len(row) != width or not all(type(value) is float for value in row):
            return None
    try:
        params_key = None if params is None else json.dumps(params, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError):
        return None
    index_kind = "str" if index and type(index[0]) is str else "int"
    return _FloatRows(tuple(columns), rows, index, params, (tuple(columns), index_kind, params_key))


def _uniform_labels(index: list[Any]) -> bool:
    """Index labels that are all ints (not bools) or all strings."""
    if not index:
        return True
    kind = type(index[0])
    return kind in (int, str) and all(type(label) is kind for label in index)
