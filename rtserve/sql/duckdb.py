"""`ai_query` on DuckDB: `connect()` returns a connection where it works, `register(con)` adds it to yours.

    SELECT ai_query('iris', struct_pack(a := x, b := y), returnType => 'DOUBLE') FROM 'rows.parquet'

`ai_query(endpoint, request [, returnType => '<Databricks type>'] [, failOnError => false])` is a
macro over a vectorized (arrow) Python function: DuckDB hands it a vector of up to 2,048 rows, which
goes to the endpoint as one `dataframe_records` request. The answer comes back as JSON and is read
into the translated `returnType` by DuckDB's own `from_json` (a value that does not fit becomes
NULL, as `from_json` does); without a `returnType` the result is DuckDB's JSON.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from duckdb import func, sqltypes

from rtserve.sql.scoring import DEFAULT_MAX_IN_FLIGHT, EndpointClient, constant
from rtserve.sql.types import to_duckdb

SCORE_FUNCTION = "rtserve_ai_query_score"
TYPE_FUNCTION = "rtserve_ai_query_type"
# DuckDB binds a macro's body when the macro is created, and `from_json` wants its structure constant
# then, which the structure is only once the macro is called with constants. Reading the score out of a
# struct that also holds `request` (whose type is unknown until the call) defers that check to the call.
MACRO = f"""
CREATE OR REPLACE TEMP MACRO ai_query(endpoint, request, returnType := NULL, failOnError := true) AS
from_json(
    struct_pack(score := {SCORE_FUNCTION}(endpoint, to_json(request), failOnError), request := request).score,
    {TYPE_FUNCTION}(returnType, failOnError)
)
"""


def connect(
    database: str = ":memory:",
    *,
    host: str | None = None,
    token: str | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    **client_options: Any,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with `ai_query`, scoring on `host` with `token` (default RTSERVE_HOST/_TOKEN,
    then DATABRICKS_HOST/_TOKEN). `client_options` go to `EndpointClient` (retries, timeout)."""
    connection = duckdb.connect(database)
    register(connection, EndpointClient(host, token, max_in_flight=max_in_flight, **client_options))
    return connection


def register(connection: duckdb.DuckDBPyConnection, client: EndpointClient | None = None) -> EndpointClient:
    """Define `ai_query` on `connection` (a temporary macro: nothing is written into a database file)."""
    client = client or EndpointClient()
    for name in (SCORE_FUNCTION, TYPE_FUNCTION):
        try:
            connection.remove_function(name)
        except duckdb.InvalidInputException:
            pass  # not registered yet

    def score(endpoints: pa.ChunkedArray, requests: pa.ChunkedArray, fail_on_error: pa.ChunkedArray) -> pa.Array:
        endpoint = constant(endpoints)
        if endpoint is not None and requests.null_count == 0 and not pc.any(pc.invert(fail_on_error)).as_py():
            # The usual vector: one endpoint, failOnError, no NULL request. Its rows are joined in Arrow,
            # with no Python string per row (2,048 of them cost about as much as the request's round trip).
            lists = pa.ListArray.from_arrays(pa.array([0, len(requests)], pa.int32()), requests.combine_chunks())
            records = pc.binary_join(lists, ",")[0].as_py()
            return pa.array(client.score_records(endpoint, records, len(requests)), pa.string())
        out = client.score_batch(endpoints.to_pylist(), requests.to_pylist(), fail_on_error.to_pylist())
        return pa.array(out, pa.string())

    connection.create_function(
        SCORE_FUNCTION,
        score,
        [sqltypes.VARCHAR, sqltypes.VARCHAR, sqltypes.BOOLEAN],
        sqltypes.VARCHAR,
        type=func.ARROW,
        null_handling=func.SPECIAL,  # a NULL failOnError means the default, not a NULL result
        side_effects=True,  # never folded or cached: every call is a request
    )
    connection.create_function(
        TYPE_FUNCTION,
        json_structure,
        [sqltypes.VARCHAR, sqltypes.BOOLEAN],
        sqltypes.VARCHAR,
        null_handling=func.SPECIAL,  # no returnType: JSON
        side_effects=False,  # folded when the query is bound: a bad returnType fails before any request
    )
    connection.execute(MACRO)
    return client


def json_structure(return_type: str | None, fail_on_error: bool | None) -> str:
    """`from_json`'s structure for a Databricks `returnType`, wrapped as {result, errorMessage} if not failing."""
    duckdb_type = "JSON" if return_type is None else to_duckdb(return_type)
    if fail_on_error is False:
        return json.dumps({"result": duckdb_type, "errorMessage": "VARCHAR"})
    return json.dumps(duckdb_type)
