"""`make bench`: two rtserve backend instances against one, where the gateway is the bottleneck (issue 12, item 7).

The deployment of docs/scale-out.md on this machine (tests/deployment.py): PostgreSQL, an MLflow
server, a two-node Ray cluster and two backends with `--engine ray` on them. The demo model is served
in Production by two replicas (Medium, the autoscaler held at its lower bound) with batching on, so a
request costs a replica little and the gateway (the backend process) is what limits throughput.
One wrk drives the load, alternately at one instance (both its threads on instance a) and at both
(one thread on each, as a load balancer spreading connections would), in interleaved rounds. The
same is done with a request the gateway answers itself (a 404 for a serving endpoint that does not
exist: authentication, routing, the error envelope, no replica), to show the gateway's own ceiling.
During every run the CPU of each group of processes is read from /proc, and the whole machine's
from /proc/stat: on a machine with few cores, two gateways can only serve more than one if the CPU
was not all in use with one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench import procs  # noqa: E402
from bench.run import wait_for_replicas  # noqa: E402
from bench.wrk import Wrk, available  # noqa: E402
from rtserve.server.client import BackendClient  # noqa: E402
from rtserve.server.demo import request_bodies  # noqa: E402
from rtserve.server.process import BackendProcess  # noqa: E402

TOKEN = "rtsv-bench-instances"
MODEL = "iris-instances"
BODY = request_bodies()["dataframe_split"][1]  # two iris rows, as bench/run.py sends
SCORE_PATH = f"/model-endpoint/{MODEL}/Production/invocations"
NOT_FOUND_PATH = "/serving-endpoints/no-such-endpoint/invocations"  # answered by the gateway alone, a 404
REPLICAS = 2  # Medium's lower bound
T = TypeVar("T")
GROUPS = ("wrk", "gateway a", "gateway b", "replicas", "ray", "others", "idle")
OWN = ("wrk", "gateway a", "gateway b", "replicas", "ray")  # the processes of the benchmark itself


@dataclass(frozen=True)
class Request:
    name: str
    path: str
    status: int


REQUESTS = (Request("score (batched)", SCORE_PATH, 200), Request("404 (gateway only)", NOT_FOUND_PATH, 404))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/instances.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measured wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per setup, request and concurrency")
    parser.add_argument("--concurrency", default="32,8", help="wrk connections, comma-separated (even numbers)")
    parser.add_argument("--batch-size", type=int, default=32, help="max_batch_size of the served model")
    parser.add_argument("--batch-wait-ms", type=float, default=2.0, help="max_batch_wait_ms of the served model")
    parser.add_argument(
        "--quick", action="store_true", help="one round of 2 s at c=32 only: the setup and about 20 s of load"
    )
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".bench" / "instances")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.concurrency = 2.0, 1, "32"
    console = Console(width=None if sys.stdout.isatty() else 160)
    if not available():
        console.print("[red]wrk is not installed[/]: `make system-deps` (Debian's wrk package) installs it.")
        return 2
    levels = [int(level) for level in args.concurrency.split(",")]
    if any(level < 2 or level % 2 for level in levels):
        parser.error("--concurrency takes even numbers of 2 or more (the connections are split over two instances)")

    from tests.deployment import running_deployment

    work = args.work_dir
    shutil.rmtree(work, ignore_errors=True)  # a fresh database, registry and cluster every run
    work.mkdir(parents=True)
    machine = procs.machine_info()
    started = time.monotonic()
    runs: list[dict] = []
    # The autoscaler stays at Medium's lower bound: a fixed number of replicas in every run. No warm pool: an actor
    # refilling it imports MLflow for seconds of CPU, which would land in some runs and not others.
    env = {"RTSERVE_UPSCALE_DELAY_SECONDS": "1000000", "RTSERVE_RAY_WARM_ACTORS_PER_NODE": "0"}
    with ExitStack() as stack:
        wrk = Wrk(json.dumps(BODY).encode())
        stack.callback(wrk.close)
        with console.status("Starting PostgreSQL, an MLflow server, a two-node Ray cluster and two backends..."):
            shared = stack.enter_context(running_deployment(work, TOKEN, MODEL, versions=1, env=env))
        a, b = shared.instances
        with console.status(f"Serving {MODEL} with {REPLICAS} replicas, batching on..."):
            _serve(BackendClient(a.url, TOKEN), args)
            _check_answers(a, b)
        meter = Meter(a, b, shared.cluster.leftovers)
        counts = ", ".join(f"{name} {len(pids)}" for name, pids in meter.groups().items())
        console.print(f"Processes metered: {counts}")
        for request in REQUESTS:
            for connections in levels:
                runs += _measure(console, wrk, meter, request, connections, a, b, args)
        console.print("Stopping the backends, the cluster, the registry and PostgreSQL...")
    machine["load average after"] = " ".join(f"{value:.2f}" for value in os.getloadavg())
    results = {
        "machine": machine,
        "command": " ".join(["python bench/instances.py", shlex.join(argv if argv is not None else sys.argv[1:])]),
        "settings": {
            "duration_s": args.duration,
            "rounds": args.rounds,
            "replicas": REPLICAS,
            "max_batch_size": args.batch_size,
            "max_batch_wait_ms": args.batch_wait_ms,
        },
        "elapsed_s": round(time.monotonic() - started, 1),
        "runs": runs,
    }
    (work / "results.json").write_text(json.dumps(results, indent=2))
    _print(console, results, summarize(runs))
    return 0


def _serve(client: BackendClient, args: argparse.Namespace) -> None:
    batching = {"max_batch_size": args.batch_size, "max_batch_wait_ms": args.batch_wait_ms}
    try:
        client.enable(MODEL)
        client.transition(MODEL, "1", "Production")
        client.update_compute(MODEL, "Production", "Medium", **batching)
        client.wait_ready(MODEL, ["1"], timeout=240)
        wait_for_replicas(client, MODEL, "1", REPLICAS)
    finally:
        client.close()


def _check_answers(*instances: BackendProcess) -> None:
    """Every instance answers each request kind as the runs expect (wrk counts statuses only as >= 400)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for instance in instances:
        for request in REQUESTS:
            deadline = time.monotonic() + 30  # a follower routes to the replicas within a tick or two
            while True:
                answer = httpx.post(f"{instance.url}{request.path}", json=BODY, headers=headers, timeout=30)
                if answer.status_code == request.status:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{instance.url}{request.path}: {answer.status_code} {answer.text[:300]}")
                time.sleep(0.5)


