"""`ai_query` for SQL: score rows on serving endpoints from DuckDB (`rtserve.sql.duckdb`) and Spark
(`rtserve.sql.spark`), as Databricks SQL's `ai_query` does (docs/sql.md).

A client-side package: it needs httpx and the engine's extra (`rtserve[sql]` or `rtserve[spark]`),
none of the server's dependencies, so it runs wherever the analyst's DuckDB or Spark executors run.
"""
