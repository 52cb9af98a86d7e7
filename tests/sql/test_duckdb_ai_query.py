"""`ai_query` on DuckDB against a live backend: vectors of rows per request, types, errors, rate limits."""

from __future__ import annotations

import time

import duckdb
import httpx
import pytest

from rtserve.server.client import BackendClient
from rtserve.server.process import BackendProcess
from rtserve.sql.duckdb import connect, register
from rtserve.sql.scoring import EndpointClient
from tests.sql.conftest import MODEL, requests_served
from tests.tokens import create_token

pytestmark = pytest.mark.api
LABEL_SCORE = "STRUCT<label:STRING, score:DOUBLE>"


@pytest.fixture
def sql(backend: BackendProcess, label_endpoint: str) -> duckdb.DuckDBPyConnection:
    connection = connect(host=backend.url, token=backend.admin_token)
    yield connection
    connection.close()


def test_a_struct_of_columns_scores_into_the_databricks_return_type(sql: duckdb.DuckDBPyConnection):
    rows = sql.sql(
        f"SELECT x, ai_query('sql-label', struct_pack(x := x), returnType => '{LABEL_SCORE}') AS p "
        "FROM (VALUES (1.0::DOUBLE), (12.0)) t(x) ORDER BY x"
    ).fetchall()
    assert rows == [(1.0, {"label": "low", "score": 2.0}), (12.0, {"label": "high", "score": 24.0})]
    assert sql.execute(
        f"SELECT typeof(ai_query('sql-label', {{'x': 1.0}}, returnType => '{LABEL_SCORE}'))"
    ).fetchone() == (
        'STRUCT("label" VARCHAR, score DOUBLE)',  # DuckDB quotes 'label', a keyword
    )


def test_a_whole_row_is_a_request_and_fields_of_the_result_are_columns(sql: duckdb.DuckDBPyConnection):
    rows = sql.sql(
        f"SELECT ai_query('sql-label', t, returnType => '{LABEL_SCORE}').score AS score "
        "FROM (VALUES (2.0::DOUBLE), (3.0)) t(x) ORDER BY score"
    ).fetchall()
    assert rows == [(4.0,), (6.0,)]


def test_without_a_return_type_the_prediction_is_json(sql: duckdb.DuckDBPyConnection):
    value, kind = sql.execute("SELECT p, typeof(p) FROM (SELECT ai_query('sql-label', {'x': 1.0}) AS p)").fetchone()
    assert (value, kind) == ('{"label":"low","score":2.0}', "JSON")


def test_scalar_and_array_return_types(sql: duckdb.DuckDBPyConnection):
    score = sql.execute("SELECT ai_query('sql-label', {'x': 4.0}, returnType => 'MAP<STRING, STRING>')").fetchone()
    assert score == ({"label": "low", "score": "8.0"},)


def test_one_request_per_vector_of_rows_not_per_row(
    sql: duckdb.DuckDBPyConnection, backend: BackendProcess, label_endpoint: str
):
    before = requests_served(backend, label_endpoint)
    (total,) = sql.execute(
        f"SELECT sum(ai_query('sql-label', {{'x': i::DOUBLE}}, returnType => '{LABEL_SCORE}').score) "
        "FROM range(5000) t(i)"
    ).fetchone()
    assert total == sum(2.0 * i for i in range(5000))
    requests = requests_served(backend, label_endpoint) - before
    assert 3 <= requests <= 6  # DuckDB's vectors hold up to 2,048 rows: 3 of them, maybe split across threads


def test_a_model_route_is_addressed_as_model_slash_stage(sql: duckdb.DuckDBPyConnection):
    rows = sql.sql(f"SELECT ai_query('{MODEL}/Production', {{'x': 5.0}}, returnType => 'STRUCT<score:DOUBLE>')")
    assert rows.fetchall() == [({"score": 10.0},)]


def test_with_fail_on_error_false_a_refused_row_gets_its_message_and_the_others_score(
    sql: duckdb.DuckDBPyConnection,
):
    rows = sql.sql(
        f"SELECT x, ai_query('sql-label', {{'x': x}}, returnType => '{LABEL_SCORE}', failOnError => false) AS p "
        "FROM (SELECT (i - 3)::DOUBLE AS x FROM range(10) t(i)) ORDER BY x"
    ).fetchall()
    assert [x for x, p in rows if p["errorMessage"] is not None] == [-3.0, -2.0, -1.0]
    assert all(p["result"] is None for x, p in rows if x < 0)
    assert "x must not be negative" in rows[0][1]["errorMessage"]
    assert [p["result"]["score"] for x, p in rows if x >= 0] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]


def test_a_model_error_fails_the_query_by_default(sql: duckdb.DuckDBPyConnection):
    with pytest.raises(duckdb.Error, match="endpoint 'sql-label' failed: 400 .*x must not be negative"):
        sql.sql("SELECT ai_query('sql-label', {'x': -1.0}) FROM range(3)").fetchall()


def test_an_unknown_endpoint_fails_the_query_naming_it_and_what_to_do(sql: duckdb.DuckDBPyConnection):
    with pytest.raises(duckdb.Error) as error:
        sql.sql("SELECT ai_query('no-such-endpoint', {'x': 1.0})").fetchall()
    assert "endpoint 'no-such-endpoint' was not found" in str(error.value)
    assert "GET /api/2.0/serving-endpoints lists the endpoints" in str(error.value)


def test_a_bad_token_fails_the_query_saying_which_variable_to_set(backend: BackendProcess, label_endpoint: str):
    connection = connect(host=backend.url, token="rtsv-not-a-token")
    with pytest.raises(duckdb.Error) as error:
        connection.sql("SELECT ai_query('sql-label', {'x': 1.0})").fetchall()
    assert "refused the token for endpoint 'sql-label'" in str(error.value)
    assert "Set RTSERVE_TOKEN" in str(error.value)


