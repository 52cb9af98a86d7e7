"""`ai_query` on Spark, for tables that do not fit one machine: `register(spark)` defines it for Spark SQL.

    SELECT ai_query('iris', named_struct('x', x), returnType => 'DOUBLE', failOnError => false) FROM rows

A vectorized UDF with Spark's named arguments: each Arrow batch of a partition (up to
`spark.sql.execution.arrow.maxRecordsPerBatch` rows, 10,000 by default) is one `dataframe_records`
request, sent from the executor with the token `register` was given. Open-source Spark fixes a Python
function's result type when it is registered (giving it the type of an argument's value would need an
analyzer rule, JVM code), so `register` also has the session's `sql` rewrite each call whose
`returnType` is a string literal into a call of an Arrow UDF registered with that type
(`rtserve.sql.rewrite`): `spark.sql(...)` then returns the declared type, as on Databricks. A call
without `returnType` returns a VARIANT (the prediction as the endpoint answered it), and so does SQL
that does not go through `spark.sql` (`selectExpr`, `F.expr`). From Python, `ai_query(...)` returns a
Column already read into `returnType`, and `register_typed(spark, name, endpoint, returnType)` defines
a Spark SQL function `name(request)` of that type.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import msgspec
import pandas as pd
import pyarrow as pa
from pyspark.errors import PySparkValueError
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import arrow_udf, pandas_udf
from pyspark.sql.pandas.types import to_arrow_type
from pyspark.sql.types import VariantVal, _parse_datatype_string

from rtserve.sql.rewrite import TypedCall, rewrite
from rtserve.sql.scoring import DEFAULT_MAX_IN_FLIGHT, EndpointClient, constant, json_texts
from rtserve.sql.types import to_duckdb

# One client per executor process and settings: its connections and its bound on requests in flight
# are shared by the tasks that process runs.
_clients: dict[tuple, EndpointClient] = {}
# A batch's rows as JSON in one call: `json.dumps` spends 70-90 ms writing the floats of 10,000 rows, msgspec 5-8.
_ROWS_ENCODER = msgspec.json.Encoder(enc_hook=str)


def register(
    spark: SparkSession,
    *,
    host: str | None = None,
    token: str | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    name: str = "ai_query",
    **client_options: Any,
) -> None:
    """Define `ai_query` (or `name`) for Spark SQL on `spark`, and have `spark.sql` give a call with a
    literal `returnType` that type.

    `host` and `token` default to RTSERVE_HOST / RTSERVE_TOKEN, then DATABRICKS_HOST / DATABRICKS_TOKEN, read
    here on the driver: executors get them with the function, not from their own environment.
    """
    settings = _settings(host, token, max_in_flight, client_options)
    spark.udf.register(name, _score_udf(settings))
    sql = spark.sql
    if isinstance(sql, _TypedSql) and sql.name.lower() == name.lower():
        sql = sql.sql  # registered again: these settings replace the earlier ones
    spark.sql = _TypedSql(spark, sql, name, settings)  # type: ignore[method-assign]


class _TypedSql:
    """`spark.sql` on a session `register` was called on: each `ai_query(...)` call with a literal
    `returnType` is rewritten to call a function of that type, registered on first use."""

    def __init__(self, spark: SparkSession, sql: Any, name: str, settings: dict[str, Any]) -> None:
        self.spark, self.sql, self.name, self.settings = spark, sql, name, settings
        self.functions: dict[TypedCall, str] = {}

    def __call__(self, sqlQuery: str, *args: Any, **kwargs: Any) -> DataFrame:  # SparkSession.sql's names
        try:
            statement = rewrite(sqlQuery, self.name, self.function_for)
        except ValueError as exc:  # a bad returnType or failOnError: before anything runs
            raise PySparkValueError(message=str(exc)) from None
        return self.sql(statement, *args, **kwargs)

    def function_for(self, call: TypedCall) -> str:
        if call not in self.functions:
            digest = hashlib.sha256(f"{call.return_type}\0{call.fail_on_error}".encode()).hexdigest()[:12]
            function = f"{self.name}_{digest}"
            typed = _typed_udf(self.spark, self.settings, call.return_type, call.fail_on_error)
            self.spark.udf.register(function, typed)
            self.functions[call] = function
        return self.functions[call]


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
    settings = _settings(host, token, max_in_flight, client_options)
    spark.udf.register(name, _typed_udf(spark, settings, returnType, failOnError, endpoint))


def _typed_udf(
    spark: SparkSession,
    settings: dict[str, Any],
    return_type: str | None,
    fail_on_error: bool,
    fixed_endpoint: str | None = None,
) -> Any:
    """An Arrow UDF `(endpoint, request)`, or `(request)` for a `fixed_endpoint`, of the declared type."""
    value_type = return_type or "STRING"
    ddl = value_type if fail_on_error else f"STRUCT<result: {value_type}, errorMessage: STRING>"
    spark_type = _parse_datatype_string(ddl)
    arrow_type = to_arrow_type(spark_type, timezone=spark.conf.get("spark.sql.session.timeZone"))

    def values(endpoints: str | pa.Array, request: pa.Array) -> pa.Array:
        client = _client(settings)
        endpoint = endpoints if isinstance(endpoints, str) else constant(endpoints)
        if endpoint is not None and fail_on_error and request.null_count == 0:
            # The usual batch: its rows sent as one JSON text, the predictions read straight into Arrow.
            if len(request) == 0:
                return pa.array([], arrow_type)
            records = _records(request)
            predictions = client.predictions(endpoint, records, len(request))
            if return_type is None:
                return pa.array(json_texts(predictions), pa.string())
            return _arrow_values(predictions, arrow_type)
        rows = [None if row is None else json.dumps(row, default=str) for row in request.to_pylist()]
        names = [endpoint] * len(rows) if endpoint is not None else endpoints.to_pylist()  # type: ignore[union-attr]
        scored = client.score_batch(names, rows, [fail_on_error] * len(rows))
        if return_type is None and fail_on_error:
            return pa.array(scored, pa.string())
        decoded = [None if text is None else json.loads(text) for text in scored]
        if return_type is None:  # {result, errorMessage} with the result as JSON text
            decoded = [v if v is None else {**v, "result": _json_or_none(v["result"])} for v in decoded]
        return _arrow_values(decoded, arrow_type)

    if fixed_endpoint is None:

        def score(endpoint: pa.Array, request: pa.Array) -> pa.Array:  # named as Spark SQL callers name them
            return values(endpoint, request)

        return arrow_udf(score, spark_type)  # type: ignore[call-overload]

    def score_on_endpoint(request: pa.Array) -> pa.Array:
        return values(fixed_endpoint, request)

    return arrow_udf(score_on_endpoint, spark_type)  # type: ignore[call-overload]


def _records(request: pa.Array) -> str:
    """A batch's rows as JSON records joined by commas (a module function: a UDF refers to it by name, so
    the encoder is not pickled with it)."""
    return _ROWS_ENCODER.encode(request.to_pylist())[1:-1].decode()


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