class Meter:
    """CPU seconds of each group of processes, and of the whole machine, over one wrk run."""

    def __init__(self, a: BackendProcess, b: BackendProcess, ray_processes: Callable[[], list[int]]) -> None:
        assert a.process is not None and b.process is not None
        self.gateways = {"gateway a": a.process.pid, "gateway b": b.process.pid}
        self.ray_processes = ray_processes

    def groups(self) -> dict[str, list[int]]:
        groups = {name: procs.descendants(pid) for name, pid in self.gateways.items()}
        workers, ray = [], []
        for pid in self.ray_processes():
            try:
                title = psutil.Process(pid).cmdline()
            except psutil.Error:
                continue
            # A Ray worker names itself after the actor it runs (ray::ReplicaActor...); the rest is Ray's own.
            (workers if title and title[0].startswith("ray::ReplicaActor") else ray).append(pid)
        return {**groups, "replicas": workers, "ray": ray}

    def run(self, work: Callable[[], T]) -> tuple[T, dict[str, float], float]:
        """`work()`'s result, the CPU seconds per group (wrk: the children reaped meanwhile) and the seconds taken."""
        meter = procs.CpuMeter(self.groups()).start()
        machine = psutil.cpu_times()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.monotonic()
        result = work()
        elapsed = time.monotonic() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = meter.stop()
        cpu["wrk"] = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
        now = psutil.cpu_times()
        busy = _busy(now) - _busy(machine)
        cpu["others"] = max(0.0, busy - sum(cpu.values()))
        cpu["idle"] = max(0.0, sum(now) - sum(machine) - busy)
        return result, cpu, elapsed


def _busy(times: tuple[float, ...]) -> float:
    """CPU seconds the machine spent on anything but waiting (psutil.cpu_times(): idle and iowait are not work)."""
    return sum(times) - getattr(times, "idle", 0.0) - getattr(times, "iowait", 0.0)


