"""Refuse scoring requests with more input columns than a replica accepts, before parsing them.

MLflow ignores columns beyond a model's signature (with a warning that lists them all), so the
signature does not bound how wide a request may be, and parsing a one-row CSV with 100,000 columns
into a DataFrame costs seconds of replica CPU. A replica therefore accepts at most the larger of its
model's signature width and the server's limit (`max_columns`: the replica is given it by its engine,
which reads `RTSERVE_MAX_INPUT_COLUMNS`, default 1024) and answers anything wider with a 400 at once.

The width is counted cheaply and only when the body is long enough to hold that many columns (every
column takes at least one byte in CSV, two in JSON), so ordinary requests pay nothing:
- text/csv: the fields of the header, the first line that pandas would read as one (a leading
  byte-order mark and blank lines are skipped, as pandas does; quoted newlines are followed).
- JSON: the `columns` of `dataframe_split` (or the longest row of its `data`), the keys of the
  records of `dataframe_records` (their union, as pandas takes it), and the keys of a dict `inputs`
  or `instances` (or of the records of a list of them). Lists of numbers under `inputs`/`instances`
  are tensors, not columns, and are not counted.
- Parquet: the column count in the file's footer metadata, read without the data (a tenth of the
  cost of parsing; about 0.2 s for the ~27,000 columns a 16 MB body can hold), and only when the
  footer is long enough to describe that many columns.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Mapping
from typing import Any

from rtserve.server.worker import jsonbody
from rtserve.server.worker.errors import error_result
from rtserve.server.worker.types import InvocationResult

logger = logging.getLogger(__name__)

MAX_INPUT_COLUMNS_ENV = "RTSERVE_MAX_INPUT_COLUMNS"
DEFAULT_MAX_INPUT_COLUMNS = 1024
# MLflow's error code for input that does not fit the model's schema.
ERROR_CODE = "INVALID_PARAMETER_VALUE"

_CSV = "text/csv"
_JSON = "application/json"
_PARQUET = "application/vnd.apache.parquet"
# The fewest footer bytes a Parquet column takes (its schema element and its column chunk's metadata).
_MIN_PARQUET_FOOTER_BYTES_PER_COLUMN = 16
# The fewest bytes a column can take: a separator in CSV; in JSON a value or `""` and a separator.
_MIN_CSV_BYTES_PER_COLUMN = 1
_MIN_JSON_BYTES_PER_COLUMN = 2
_BOM = b"\xef\xbb\xbf"


def max_input_columns(environ: Mapping[str, str] = os.environ) -> int:
    """RTSERVE_MAX_INPUT_COLUMNS, a positive integer; the default if unset or invalid (with a warning).

    Read once by an entry point (the local engine, `python -m rtserve.server.worker`), which hands
    the value to the replica; scoring itself never reads the environment.
    """
    raw = environ.get(MAX_INPUT_COLUMNS_ENV)
    value = DEFAULT_MAX_INPUT_COLUMNS
    if raw is not None and raw.strip():
        try:
            value = int(raw)
            if value < 1:
                raise ValueError
        except ValueError:
            logger.warning(
                "%s must be a positive integer, got %r; using %d", MAX_INPUT_COLUMNS_ENV, raw, DEFAULT_MAX_INPUT_COLUMNS
            )
            value = DEFAULT_MAX_INPUT_COLUMNS
    return value


def signature_width(input_schema: Any) -> int:
    """The number of input columns the model's signature names (0 without a signature).

    A tensor input counts as many columns as one of its rows holds values (variable dimensions count
    as 1), so a flat tensor sent as a DataFrame of that many columns is accepted.
    """
    if input_schema is None:
        return 0
    try:
        inputs = list(input_schema.inputs)
        if not input_schema.is_tensor_spec():
            return len(inputs)
        return sum(math.prod(abs(int(dim)) or 1 for dim in spec.shape[1:]) for spec in inputs)
    except Exception:  # an unusual schema object: the environment's limit alone applies
        return 0


def column_limit(input_schema: Any, max_columns: int = DEFAULT_MAX_INPUT_COLUMNS) -> int:
    """The most input columns a request to this model may have, under the server's limit `max_columns`."""
    return max(signature_width(input_schema), max_columns)


def check(
    body: bytes,
    content_type: str | None,
    input_schema: Any,
    decoded: Any = jsonbody.UNDECODED,
    *,
    max_columns: int = DEFAULT_MAX_INPUT_COLUMNS,
) -> InvocationResult | None:
    """The 400 answer if `body` has more columns than the model accepts, else None.

    `decoded` is the already parsed JSON body, if the caller has it (spares parsing it again);
    `max_columns` is the server's limit (the signature may allow more).
    """
    limit = column_limit(input_schema, max_columns)
    mime_type = _mime_type(content_type)
    if mime_type == _CSV:
        if len(body) < limit * _MIN_CSV_BYTES_PER_COLUMN:
            return None
        count, exact = _csv_header_width(body), True
    elif mime_type == _JSON:
        if not _counts_json(body, mime_type, limit):
            return None
        if decoded is jsonbody.UNDECODED:
            decoded = jsonbody.loads_or_none(body)
        count, exact = _json_width(decoded, limit)
    elif mime_type == _PARQUET:
        count, exact = _parquet_width(body, limit), True
    else:
        return None
    if count <= limit:
        return None
    logger.info("Refused a request with %s%d input columns (limit %d)", "" if exact else "at least ", count, limit)
    has = f"{count}" if exact else f"at least {count}"
    return error_result(
        ERROR_CODE,
        f"The request has {has} columns; this endpoint accepts at most {limit} "
        f"(the larger of the model signature's {signature_width(input_schema)} columns and the server's limit, "
        f"{MAX_INPUT_COLUMNS_ENV}={max_columns}). Send only the columns the model uses.",
    )


