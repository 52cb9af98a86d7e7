"""`ai_query` on Spark, for tables that do not fit one machine: `register(spark)` defines it for Spark SQL.

    SELECT ai_query('iris', named_struct('x', x), returnType => 'DOUBLE', failOnError => false) FROM rows

A vectorized pandas UDF with Spark's named arguments: each Arrow batch of a partition (up to
`spark.sql.execution.arrow.maxRecordsPerBatch` rows, 10,000 by default) is one `dataframe_records`
request, sent from the executor with the token `register` was given. Open-source Spark cannot type a
function's result by the value of an argument (an analyzer rule would need JVM code), so in Spark SQL
the result is a VARIANT: cast it (`ai_query(...)::STRUCT<label: STRING, score: DOUBLE>`) or read a
field (`ai_query(...):score::double`). `returnType` is still checked before any request. From Python,
`ai_query(...)` returns a Column already read into `returnType`, and `register_typed(spark, name,
endpoint, returnType)` defines a Spark SQL function `name(request)` of that type (a typed Arrow UDF:
Spark fixes a function's type when it is registered, so one function per type).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd
import pyarrow as pa
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import arrow_udf, pandas_udf
from pyspark.sql.pandas.types import to_arrow_type
from pyspark.sql.types import VariantVal, _parse_datatype_string

from rtserve.sql.scoring import DEFAULT_MAX_IN_FLIGHT, EndpointClient
from rtserve.sql.types import to_duckdb

# One client per executor process and settings: its connections and its bound on requests in flight
# are shared by the tasks that process runs.
_clients: dict[tuple, EndpointClient] = {}


def register(
    spark: SparkSession,
    *,
    host: str | None = None,
    token: str | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    name: str = "ai_query",
    **client_options: Any,
) -> None:
    """Define `ai_query` (or `name`) for Spark SQL on `spark`.

    `host` and `token` default to RTSERVE_HOST / RTSERVE_TOKEN, then DATABRICKS_HOST / DATABRICKS_TOKEN, read
    here on the driver: executors get them with the function, not from their own environment.
    """
    spark.udf.register(name, _score_udf(_settings(host, token, max_in_flight, client_options)))


def register_typed(
    spark: SparkSession,
    name: str,
    endpoint: str,
    returnType: str | None = None,  # Databricks' argument names
    failOnError: bool = True,
    *,
    host: str | None = None,
    token: str | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    **client_options: Any,
) -> None:
    """Define `name(request)` for Spark SQL: `ai_query(endpoint, request, returnType, failOnError)` whose
    result already has the declared Spark type, no cast needed.

    Without `returnType`, STRING: the prediction as JSON text. With `failOnError=False`, a struct
    `{result, errorMessage}`. A prediction that does not fit the type is NULL, as `from_json` reads it.
    """
    to_duckdb(returnType or "STRING")  # checked with the translator's messages, before anything is defined
    value_type = returnType or "STRING"
    ddl = value_type if failOnError else f"STRUCT<result: {value_type}, errorMessage: STRING>"
    spark_type = _parse_datatype_string(ddl)
    arrow_type = to_arrow_type(spark_type, timezone=spark.conf.get("spark.sql.session.timeZone"))
    settings = _settings(host, token, max_in_flight, client_options)

    def score(request: pa.Array) -> pa.Array:
        rows = [None if row is None else json.dumps(row, default=str) for row in request.to_pylist()]
        scored = _client(settings).score(endpoint, rows, fail_on_error=failOnError)
        if returnType is None and failOnError:
            return pa.array(scored, pa.string())
        values = [None if text is None else json.loads(text) for text in scored]
        if returnType is None:  # {result, errorMessage} with the result as JSON text
            values = [v if v is None else {**v, "result": _json_or_none(v["result"])} for v in values]
        return _arrow_values(values, arrow_type)

    spark.udf.register(name, arrow_udf(score, spark_type))  # type: ignore[call-overload]


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _arrow_values(values: list[Any], arrow_type: pa.DataType) -> pa.Array:
    """`values` as an Arrow array of `arrow_type`; one that does not fit the type is NULL (as `from_json` has it)."""
    try:
        return pa.array(values, arrow_type)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.array([_fitting(value, arrow_type) for value in values], arrow_type)


def _fitting(value: Any, arrow_type: pa.DataType) -> Any:
    try:
        pa.array([value], arrow_type)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    return value


def ai_query(
    endpoint: str,
    request: Column | str,
    returnType: str | None = None,  # Databricks' argument names
    failOnError: bool = True,
    *,
    host: str | None = None,
    token: str | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    **client_options: Any,
) -> Column:
    """`ai_query` for the DataFrame API: a Column read into `returnType` (JSON text without one).

    With `failOnError=False`, a struct `{result, errorMessage}`.
    """
    if returnType is not None:
        to_duckdb(returnType)  # checked now, before any request
    settings = _settings(host, token, max_in_flight, client_options)
    score = _score_udf(settings, as_json=True)
    column = request if isinstance(request, Column) else F.col(request)
    raw = score(endpoint=F.lit(endpoint), request=column, failOnError=F.lit(failOnError))
    value_type = returnType or "STRING"
    if failOnError:
        return F.from_json(raw, f"STRUCT<v: {value_type}>").getField("v")
    return F.from_json(raw, f"STRUCT<v: STRUCT<result: {value_type}, errorMessage: STRING>>").getField("v")


def _settings(host: str | None, token: str | None, max_in_flight: int, options: dict[str, Any]) -> dict[str, Any]:
    host = host or os.environ.get("RTSERVE_HOST") or os.environ.get("DATABRICKS_HOST")
    token = token or os.environ.get("RTSERVE_TOKEN") or os.environ.get("DATABRICKS_TOKEN")
    EndpointClient(host, token, environ={}).close()  # a missing host or token fails here, on the driver
    return {"host": host, "token": token, "max_in_flight": max_in_flight, **options}


def _client(settings: dict[str, Any]) -> EndpointClient:
    key = tuple(sorted(settings.items()))
    if key not in _clients:
        _clients[key] = EndpointClient(**settings, environ={})
    return _clients[key]


def _score_udf(settings: dict[str, Any], *, as_json: bool = False) -> Any:
    """The pandas UDF: VARIANT results for Spark SQL, or `{"v": ...}` JSON text for `from_json`."""

    def score(
        endpoint: pd.Series,
        request: pd.Series,
        # Optional arguments, named as Spark SQL callers name them; Spark reads these hints (no `| None`).
        returnType: pd.Series = None,  # type: ignore[assignment]
        failOnError: pd.Series = None,  # type: ignore[assignment]
    ) -> pd.Series:
        if returnType is not None:
            for text in returnType.dropna().unique():
                to_duckdb(str(text))  # a bad returnType fails before any request
        rows = _rows_as_json(request)
        flags = [True] * len(rows) if failOnError is None else [None if pd.isna(f) else bool(f) for f in failOnError]
        scored = _client(settings).score_batch(endpoint.tolist(), rows, flags)
        if as_json:
            return pd.Series([None if value is None else '{"v":' + value + "}" for value in scored])
        return pd.Series([None if value is None else VariantVal.parseJson(value) for value in scored])

    return pandas_udf(score, "string" if as_json else "variant")  # type: ignore[call-overload]


def _rows_as_json(request: pd.Series | pd.DataFrame) -> list[str | None]:
    """Each row as JSON text: a struct column arrives as a DataFrame (one record per row), a column as values."""
    if isinstance(request, pd.DataFrame):
        return list(request.to_json(orient="records", lines=True).splitlines())
    return [None if value is None else json.dumps(value) for value in request.tolist()]
