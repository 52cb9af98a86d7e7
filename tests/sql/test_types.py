"""The returnType translator: Databricks' SQL types into DuckDB's, and clear errors for anything else."""

from __future__ import annotations

import pytest

from rtserve.sql.types import ReturnTypeError, to_duckdb

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("databricks", "duckdb"),
    [
        ("STRING", "VARCHAR"),
        ("double", "DOUBLE"),
        ("BIGINT", "BIGINT"),
        ("LONG", "BIGINT"),
        ("INT", "INTEGER"),
        ("BOOLEAN", "BOOLEAN"),
        ("VARCHAR(20)", "VARCHAR"),
        ("DECIMAL", "DECIMAL(10,0)"),
        ("DECIMAL(12, 4)", "DECIMAL(12,4)"),
        ("TIMESTAMP", "TIMESTAMPTZ"),
        ("TIMESTAMP_NTZ", "TIMESTAMP"),
        ("BINARY", "BLOB"),
        ("ARRAY<DOUBLE>", "DOUBLE[]"),
        ("MAP<STRING, DOUBLE>", "MAP(VARCHAR, DOUBLE)"),
        ("STRUCT<label:STRING, score:DOUBLE>", 'STRUCT("label" VARCHAR, "score" DOUBLE)'),
        ("STRUCT<label STRING, score DOUBLE>", 'STRUCT("label" VARCHAR, "score" DOUBLE)'),
        ("struct<`odd name`: array<int>>", 'STRUCT("odd name" INTEGER[])'),
        ("ARRAY<STRUCT<p:ARRAY<FLOAT>>>", 'STRUCT("p" FLOAT[])[]'),
    ],
)
def test_databricks_types_become_duckdb_types(databricks: str, duckdb: str):
    assert to_duckdb(databricks) == duckdb


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "it is empty"),
        ("FOO", "unknown type 'FOO'"),
        ("ARRAY<INT", "it ends where '>' was expected"),
        ("STRUCT<a:INT> extra", "unexpected 'extra' after the type"),
        ("STRUCT<>", "a STRUCT needs at least one field"),
        ("MAP<STRING>", "expected ',', found '>'"),
        ("DECIMAL(40,2)", "DECIMAL(40,2) needs 1 <= precision <= 38"),
        ("STRUCT(a INT)", "expected '<', found '('"),
        ("DOUBLE;", "unexpected ';'"),
    ],
)
def test_anything_else_is_refused_with_the_type_and_the_reason(text: str, reason: str):
    with pytest.raises(ReturnTypeError) as error:
        to_duckdb(text)
    assert f"returnType {text!r} is not a Databricks SQL type: {reason}" in str(error.value)
    assert "STRUCT<label:STRING, score:DOUBLE>" in str(error.value)  # an example of what would do
