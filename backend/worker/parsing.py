"""Requests as the DataFrames MLflow would predict on, parsed with MLflow's own functions.

For the row-wise paths (`backend.worker.rowwise`): `FrameParser.parse` turns one `dataframe_split`,
`dataframe_records` or CSV request into its DataFrame (None for anything MLflow's complete path
must handle), and `float_rows` recognizes the common all-float shape without building a frame.

Two shortcuts, neither of which changes a value:
- MLflow casts every column to its schema type, even columns already of exactly that numeric dtype
  (an `astype` to the same dtype copies the column); such columns are left out of the schema
  handed to MLflow's cast (`FrameParser.cast_schema`).
- Building a DataFrame costs far more than the rows in it. Requests in the common all-float shape
  (`dataframe_split` or `dataframe_records` whose every value is a JSON float, with the same
  columns) are checked one by one (`float_rows`) and their rows built into one DataFrame
  (`FrameParser.float_frame`): exactly the frame that parsing each with MLflow's parser and
  concatenating gives (float64 columns, each request's index).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from io import StringIO
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import scoring_server
from mlflow.pyfunc.utils.serving_data_parser import is_unified_llm_input
from mlflow.types import DataType, Schema
from mlflow.utils.proto_json_utils import cast_df_types_according_to_schema, dataframe_from_parsed_json

from rtserve.server.worker import jsonbody

_DATAFRAME_FORMATS = {scoring_server.DF_SPLIT: "split", scoring_server.DF_RECORDS: "records"}
_JSON = scoring_server.CONTENT_TYPE_JSON
_JSON_CONTENT_TYPES = frozenset({_JSON, f"{_JSON}; charset=utf-8", f"{_JSON}; charset=UTF-8", f"{_JSON};charset=utf-8"})
# Schema types whose cast is a plain `astype` to a numpy dtype: a no-op when the dtype already matches.
_PLAIN_TYPES = frozenset({DataType.double, DataType.float, DataType.long, DataType.integer, DataType.boolean})


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


class FrameParser:
    """Parses requests to one model (its input schema) into DataFrames, casting like MLflow."""

    def __init__(self, input_schema: Any) -> None:
        self.input_schema = input_schema
        self._plain_columns: dict[str, np.dtype] = {}
        self._schema_specs: list[Any] = []
        if input_schema is not None and input_schema.has_input_names():
            self._schema_specs = list(input_schema.inputs)
            for spec in self._schema_specs:
                if isinstance(spec.type, DataType) and spec.type in _PLAIN_TYPES:
                    self._plain_columns[spec.name] = np.dtype(spec.type.to_pandas())
        self._cast_schemas: dict[tuple[str, ...], Schema] = {}

    def parse(self, body: bytes, content_type: str | None, decoded: Any = jsonbody.UNDECODED) -> Parsed | None:
        """The request as a DataFrame, or None if it must go through MLflow's complete path instead.

        `decoded` is the JSON body if the caller decoded it already."""
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
                frame, params = self._parse_json(body, decoded)
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

    def _parse_json(self, body: bytes, decoded: Any) -> tuple[pd.DataFrame | None, dict[str, Any] | None]:
        """`scoring_server._parse_json_data` for the two DataFrame formats, with the cast shortcut."""
        if decoded is jsonbody.UNDECODED:
            decoded = jsonbody.loads(body)
        if not isinstance(decoded, dict) or is_unified_llm_input(decoded):
            return None, None
        formats = [key for key in decoded if key in scoring_server.SUPPORTED_FORMATS]
        if len(formats) != 1 or formats[0] not in _DATAFRAME_FORMATS:
            return None, None
        params = decoded.get(scoring_server.SERVING_PARAMS_KEY)
        if params is not None and not isinstance(params, dict):
            return None, None
        frame = dataframe_from_parsed_json(decoded[formats[0]], pandas_orient=_DATAFRAME_FORMATS[formats[0]])
        cast_schema = self.cast_schema(frame)
        if cast_schema is not None:
            frame = cast_df_types_according_to_schema(frame, cast_schema)
        return frame, params

    def cast_schema(self, frame: pd.DataFrame) -> Schema | None:
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

    def float_frame(self, members: list[FloatRows]) -> pd.DataFrame | None:
        """The DataFrame of all members' rows, cast like MLflow casts a request, or None on any surprise."""
        first = members[0]
        data, index = joined_rows(members)
        try:
            frame = pd.DataFrame(data=data, columns=list(first.columns), index=index)
            cast_schema = self.cast_schema(frame)
            return frame if cast_schema is None else cast_df_types_according_to_schema(frame, cast_schema)
        except Exception:
            return None


@dataclass(frozen=True)
class FloatRows:
    """A DataFrame request whose every value is a JSON number with a fraction or exponent (a float)."""

    columns: tuple[str, ...]
    rows: list[list[float]]
    index: list[Any] | None  # the request's own index (dataframe_split), or None for 0..n-1
    params: dict[str, Any] | None
    key: tuple[Any, ...]

    @property
    def count(self) -> int:
        return len(self.rows)


def float_rows(body: bytes, content_type: str | None, decoded: Any = jsonbody.UNDECODED) -> FloatRows | None:
    """The rows of an all-float dataframe_split or dataframe_records request; None for anything else.

    Narrow on purpose: exactly the requests for which MLflow's parser yields float64 columns named
    `columns`, with the given index (or 0..n-1), so that one DataFrame built from several of them
    equals the concatenation of their separately parsed frames. `decoded` is the JSON body if the
    caller decoded it already (it is read, never changed).
    """
    if content_type not in _JSON_CONTENT_TYPES:
        return None
    if decoded is jsonbody.UNDECODED:
        decoded = jsonbody.loads_or_none(body)
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
        # Checked with map() over whole lists, in C: a loop in Python over 2,048 records costs milliseconds.
        if set(map(type, records)) != {dict}:
            return None
        keys = tuple(records[0])
        if list(map(tuple, records)).count(keys) != len(records):
            return None  # the same columns in the same order, every record
        columns = list(keys)
        rows = list(map(list, map(dict.values, records)))
    else:
        return None
    if not rows or not columns or len(set(columns)) != len(columns) or not all(type(c) is str for c in columns):
        return None
    if set(map(type, rows)) != {list} or set(map(len, rows)) != {len(columns)}:
        return None
    if set(map(type, chain.from_iterable(rows))) != {float}:
        return None
    try:
        params_key = None if params is None else json.dumps(params, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError):
        return None
    index_kind = "str" if index and type(index[0]) is str else "int"
    return FloatRows(tuple(columns), rows, index, params, (tuple(columns), index_kind, params_key))


def _uniform_labels(index: list[Any]) -> bool:
    """Index labels that are all ints (not bools) or all strings."""
    if not index:
        return True
    kind = type(index[0])
    return kind in (int, str) and all(type(label) is kind for label in index)


def joined_rows(members: list[FloatRows]) -> tuple[list[list[float]], list[Any] | None]:
    """All members' rows and their index (each member's labels, or 0..n-1 each; None for one unlabelled member)."""
    data = [row for member in members for row in member.rows]
    if all(member.index is None for member in members):
        return data, None if len(members) == 1 else [i for member in members for i in range(member.count)]
    return data, [i for member in members for i in (member.index or range(member.count))]
