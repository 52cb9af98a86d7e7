"""`rtserve sql "SELECT ..."`: one statement on DuckDB with `ai_query`, shown as a table or written to a file."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rtserve.sql.duckdb import register
from rtserve.sql.scoring import AiQueryError, EndpointClient

OUTPUT_FORMATS = (".parquet", ".csv")
PROGRESS_AFTER_SECONDS = 0.5  # a quick statement shows no bar
# DuckDB's wrapping of an exception raised in a Python function: the message after it is ours.
UDF_PREFIX = re.compile(r"^.*?Python exception occurred while executing the UDF: \w+: ", re.S)


class SqlError(Exception):
    """A statement that cannot run, with the message to show."""


def run_statement(
    statement: str,
    *,
    database: str = ":memory:",
    client_options: dict[str, Any] | None = None,
    progress_console: Console | None = None,
) -> pa.Table | None:
    """Run `statement` with `ai_query` defined; its rows, or None for a statement without any (DDL, COPY)."""
    connection = duckdb.connect(database)
    # DuckDB tracks a statement's progress only with its bar on; this command draws the bar itself.
    connection.execute("SET enable_progress_bar = true")
    connection.execute("SET enable_progress_bar_print = false")
    try:
        try:
            register(connection, EndpointClient(**(client_options or {})))
        except AiQueryError as exc:
            if "ai_query" in statement.lower():
                raise SqlError(str(exc)) from None
            # Reading files needs no server: without RTSERVE_HOST the statement runs without ai_query.
        return _execute(connection, statement, progress_console)
    except duckdb.Error as exc:
        raise SqlError(UDF_PREFIX.sub("", str(exc))) from None
    finally:
        connection.close()


def _execute(connection: duckdb.DuckDBPyConnection, statement: str, console: Console | None) -> pa.Table | None:
    """Execute in a thread while this one polls DuckDB's progress for the bar of a long statement."""
    outcome: dict[str, Any] = {}

    def execute() -> None:
        try:
            relation = connection.sql(statement)  # None for a statement without rows (DDL, COPY ... TO)
            outcome["table"] = None if relation is None else relation.to_arrow_table()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=execute, name="rtserve-sql", daemon=True)
    worker.start()
    worker.join(PROGRESS_AFTER_SECONDS)
    if worker.is_alive() and console is not None and console.is_terminal:
        columns = (TextColumn("running"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("sql", total=100)
            while worker.is_alive():
                done = connection.query_progress()
                if done >= 0:  # -1: DuckDB cannot tell yet
                    progress.update(task, completed=done)
                worker.join(0.1)
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["table"]


def check_output(path: Path) -> None:
    """Refuse an output path of an unknown format before the statement runs (and scores)."""
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise SqlError(f"--output {path}: the file name must end in {' or '.join(OUTPUT_FORMATS)}.")


def write(table: pa.Table, path: Path) -> None:
    """Written by DuckDB, as its COPY would: a CSV holds nested values (structs, lists) as text."""
    with duckdb.connect() as connection:
        rows = connection.from_arrow(table)
        if path.suffix.lower() == ".parquet":
            rows.write_parquet(str(path))
        else:
            rows.write_csv(str(path), header=True)


def render(table: pa.Table, max_rows: int) -> Table:
    """The first `max_rows` rows as a Rich table."""
    shown = table.slice(0, max_rows)
    view = Table(*shown.column_names)
    for row in zip(*(column.to_pylist() for column in shown.columns), strict=True):
        view.add_row(*("NULL" if value is None else str(value) for value in row))
    return view


def summary(table: pa.Table, max_rows: int) -> str:
    return f"{table.num_rows} rows" + (f", the first {max_rows} shown" if table.num_rows > max_rows else "")
