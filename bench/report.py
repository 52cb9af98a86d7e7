"""Turn the raw runs of bench/run.py into figures: a Rich table, and the results section of docs/benchmarks.md."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

START = "<!-- bench-results:start -->"
END = "<!-- bench-results:end -->"


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Medians (and ranges) per server and concurrency, ratios against MLflow, and the targets."""
    groups: dict[tuple[int, int, str], list[dict]] = {}
    order: list[str] = []
    for run in results["runs"]:
        if run["kind"] != "load":
            continue
        groups.setdefault((run["workers"], run["connections"], run["server"]), []).append(run)
        if run["server"] not in order:
            order.append(run["server"])
    rows = []
    for (workers, connections, server), runs in sorted(
        groups.items(), key=lambda item: (item[0][0], item[0][1], order.index(item[0][2]))
    ):
        rps = [run["rps"] for run in runs]
        requests = sum(run["requests"] for run in runs)
        cpu = {}
        for run in runs:
            for name, seconds in run["cpu_s"].items():
                cpu[name] = cpu.get(name, 0.0) + seconds
        rows.append(
            {
                "workers": workers,
                "connections": connections,
                "server": server,
                "rps": statistics.median(rps),
                "rps_min": min(rps),
                "rps_max": max(rps),
                "p50_ms": statistics.median(run["p50_us"] for run in runs) / 1000,
                "p99_ms": statistics.median(run["p99_us"] for run in runs) / 1000,
                "failures": sum(run["failures"] for run in runs),
                "cpu_ms_per_request": {name: 1000 * seconds / max(1, requests) for name, seconds in cpu.items()},
            }
        )
    peers = {(row["workers"], row["connections"]): row for row in rows if row["server"].startswith("mlflow")}
    for row in rows:
        peer = peers.get((row["workers"], row["connections"]))
        row["ratio"] = row["rps"] / peer["rps"] if peer and peer["rps"] else None
        row["p50_vs_peer"] = row["p50_ms"] / peer["p50_ms"] if peer and peer["p50_ms"] else None
    peer_starts = {run["workers"]: run["seconds"] for run in results["runs"] if run["kind"] == "peer-start"}
    summary = {**results, "rows": rows, "peer_starts": peer_starts}
    summary["targets"] = _targets(summary)
    return summary


def _find(rows: list[dict], workers: int, connections: int, batched: bool, ray: bool = False) -> dict | None:
    for row in rows:
        is_rtserve = row["server"].startswith("rtserve")
        if is_rtserve and row["workers"] == workers and row["connections"] == connections:
            if row["server"].endswith("batched") == batched and row["server"].endswith(" ray") == ray:
                return row
    return None


def _targets(summary: dict[str, Any]) -> list[dict]:
    rows, targets = summary["rows"], []
    for workers in sorted({row["workers"] for row in rows}):
        for batched, ray, goal in ((True, False, 5.0), (False, False, 2.0), (False, True, 2.0)):
            row = _find(rows, workers, 32, batched, ray)
            if row is not None and row["ratio"] is not None:
                label = ("on" if batched else "off") + (", Ray engine" if ray else "")
                targets.append(
                    {
                        "target": f"throughput at c=32, {workers} worker(s), batching {label}: >= {goal:g}x MLflow",
                        "measured": f"{row['ratio']:.2f}x ({row['rps']:.0f} vs {row['rps'] / row['ratio']:.0f} req/s)",
                        "met": row["ratio"] >= goal,
                    }
                )
        row = _find(rows, workers, 1, False)
        if row is not None and row["p50_vs_peer"] is not None:
            peer_p50 = row["p50_ms"] / row["p50_vs_peer"]
            targets.append(
                {
                    "target": f"p50 at c=1, {workers} worker(s), batching off: no worse than MLflow",
                    "measured": f"{row['p50_ms']:.2f} ms vs {peer_p50:.2f} ms",
                    "met": row["p50_ms"] <= peer_p50,
                }
            )
        on_ray = _find(rows, workers, 1, False, ray=True)
        if row is not None and on_ray is not None:
            added = on_ray["p50_ms"] - row["p50_ms"]
            targets.append(
                {
                    "target": f"p50 at c=1, {workers} worker(s): the Ray engine adds at most 1.5 ms over the local one",
                    "measured": f"{added:+.2f} ms ({on_ray['p50_ms']:.2f} vs {row['p50_ms']:.2f} ms)",
                    "met": added <= 1.5,
                }
            )
    promotion = summary.get("promotion") or {}
    if promotion:
        targets.append(
            {
                "target": "failed requests during a Production promotion under load: 0",
                "measured": f"{promotion['failures']} of {promotion['requests']}",
                "met": promotion["failures"] == 0,
            }
        )
    for key, engine in (("cold_start", ""), ("ray_cold_start", ", Ray engine")):
        cold = summary.get(key) or {}
        if cold.get("seconds"):
            worst = max(cold["seconds"])
            targets.append(
                {
                    "target": f"cold start (request finding zero replicas, answered) under 1 s{engine}",
                    "measured": f"median {statistics.median(cold['seconds']) * 1000:.0f} ms, "
                    f"worst {worst * 1000:.0f} ms",
                    "met": worst < 1.0 and not cold.get("failures"),
                }
            )
    return targets


