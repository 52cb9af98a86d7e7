"""`make bench` (inference tables): scoring throughput with a serving endpoint's inference tables on and off.

One serving endpoint, one Small replica of the demo iris model, load from wrk at 32 connections. Its
payload and usage tables are switched on and off (PUT .../ai-gateway) between interleaved runs, so noise
from other work on the machine hits both alike; each figure is the median of the rounds. Then the backend
stops (which writes what is queued) and the rows of the payload table are counted against the requests
the backend answered while the tables were on (its `request_count_total`).

Prints a table and writes .bench/inference-tables/results.json. Target (issue 14): at most 10% fewer
requests per second with the tables on, no failed request, and as many rows as answered requests.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from deltalake import DeltaTable  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench import procs  # noqa: E402
from bench.one_replica import backend_process, serve_demo_model  # noqa: E402
from bench.wrk import Wrk, WrkResult, available  # noqa: E402
from rtserve.server.demo import request_bodies  # noqa: E402
from rtserve.server.process import BackendProcess  # noqa: E402

TOKEN = "rtsv-bench-tables-token"
MODEL = "iris-bench-tables"
ENDPOINT = "iris-tables"
CONNECTIONS = 32
MAX_SLOWDOWN = 0.10  # the target: at most 10% fewer requests per second with the tables on
TABLES = {
    "inference_table_config": {"catalog_name": "bench", "schema_name": "serving", "table_name_prefix": ENDPOINT},
    "usage_tracking_config": {"enabled": True},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/inference_tables.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs with the tables off, and as many on")
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".bench" / "inference-tables")
    args = parser.parse_args(argv)
    if not available():
        sys.exit("wrk is not installed: apt-get install wrk")
    console = Console(width=None if sys.stdout.isatty() else 140)
    work = args.work_dir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    backend = backend_process(work, TOKEN)
    runs: dict[str, list[WrkResult]] = {"off": [], "on": []}
    answered_on = 0
    wrk = Wrk(json.dumps(request_bodies()["dataframe_split"][1]).encode())
    with console.status("Starting rtserve, registering the demo model, serving it with one Small replica..."):
        backend.start()
    try:
        client = serve_demo_model(backend, TOKEN, MODEL, ENDPOINT)
        url = f"{backend.url}/serving-endpoints/{ENDPOINT}/invocations"
        wrk.run(url, CONNECTIONS, 3, f"Bearer {TOKEN}")  # warm-up
        for round_ in range(args.rounds):
            for mode in ("off", "on"):
                client.call(
                    "PUT", f"/api/2.0/serving-endpoints/{ENDPOINT}/ai-gateway", json=TABLES if mode == "on" else {}
                )
                with console.status(f"Round {round_ + 1}/{args.rounds}, tables {mode}: wrk -c{CONNECTIONS}..."):
                    before = _answered(backend)
                    runs[mode].append(wrk.run(url, CONNECTIONS, args.duration, f"Bearer {TOKEN}"))
                    if mode == "on":
                        answered_on += _answered(backend) - before
        client.close()
    finally:
        wrk.close()
        with console.status("Stopping rtserve (it writes what is queued)..."):
            backend.stop()
    payload = backend.data_dir / "warehouse" / "bench" / "serving" / f"{ENDPOINT}_payload"
    rows = DeltaTable(str(payload)).to_pyarrow_table().num_rows
    usage = DeltaTable(str(backend.data_dir / "warehouse/system/serving/endpoint_usage")).to_pyarrow_table().num_rows
    summary = _summary(runs, answered_on, rows, usage)
    _print(console, summary)
    (work / "results.json").write_text(json.dumps({"machine": procs.machine_info(), **summary}, indent=2))
    console.print(f"Raw figures: {work / 'results.json'}")
    return 0


def _answered(backend: BackendProcess) -> int:
    """Requests the backend has answered on the model (its `request_count_total`)."""
    text = httpx.get(f"{backend.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    match = re.search(rf'^request_count_total\{{model="{MODEL}",version="1"\}} (\S+)$', text, re.M)
    return int(float(match.group(1))) if match else 0


def _summary(runs: dict[str, list[WrkResult]], answered_on: int, rows: int, usage: int) -> dict:
    rps = {mode: statistics.median(run.rps for run in results) for mode, results in runs.items()}
    slowdown = 1 - rps["on"] / rps["off"]
    failed = sum(run.failures for results in runs.values() for run in results)
    return {
        "connections": CONNECTIONS,
        "runs": {mode: [run.as_dict() for run in results] for mode, results in runs.items()},
        "rps": {mode: round(value, 1) for mode, value in rps.items()},
        "slowdown": round(slowdown, 4),
        "failed": failed,
        "answered_with_tables_on": answered_on,
        "payload_rows": rows,
        "usage_rows": usage,
        "targets_met": slowdown <= MAX_SLOWDOWN and failed == 0 and rows == answered_on == usage,
    }


def _print(console: Console, summary: dict) -> None:
    table = Table(title=f"Inference tables, one Small replica, wrk -c{CONNECTIONS} (median of the rounds)")
    for column in ("tables", "req/s", "p50 ms", "p99 ms", "failed"):
        table.add_column(column, justify="right")
    for mode in ("off", "on"):
        results = summary["runs"][mode]
        p50 = statistics.median(r["p50_us"] for r in results) / 1000
        p99 = statistics.median(r["p99_us"] for r in results) / 1000
        failed = sum(r["failures"] for r in results)
        table.add_row(mode, f"{summary['rps'][mode]:.0f}", f"{p50:.1f}", f"{p99:.1f}", str(failed))
    console.print(table)
    console.print(
        f"Tables on: {summary['slowdown']:.1%} fewer requests per second (target at most {MAX_SLOWDOWN:.0%}); "
        f"{summary['answered_with_tables_on']} requests answered with the tables on, "
        f"{summary['payload_rows']} payload rows and {summary['usage_rows']} usage rows written. "
        f"Targets {'met' if summary['targets_met'] else 'NOT met'}."
    )


if __name__ == "__main__":
    raise SystemExit(main())
