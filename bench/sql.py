"""`make bench` (SQL scoring): rows per second through `ai_query`, side by side on this machine.

One serving endpoint with one Small replica of the demo iris model. The same N rows (iris features,
repeated) are scored four ways (Spark twice), in one run:

- in process: the model loaded with `mlflow.pyfunc` and predicted on the whole frame (the floor: no
  HTTP, no JSON, what any serving path can at best approach);
- `ai_query` on DuckDB over a Parquet file (one request per 2,048-row vector), twice: the file in
  one row group (pandas' default for 100,000 rows; DuckDB then scores from one thread, one request
  at a time) and in row groups of 16,384 rows (DuckDB scans them on all its threads, so requests
  overlap);
- `ai_query` on Spark in local mode (`local[2]`, one request per Arrow batch), after a warm-up query,
  with `returnType => 'BIGINT'` (a column of that type, through `spark.sql`'s rewrite) and, for
  comparison, without a returnType, its VARIANT cast (`ai_query(...)::BIGINT`);
- a row-at-a-time loop over REST (one request per row, on a sample of rows: its rate does not depend
  on N), the figure to beat.

Each figure is the best of `--rounds` runs. Prints a table with each path's ratio to the floor and
to the loop, and writes .bench/sql/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench import procs  # noqa: E402
from bench.one_replica import backend_process, serve_demo_model  # noqa: E402
from rtserve.server.demo_model import iris_frame  # noqa: E402
from rtserve.server.process import BackendProcess  # noqa: E402

TOKEN = "rtsv-bench-sql-token"
MODEL = "iris-bench-sql"
ENDPOINT = "iris-sql"
TARGETS = {"duckdb": 150_000, "spark": 30_000}  # rows/s with one Small replica (issue 15)
ROW_GROUP_ROWS = 16_384  # 8 of DuckDB's 2,048-row vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/sql.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows scored by each SQL path")
    parser.add_argument("--loop-rows", type=int, default=300, help="rows of the row-at-a-time sample")
    parser.add_argument("--rounds", type=int, default=3, help="runs per path; the best counts")
    parser.add_argument("--no-spark", action="store_true", help="leave Spark out (it needs the spark extra)")
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".bench" / "sql")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 140)
    work = args.work_dir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    backend = backend_process(work, TOKEN)
    results: dict[str, dict] = {}
    with console.status("Starting rtserve, registering the demo model, serving it with one Small replica..."):
        backend.start()
    try:
        frame = _setup(backend, work, args.rows)
        rows_file = work / "rows.parquet"
        frame.to_parquet(rows_file, index=False)
        grouped_file = work / "rows-grouped.parquet"
        frame.to_parquet(grouped_file, index=False, row_group_size=ROW_GROUP_ROWS)
        paths: list[tuple[str, int, Callable[[], int]]] = [
            ("in process (pyfunc.predict)", args.rows, _in_process(backend, frame)),
            ("ai_query on DuckDB", args.rows, _duckdb(backend, rows_file)),
            (f"ai_query on DuckDB, row groups of {ROW_GROUP_ROWS:,}", args.rows, _duckdb(backend, grouped_file)),
        ]
        if not args.no_spark:
            with console.status("Starting Spark (local[2]) and warming it up..."):
                typed, variant = _spark(backend, rows_file)
            paths.append(("ai_query on Spark local[2]", args.rows, typed))
            paths.append(("Spark local[2], no returnType (VARIANT cast)", args.rows, variant))
        paths.append(("row at a time over REST", args.loop_rows, _row_loop(backend, frame.head(args.loop_rows))))
        for name, rows, run in paths:
            with console.status(f"{name}: {args.rounds} runs of {rows} rows..."):
                seconds = []
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    scored = run()
                    seconds.append(time.perf_counter() - started)
                    assert scored == rows, f"{name} scored {scored} of {rows} rows"
            results[name] = {"rows": rows, "seconds": [round(s, 3) for s in seconds], "rows_per_s": rows / min(seconds)}
    finally:
        with console.status("Stopping rtserve..."):
            backend.stop()
    _print(console, results)
    report = {"machine": procs.machine_info(), "rows": args.rows, "results": results}
    (work / "results.json").write_text(json.dumps(report, indent=2))
    console.print(f"Raw figures: {work / 'results.json'}")
    return 0


def _setup(backend: BackendProcess, work: Path, rows: int):
    import pandas as pd

    serve_demo_model(backend, TOKEN, MODEL, ENDPOINT).close()
    features, _ = iris_frame()
    repeats = -(-rows // len(features))
    return pd.concat([features] * repeats, ignore_index=True).head(rows)


def _in_process(backend: BackendProcess, frame) -> Callable[[], int]:
    import mlflow

    mlflow.set_tracking_uri(backend.url)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/1")
    return lambda: len(model.predict(frame))


def _duckdb(backend: BackendProcess, rows_file: Path) -> Callable[[], int]:
    from rtserve.sql.duckdb import connect

    connection = connect(host=backend.url, token=TOKEN)
    # The whole row (the file holds the model's four feature columns) is the request.
    statement = f"SELECT count(ai_query('{ENDPOINT}', t, returnType => 'BIGINT')) FROM '{rows_file}' t"
    return lambda: connection.execute(statement).fetchone()[0]


def _spark(backend: BackendProcess, rows_file: Path) -> tuple[Callable[[], int], Callable[[], int]]:
    """`ai_query(..., returnType => 'BIGINT')` (typed by `spark.sql`'s rewrite) and `ai_query(...)::BIGINT`
    (no returnType: a VARIANT, cast in SQL)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from rtserve.sql.spark import register

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("rtserve-bench-sql")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    register(spark, host=backend.url, token=TOKEN)
    spark.read.parquet(str(rows_file)).createOrReplaceTempView("rows")
    typed = f"SELECT count(ai_query('{ENDPOINT}', struct(*), returnType => 'BIGINT')) FROM rows"
    variant = f"SELECT count(ai_query('{ENDPOINT}', struct(*))::BIGINT) FROM rows"
    for statement in (typed, variant):
        spark.sql(statement).collect()  # warm-up: Python workers started, the client connected
    return lambda: spark.sql(typed).collect()[0][0], lambda: spark.sql(variant).collect()[0][0]


def _row_loop(backend: BackendProcess, frame) -> Callable[[], int]:
    records = frame.to_dict(orient="records")
    url = f"{backend.url}/serving-endpoints/{ENDPOINT}/invocations"
    http = httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def loop() -> int:
        for record in records:
            http.post(url, json={"dataframe_records": [record]}).raise_for_status()
        return len(records)

    return loop


def _print(console: Console, results: dict[str, dict]) -> None:
    floor = results["in process (pyfunc.predict)"]["rows_per_s"]
    loop = results["row at a time over REST"]["rows_per_s"]
    table = Table("path", "rows", "best s", "rows/s", "of the floor", "x the loop", "target")
    for name, result in results.items():
        rate = result["rows_per_s"]
        target = next((f"≥ {t:,} rows/s" for key, t in TARGETS.items() if key in name.lower()), "")
        if target:
            met = rate >= TARGETS["duckdb" if "duckdb" in name.lower() else "spark"]
            target += " [green]met[/]" if met else " [red]not met[/]"
        table.add_row(
            name,
            f"{result['rows']:,}",
            f"{min(result['seconds']):.2f}",
            f"{rate:,.0f}",
            f"{rate / floor:.0%}",
            f"{rate / loop:,.0f}x",
            target,
        )
    console.print(table)


if __name__ == "__main__":
    raise SystemExit(main())