def _measure(
    console: Console,
    wrk: Wrk,
    meter: Meter,
    request: Request,
    connections: int,
    a: BackendProcess,
    b: BackendProcess,
    args: argparse.Namespace,
) -> list[dict]:
    url = f"{a.url}{request.path}"
    both = [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]
    setups: dict[str, list[str]] = {"one instance": [], "two instances": both}
    authorization = f"Bearer {TOKEN}"
    for addresses in setups.values():  # warm-up, not recorded
        wrk.run(url, connections, 1, authorization, addresses)
    runs = []
    for round_index in range(args.rounds):
        for setup, addresses in setups.items():
            console.print(f"  {request.name:<20} {setup:<14} c={connections:<3} round {round_index + 1}", end=" ")
            result, cpu, elapsed = meter.run(
                lambda addresses=addresses: wrk.run(url, connections, args.duration, authorization, addresses)
            )
            figures = result.as_dict()
            unexpected = figures["failures"] - (figures["status_errors"] if request.status >= 400 else 0)
            console.print(f"{figures['rps']:8.1f} req/s  p50 {figures['p50_us'] / 1000:6.2f} ms  failed {unexpected}")
            runs.append(
                {
                    "request": request.name,
                    "setup": setup,
                    "connections": connections,
                    "round": round_index,
                    **figures,
                    "unexpected_failures": unexpected,
                    "cores": {name: round(seconds / elapsed, 3) for name, seconds in cpu.items()},
                }
            )
    return runs


def summarize(runs: list[dict]) -> list[dict]:
    """The median of the rounds per request, concurrency and setup, with the ratio of two instances to one."""
    rows = []
    keys = sorted({(run["request"], run["connections"]) for run in runs}, key=lambda key: (key[0], -key[1]))
    for name, connections in keys:
        one_rps = None
        for setup in ("one instance", "two instances"):
            group = [r for r in runs if (r["request"], r["connections"], r["setup"]) == (name, connections, setup)]
            rps = statistics.median(r["rps"] for r in group)
            cores = {g: statistics.median(r["cores"].get(g, 0.0) for r in group) for g in GROUPS}
            own = sum(cores[g] for g in OWN)
            row = {
                "request": name,
                "connections": connections,
                "setup": setup,
                "rps": rps,
                "rps_range": (min(r["rps"] for r in group), max(r["rps"] for r in group)),
                "p50_ms": statistics.median(r["p50_us"] for r in group) / 1000,
                "p99_ms": statistics.median(r["p99_us"] for r in group) / 1000,
                "failed": sum(r["unexpected_failures"] for r in group),
                "cores": cores,
                "gateway_ms": 1000 * (cores["gateway a"] + cores["gateway b"]) / rps if rps else None,
                "own_ms": 1000 * own / rps if rps else None,
                "ratio": None if one_rps is None else rps / one_rps,
            }
            if one_rps is None:
                one_rps = rps
                # A second gateway adds throughput only with CPU that one instance left idle (the CPU a request
                # costs does not shrink): at most (own + idle) / own times as much, unless other work yields some.
                row["ceiling"] = (own + cores["idle"]) / own if own else None
            rows.append(row)
    return rows


def _print(console: Console, results: dict, rows: list[dict]) -> None:
    machine = "; ".join(f"{key}: {value}" for key, value in results["machine"].items())
    console.print(f"\nMachine: {machine}\nCommand: {results['command']} ({results['elapsed_s']} s)")
    table = Table(title="One rtserve instance against two (one wrk, connections split evenly)")
    for column in ("request", "c", "instances", "req/s (range)", "x one", "p50 ms", "p99 ms", "failed"):
        table.add_column(column)
    table.add_column("CPU cores: " + " / ".join(GROUPS))
    table.add_column("CPU ms/req: gateways, all")
    table.add_column("ceiling from idle CPU")
    for row in rows:
        low, high = row["rps_range"]
        ceiling = row.get("ceiling")
        table.add_row(
            row["request"],
            str(row["connections"]),
            row["setup"].split()[0],
            f"{row['rps']:.0f} ({low:.0f}-{high:.0f})",
            "" if row["ratio"] is None else f"{row['ratio']:.2f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            str(row["failed"]),
            " / ".join(f"{row['cores'][group]:.2f}" for group in GROUPS),
            f"{row['gateway_ms']:.2f}, {row['own_ms']:.2f}" if row["own_ms"] is not None else "",
            "" if ceiling is None else f"{ceiling:.2f}x",
        )
    console.print(table)
    console.print(
        "CPU cores: CPU seconds per second of run (medians of the rounds) of wrk, each backend with its children, the "
        "replica actors, Ray's other processes, every other process of the machine (PostgreSQL, the MLflow server, "
        "other work) and idle. CPU ms/req: the gateways' CPU, and that of all the bench's processes, per request. "
        "Ceiling from idle CPU: (own + idle) / own cores with one instance, the most two instances can serve "
        "if each request costs the same CPU and other work gives none up.\n"
    )


if __name__ == "__main__":
    sys.exit(main())