def _cpu(row: dict) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in row["cpu_ms_per_request"].items())


def print_tables(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title="rtserve vs mlflow models serve (same model, body and worker processes)")
    for column in ("workers", "c", "server", "req/s (range)", "x MLflow", "p50 ms", "p99 ms", "failed", "CPU ms/req"):
        table.add_column(column, justify="left" if column in ("server", "CPU ms/req") else "right")
    previous = None
    for row in summary["rows"]:
        if previous is not None and (row["workers"], row["connections"]) != previous:
            table.add_section()
        previous = (row["workers"], row["connections"])
        table.add_row(
            str(row["workers"]),
            str(row["connections"]),
            row["server"],
            f"{row['rps']:.0f} ({row['rps_min']:.0f}-{row['rps_max']:.0f})",
            "" if row["server"].startswith("mlflow") or row["ratio"] is None else f"{row['ratio']:.2f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            str(row["failures"]),
            _cpu(row),
        )
    console.print(table)
    targets = Table(title="Targets of issue 3")
    for column in ("target", "measured", "met"):
        targets.add_column(column)
    for target in summary["targets"]:
        targets.add_row(target["target"], target["measured"], "[green]yes[/]" if target["met"] else "[red]no[/]")
    console.print(targets)
    for note in summary.get("notes", []):
        console.print(f"[yellow]note:[/] {note}")


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"_Generated by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{summary['settings'].get('elapsed_s', 0):.0f} s; rerun it to refresh this section._",
        "",
        "Machine: " + "; ".join(f"{key}: {value}" for key, value in summary["machine"].items()) + ".",
        "",
        f"Command: `make bench` (`{summary['command']}`). Each wrk run lasts {summary['settings']['duration_s']:g} s; "
        f"{summary['settings']['rounds']} interleaved rounds per server and concurrency; figures are medians, "
        f"req/s with the range of the rounds. Batched server: max_batch_size "
        f"{summary['settings']['max_batch_size']}, max_batch_wait_ms {summary['settings']['max_batch_wait_ms']:g}.",
        "",
        "### Throughput and latency",
        "",
        "| workers | concurrency | server | req/s (range) | x MLflow | p50 ms | p99 ms | failed | CPU ms per request |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in summary["rows"]:
        ratio = "" if row["server"].startswith("mlflow") or row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(
            f"| {row['workers']} | {row['connections']} | {row['server']} | {row['rps']:.0f} "
            f"({row['rps_min']:.0f}-{row['rps_max']:.0f}) | {ratio} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
            f"| {row['failures']} | {_cpu(row)} |"
        )
    lines += ["", "### Targets (issue 3)", "", "| target | measured | met |", "|---|---|---|"]
    for target in summary["targets"]:
        lines.append(f"| {target['target']} | {target['measured']} | {'yes' if target['met'] else '**no**'} |")
    colds = [summary.get(key) for key in ("cold_start", "ray_cold_start") if summary.get(key)]
    if colds:
        lines += ["", "### Cold start", ""]
    for cold in colds:
        times = ", ".join(f"{value * 1000:.0f} ms" for value in cold.get("seconds", [])) or "not measured"
        lines.append(f"{cold['what']}: {times}.")
        if cold.get("failures"):
            lines.append(f"Failed: {'; '.join(cold['failures'])}.")
    if summary.get("peer_starts"):
        starts = ", ".join(f"-w {workers}: {seconds:.1f} s" for workers, seconds in summary["peer_starts"].items())
        lines.append(f"For comparison, `mlflow models serve` from launch to its first answer: {starts}.")
    promotion = summary.get("promotion") or {}
    if promotion:
        switch = promotion["switch_seconds"]
        moved = f"{switch:.1f} s after the transition" if switch is not None else "not within the run"
        lines += [
            "",
            "### Promotion under load",
            "",
            f"wrk with {promotion['connections']} connections on the Production URL for "
            f"{promotion['duration_s']:g} s while version 2 was transitioned to Production with "
            f"archive_existing_versions=true: {promotion['requests']} requests, {promotion['failures']} failed "
            f"(non-2xx {promotion['non_2xx']}), p99 {promotion['p99_ms']:.1f} ms; the Production URL moved to "
            f"version 2 {moved} "
            f"(answered by `{promotion['served_by_after']}` afterwards).",
        ]
    if summary.get("notes"):
        lines += ["", "### Notes", ""] + [f"- {note}" for note in summary["notes"]]
    return "\n".join(lines)


def write_docs(path: Path, summary: dict[str, Any]) -> None:
    """Replace what lies between the markers of `path` with the figures (the markers are appended if missing)."""
    section = f"{START}\n{markdown(summary)}\n{END}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n## Results\n\n" + section + "\n"
    path.write_text(text)