def refuse_too_wide(
    requests: list[tuple[Any, ...]],
    live: list[int],
    results: list[Any],
    input_schema: Any,
    max_columns: int = DEFAULT_MAX_INPUT_COLUMNS,
) -> dict[int, Any]:
    """For the replica's scoring thread: answer the too-wide requests among `live` in `results`.

    `requests` holds (body, content_type, ...) tuples. Returns the indexes of `live` still to score,
    in order, each with its JSON body if counting its columns decoded it (else `jsonbody.UNDECODED`):
    the scorers take it rather than decode a large body a second time.
    """
    limit = column_limit(input_schema, max_columns)
    remaining = {}
    for index in live:
        body, content_type = requests[index][0], requests[index][1]
        decoded = jsonbody.UNDECODED
        if _counts_json(body, _mime_type(content_type), limit):
            decoded = jsonbody.loads_or_none(body)
        refusal = check(body, content_type, input_schema, decoded, max_columns=max_columns)
        if refusal is None:
            remaining[index] = decoded
        else:
            results[index] = refusal
    return remaining


def _mime_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _counts_json(body: bytes, mime_type: str, limit: int) -> bool:
    """True if the columns of this body are counted: JSON long enough to hold more than `limit` of them."""
    return mime_type == _JSON and len(body) >= limit * _MIN_JSON_BYTES_PER_COLUMN


def _parquet_width(body: bytes, limit: int) -> int:
    """Columns in a Parquet body's footer; 0 when it cannot hold more than `limit` or is not Parquet."""
    if len(body) < 12 or body[-4:] != b"PAR1":
        return 0  # MLflow's parser words the refusal
    footer = int.from_bytes(body[-8:-4], "little")
    if footer < limit * _MIN_PARQUET_FOOTER_BYTES_PER_COLUMN:
        return 0
    import pyarrow.parquet

    try:
        return pyarrow.parquet.read_metadata(io.BytesIO(body)).num_columns
    except Exception:  # a damaged footer: MLflow's parser words the refusal
        return 0


def _csv_header_width(body: bytes) -> int:
    """The number of fields of the CSV header: the first non-blank line, quoted newlines followed."""
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    text = body.lstrip().decode("utf-8", errors="replace")  # pandas skips blank lines before the header
    try:
        return len(next(csv.reader(io.StringIO(text, newline="")), []))
    except csv.Error:
        # A quote that never closes, or a NUL: pandas refuses such input itself, and quickly.
        return 0


def _json_width(decoded: Any, limit: int) -> tuple[int, bool]:
    """(columns, exact) of a decoded JSON request; stops counting a union of keys past `limit`."""
    if not isinstance(decoded, dict):
        return 0, True
    widest, exact = 0, True
    split = decoded.get("dataframe_split")
    if isinstance(split, dict):
        columns = split.get("columns")
        if isinstance(columns, list):
            widest = len(columns)
        data = split.get("data")
        if isinstance(data, list):
            widest = max(widest, max((len(row) for row in data if isinstance(row, list | dict)), default=0))
    records = decoded.get("dataframe_records")
    if isinstance(records, list):
        count, exact_records = _records_width(records, limit, lists_are_rows=True)
        if count > widest:
            widest, exact = count, exact_records
    for key in ("inputs", "instances"):
        value = decoded.get(key)
        if isinstance(value, dict):
            if len(value) > widest:
                widest, exact = len(value), True
        elif isinstance(value, list):
            count, exact_records = _records_width(value, limit, lists_are_rows=False)
            if count > widest:
                widest, exact = count, exact_records
    return widest, exact


def _records_width(records: list[Any], limit: int, *, lists_are_rows: bool) -> tuple[int, bool]:
    """The columns of a list of records: the union of their keys (lists: the longest, if rows)."""
    if not records:
        return 0, True
    first = records[0]
    if isinstance(first, dict):
        if len(first) > limit:
            return len(first), True
        keys: set[Any] = set()
        for record in records:
            if isinstance(record, dict):
                keys.update(record)
                if len(keys) > limit:
                    return len(keys), False  # stopped counting: at least this many
        return len(keys), True
    if lists_are_rows:
        return max((len(row) for row in records if isinstance(row, list)), default=0), True
    return 0, True
