"""`ai_query` on Spark (local mode) against a live backend: Spark SQL with named arguments, and the DataFrame API."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator

import pytest

from rtserve.server.process import BackendProcess
from tests.sql.conftest import requests_served

pytest.importorskip("pyspark", reason="the Spark tests need the 'spark' extra: pip install -e '.[test,spark]'")

from pyspark.errors import PySparkException  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from rtserve.sql.spark import ai_query, register, register_typed  # noqa: E402

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def spark(backend: BackendProcess, label_endpoint: str) -> Iterator[SparkSession]:
    """One local session for the module (a JVM takes 10-15 s to start), with ai_query registered."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors run this Python, with rtserve
    session = (
        SparkSession.builder.master("local[2]")
        .appName("rtserve-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "1000")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    register(session, host=backend.url, token=backend.admin_token)
    session.range(0, 5000, numPartitions=2).selectExpr("CAST(id AS DOUBLE) - 3 AS x").createOrReplaceTempView("rows")
    yield session
    session.stop()


def test_spark_sql_scores_a_struct_of_columns_with_one_request_per_batch(
    spark: SparkSession, backend: BackendProcess, label_endpoint: str
):
    before = requests_served(backend, label_endpoint)
    scored_rows = spark.sql(
        "SELECT x, ai_query('sql-label', named_struct('x', x), returnType => 'STRUCT<label: STRING, score: DOUBLE>', "
        "failOnError => false) AS p FROM rows"
    )
    assert (
        scored_rows.schema["p"].dataType.simpleString()
        == "struct<result:struct<label:string,score:double>,errorMessage:string>"  # the declared type, no cast
    )
    rows = scored_rows.collect()
    assert len(rows) == 5000
    scored = {row.x: row.p for row in rows}
    assert scored[2.0].result.asDict() == {"label": "low", "score": 4.0}
    assert scored[4996.0].result.label == "high" and scored[4996.0].errorMessage is None
    refused = sorted(x for x, p in scored.items() if p.errorMessage is not None)
    assert refused == [-3.0, -2.0, -1.0]
    assert "x must not be negative" in scored[-1.0].errorMessage
    # 5 batches of 1,000 rows; the batch with the refused rows is split (halves) to find them.
    assert 5 <= requests_served(backend, label_endpoint) - before <= 30


def test_a_literal_return_type_is_read_as_spark_reads_the_statement(spark: SparkSession):
    scored = spark.sql(
        """
        SELECT `x`, 'ai_query(''sql-label'', x)' AS text,  -- ai_query('sql-label', x, returnType => 'INT')
               AI_QUERY(endpoint => 'sql-label', request => named_struct('x', x) /* ) ( */,
                        returnType => 'STRUCT<score: DOUBLE>').score AS score
        FROM rows WHERE x BETWEEN :low AND 2 ORDER BY score
        """,
        args={"low": 0},  # spark.sql's own arguments pass through
    )
    assert scored.schema["score"].dataType.simpleString() == "double"
    assert [(row.x, row.text, row.score) for row in scored.collect()] == [
        (0.0, "ai_query('sql-label', x)", 0.0),
        (1.0, "ai_query('sql-label', x)", 2.0),
        (2.0, "ai_query('sql-label', x)", 4.0),
    ]


def test_without_a_return_type_the_result_is_a_variant(spark: SparkSession):
    rows = spark.sql(
        "SELECT ai_query('sql-label', named_struct('x', x)):score::double AS score "
        "FROM rows WHERE x BETWEEN 0 AND 2 ORDER BY score"
    ).collect()
    assert [row.score for row in rows] == [0.0, 2.0, 4.0]


def test_a_bad_return_type_fails_before_any_request(spark: SparkSession, backend: BackendProcess, label_endpoint: str):
    before = requests_served(backend, label_endpoint)
    with pytest.raises(PySparkException, match=r"returnType 'ARRAY<INT' is not a Databricks SQL type"):
        spark.sql("SELECT ai_query('sql-label', named_struct('x', x), returnType => 'ARRAY<INT') FROM rows")
    with pytest.raises(PySparkException, match=r"returnType must be a string literal.* not concat\('DOU', 'BLE'\)"):
        spark.sql("SELECT ai_query('sql-label', named_struct('x', x), returnType => concat('DOU', 'BLE')) FROM rows")
    with pytest.raises(ValueError, match=r"returnType 'STRUCT<>' is not a Databricks SQL type"):
        ai_query("sql-label", F.struct("x"), "STRUCT<>")
    assert requests_served(backend, label_endpoint) == before


def test_an_unknown_endpoint_fails_the_query_naming_it(spark: SparkSession):
    with pytest.raises(PySparkException, match=r"endpoint 'no-such-endpoint' was not found"):
        spark.sql("SELECT ai_query('no-such-endpoint', named_struct('x', x)) FROM rows").collect()


def test_the_dataframe_api_returns_a_column_of_the_return_type(spark: SparkSession, backend: BackendProcess):
    frame = spark.table("rows").where("x BETWEEN 10 AND 11")
    scored = frame.select(
        "x",
        ai_query(
            "sql-label",
            F.struct("x"),
            "STRUCT<label:STRING, score:DOUBLE>",
            host=backend.url,
            token=backend.admin_token,
        ).alias("p"),
    ).orderBy("x")
    assert scored.schema["p"].dataType.simpleString() == "struct<label:string,score:double>"
    assert [(row.x, row.p.label, row.p.score) for row in scored.collect()] == [
        (10.0, "high", 20.0),
        (11.0, "high", 22.0),
    ]
    refused = frame.select(
        ai_query(
            "sql-label",
            F.struct((F.col("x") * -1).alias("x")),
            "DOUBLE",
            failOnError=False,
            host=backend.url,
            token=backend.admin_token,
        ).alias("p")
    ).collect()
    assert all(row.p.result is None and "x must not be negative" in row.p.errorMessage for row in refused)


def test_a_typed_function_returns_the_declared_spark_type(spark: SparkSession, backend: BackendProcess):
    register_typed(
        spark,
        "label_of",
        "sql-label",
        "STRUCT<label:STRING, score:DOUBLE>",
        host=backend.url,
        token=backend.admin_token,
    )
    scored = spark.sql("SELECT x, label_of(named_struct('x', x)) AS p FROM rows WHERE x BETWEEN 1 AND 2 ORDER BY x")
    assert scored.schema["p"].dataType.simpleString() == "struct<label:string,score:double>"  # no cast
    assert [(row.x, row.p.label, row.p.score) for row in scored.collect()] == [(1.0, "low", 2.0), (2.0, "low", 4.0)]
    # A field of the prediction that does not fit the declared type is NULL, as from_json reads it.
    register_typed(
        spark, "label_as_double", "sql-label", "STRUCT<label:DOUBLE>", host=backend.url, token=backend.admin_token
    )
    assert spark.sql("SELECT label_as_double(named_struct('x', x)).label AS s FROM rows WHERE x = 1").first().s is None


def test_a_typed_function_with_fail_on_error_false_gives_each_row_its_error(
    spark: SparkSession, backend: BackendProcess
):
    register_typed(
        spark,
        "score_or_error",
        "sql-label",
        "STRUCT<score:DOUBLE>",
        failOnError=False,
        host=backend.url,
        token=backend.admin_token,
    )
    rows = spark.sql(
        "SELECT x, score_or_error(named_struct('x', x)) AS p FROM rows WHERE x BETWEEN -1 AND 0 ORDER BY x"
    )
    assert rows.schema["p"].dataType.simpleString() == "struct<result:struct<score:double>,errorMessage:string>"
    refused, scored = rows.collect()
    assert refused.p.result is None and "x must not be negative" in refused.p.errorMessage
    assert scored.p.result.score == 0.0 and scored.p.errorMessage is None


def test_a_typed_function_without_return_type_returns_json_text(spark: SparkSession, backend: BackendProcess):
    register_typed(spark, "label_json", "sql-label", host=backend.url, token=backend.admin_token)
    row = spark.sql("SELECT label_json(named_struct('x', x)) AS p FROM rows WHERE x = 2").first()
    assert json.loads(row.p) == {"label": "low", "score": 4.0}
    with pytest.raises(ValueError, match=r"returnType 'MAP<INT>' is not a Databricks SQL type"):
        register_typed(spark, "bad", "sql-label", "MAP<INT>", host=backend.url, token=backend.admin_token)