def test_a_token_without_can_query_fails_the_query_saying_whom_to_ask(backend: BackendProcess, label_endpoint: str):
    viewer, _ = create_token(backend, "CAN_VIEW")
    connection = connect(host=backend.url, token=viewer)
    with pytest.raises(duckdb.Error) as error:
        connection.execute("SELECT ai_query('sql-label', {'x': 1.0})").fetchall()
    assert "the token may not query endpoint 'sql-label'" in str(error.value)
    assert "Ask the endpoint's manager for CAN_QUERY" in str(error.value)


def test_a_bad_return_type_fails_before_any_request(
    sql: duckdb.DuckDBPyConnection, backend: BackendProcess, label_endpoint: str
):
    before = requests_served(backend, label_endpoint)
    with pytest.raises(duckdb.Error, match=r"returnType 'STRUCT<label:STRING' is not a Databricks SQL type"):
        sql.execute(
            "SELECT ai_query('sql-label', {'x': i::DOUBLE}, returnType => 'STRUCT<label:STRING') FROM range(10) t(i)"
        )
    assert requests_served(backend, label_endpoint) == before


def test_host_and_token_come_from_the_environment(
    backend: BackendProcess, label_endpoint: str, monkeypatch: pytest.MonkeyPatch
):
    for name in ("RTSERVE_HOST", "RTSERVE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_HOST", backend.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", backend.admin_token)
    connection = duckdb.connect()
    register(connection)
    assert connection.execute(
        "SELECT ai_query('sql-label', {'x': 1.0}, returnType => 'STRUCT<score:DOUBLE>')"
    ).fetchone()
    monkeypatch.setenv("RTSERVE_HOST", "http://127.0.0.1:9")  # RTSERVE_ wins over DATABRICKS_
    with pytest.raises(duckdb.Error, match="cannot reach http://127.0.0.1:9 for endpoint 'sql-label'"):
        connect().sql("SELECT ai_query('sql-label', {'x': 1.0})").fetchall()


def _limited(admin: BackendClient, calls: int) -> None:
    admin.call(
        "PUT",
        "/api/2.0/serving-endpoints/sql-label/ai-gateway",
        json={"rate_limits": [{"calls": calls, "key": "endpoint", "renewal_period": "minute"}]},
    )


def _drain(backend: BackendProcess) -> None:
    """Use up the endpoint's rate limit until it answers 429."""
    with httpx.Client(headers={"Authorization": f"Bearer {backend.admin_token}"}) as http:
        for _ in range(200):
            answer = http.post(f"{backend.url}/serving-endpoints/sql-label/invocations", json={"inputs": {"x": [1.0]}})
            if answer.status_code == 429:
                return
    raise AssertionError("the rate limit never answered 429")


def test_a_429_is_retried_after_its_retry_after(backend: BackendProcess, admin: BackendClient, label_endpoint: str):
    _limited(admin, 30)  # a request every 2 s once the burst is used: the next one surely waits
    try:
        _drain(backend)
        connection = connect(host=backend.url, token=backend.admin_token)
        started = time.monotonic()
        rows = connection.execute("SELECT ai_query('sql-label', {'x': 1.0}, returnType => 'STRUCT<score:DOUBLE>')")
        assert rows.fetchall() == [({"score": 2.0},)]
        assert time.monotonic() - started >= 0.9  # it waited for the Retry-After (1 s) rather than failing
    finally:
        admin.call("PUT", "/api/2.0/serving-endpoints/sql-label/ai-gateway", json={"rate_limits": []})


def test_retries_stop_at_their_limit_with_a_clear_error(
    backend: BackendProcess, admin: BackendClient, label_endpoint: str
):
    _limited(admin, 30)
    try:
        _drain(backend)
        client = EndpointClient(backend.url, backend.admin_token, max_retry_seconds=0.5)
        connection = duckdb.connect()
        register(connection, client)
        started = time.monotonic()
        with pytest.raises(duckdb.Error) as error:
            connection.sql("SELECT ai_query('sql-label', {'x': 1.0})").fetchall()
        assert time.monotonic() - started < 1
        assert "endpoint 'sql-label' is rate limited" in str(error.value)
        assert "gave up after 0 retries" in str(error.value)
    finally:
        admin.call("PUT", "/api/2.0/serving-endpoints/sql-label/ai-gateway", json={"rate_limits": []})


def test_a_null_request_scores_null_and_is_not_sent(sql: duckdb.DuckDBPyConnection):
    rows = sql.execute(
        "SELECT i, ai_query('sql-label', CASE WHEN i = 1 THEN NULL ELSE {'x': i::DOUBLE} END, "
        "returnType => 'STRUCT<score:DOUBLE>', failOnError => false) AS p FROM range(3) t(i) ORDER BY i"
    ).fetchall()
    assert rows == [
        (0, {"result": {"score": 0.0}, "errorMessage": None}),
        (1, None),
        (2, {"result": {"score": 4.0}, "errorMessage": None}),
    ]


def test_rows_with_awkward_text_travel_intact_in_every_vector(sql: duckdb.DuckDBPyConnection):
    # A vector's rows are joined into the request body in Arrow: text with commas, quotes, braces and
    # non-ASCII characters (ignored by the model, but part of each record) must keep every body valid JSON.
    (total, rows) = sql.execute(
        f"SELECT sum(ai_query('sql-label', {{'x': i::DOUBLE, 'note': 'a,\"b\"}}],é ' || i}}, "
        f"returnType => '{LABEL_SCORE}').score), count(*) FROM range(3000) t(i)"
    ).fetchone()
    assert (total, rows) == (sum(2.0 * i for i in range(3000)), 3000)
