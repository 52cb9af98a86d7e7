"""`make bench`: rtserve against `mlflow models serve --env-manager local`, side by side on this machine.

Same model (the demo iris LogisticRegression), same request body, same number of worker processes
(rtserve Small = 1 replica against `-w 1`, Medium = 2 replicas against `-w 2`; rtserve's autoscaler
is held at the lower bound so the replica counts stay fixed). Load comes from wrk, with runs of the
servers interleaved so that noise from other work on the machine hits every server alike; each
figure is the median of the rounds, with the range next to it. Then: the cold start of a version
scaled to zero, and the failed requests while version 2 is promoted to Production under load.
With `--ray`, the same model also runs on a backend with `--engine ray` (`bench/ray_rows.py`): its
rows join the interleaved runs (same replica count as the local engine), and its cold start from
zero is timed the same way.

Prints a table and rewrites the results section of docs/benchmarks.md (between its markers);
the raw figures go to .bench/results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402

from bench import procs, ray_rows, report  # noqa: E402
from bench.peers import MlflowServe  # noqa: E402
from bench.wrk import Wrk, WrkResult, available  # noqa: E402
from rtserve.server.client import BackendClient  # noqa: E402
from rtserve.server.demo import request_bodies  # noqa: E402
from rtserve.server.demo_model import register_demo_model  # noqa: E402
from rtserve.server.process import BackendProcess  # noqa: E402

TOKEN = "rtsv-bench-admin-token"
MODEL = "iris-bench"  # batching off; version 2 is what gets promoted
BATCHED = "iris-bench-batched"  # the same model (same training, same data), served with batching on
COLD = "iris-bench-cold"  # scale to zero on, for cold starts
BODY = request_bodies()["dataframe_split"][1]  # two iris rows, MLflow's dataframe_split format
IDLE_SECONDS = 3.0
# Between the Ray engine's cold starts: a warm actor taken by one is replaced in 6-14 s on this machine, and a real
# idle period (minutes) is longer than that; with IDLE_SECONDS alone the third start would find the pool empty.
RAY_POOL_REFILL_SECONDS = 15.0


@dataclass
class Target:
    name: str
    url: str
    authorization: str
    cpu_groups: Callable[[], dict[str, list[int]]]


@dataclass
class Results:
    machine: dict[str, str]
    settings: dict[str, object]
    command: str
    runs: list[dict] = field(default_factory=list)  # one per wrk run
    cold_start: dict = field(default_factory=dict)
    ray_cold_start: dict = field(default_factory=dict)
    promotion: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measured wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per server and concurrency")
    parser.add_argument("--concurrency", default="1,8,32", help="wrk connections, comma-separated")
    parser.add_argument("--workers", default="1,2", help="worker processes per server, comma-separated (1 or 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="max_batch_size of the batched server")
    parser.add_argument("--batch-wait-ms", type=float, default=2.0, help="max_batch_wait_ms of the batched server")
    parser.add_argument("--cold-starts", type=int, default=3, help="cold starts to time")
    parser.add_argument("--ray", action="store_true", help="also serve the model with --engine ray on a local cluster")
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".bench")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md", help="'-' to skip")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    if not available():
        console.print("[red]wrk is not installed[/]: `make system-deps` (Debian's wrk package) installs it.")
        return 2
    levels = [int(level) for level in args.concurrency.split(",")]
    worker_counts = [int(count) for count in args.workers.split(",")]
    if not set(worker_counts) <= {1, 2}:
        parser.error("--workers takes 1 and/or 2 (rtserve's Small and Medium sizes)")

    work = args.work_dir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results = Results(
        machine=procs.machine_info(),
        settings={
            "duration_s": args.duration,
            "rounds": args.rounds,
            "concurrency": levels,
            "max_batch_size": args.batch_size,
            "max_batch_wait_ms": args.batch_wait_ms,
            "body": json.dumps(BODY),
        },
        command=" ".join(["python bench/run.py", shlex.join(argv if argv is not None else sys.argv[1:])]).strip(),
    )
    started = time.monotonic()
    # The autoscaler stays at the size's lower bound (Small 1, Medium 2): a fixed number of workers.
    env = {"RTSERVE_UPSCALE_DELAY_SECONDS": "1000000", "RTSERVE_SCALE_TO_ZERO_IDLE_SECONDS": str(IDLE_SECONDS)}
    backend = BackendProcess(work / "state", admin_token=TOKEN, env=env, log_path=work / "backend.log")
    with console.status("Starting rtserve and registering the demo model..."):
        backend.start()
        client = BackendClient(backend.url, TOKEN)
        model_dir = _setup_models(backend, client, work, args)
    wrk = Wrk(json.dumps(BODY).encode())
    stack = contextlib.ExitStack()
    try:
        on_ray = None
        if args.ray:
            with console.status("Starting a two-node Ray cluster and rtserve --engine ray..."):
                on_ray = stack.enter_context(ray_rows.ray_backend(work, TOKEN, env, MODEL, COLD))
        for workers in worker_counts:
            _throughput_phase(console, results, backend, client, wrk, model_dir, work, workers, levels, args, on_ray)
        results.cold_start = _cold_start_phase(console, results, client, args.cold_starts)
        if on_ray is not None:
            results.ray_cold_start = _cold_start_phase(
                console, results, on_ray[1], args.cold_starts, "Ray: ", settle=RAY_POOL_REFILL_SECONDS
            )
            stack.close()
        _promotion_phase(console, results, backend, client, wrk)
    finally:
        stack.close()
        wrk.close()
        client.close()
        with console.status("Stopping rtserve..."):
            backend.stop()
    results.settings["elapsed_s"] = round(time.monotonic() - started, 1)
    results.machine["load average after"] = " ".join(f"{value:.2f}" for value in os.getloadavg())
    (work / "results.json").write_text(json.dumps(results.__dict__, indent=2))
    summary = report.summarize(results.__dict__)
    report.print_tables(console, summary)
    if str(args.docs) != "-":
        report.write_docs(args.docs, summary)
        console.print(f"Results written to {args.docs} and {work / 'results.json'}")
    return 0


def _setup_models(backend: BackendProcess, client: BackendClient, work: Path, args: argparse.Namespace) -> Path:
    import mlflow

    os.environ["MLFLOW_TRACKING_TOKEN"] = TOKEN
    register_demo_model(backend.url, name=MODEL, versions=2)
    register_demo_model(backend.url, name=BATCHED, versions=1)
    register_demo_model(backend.url, name=COLD, versions=1)
    for model in (MODEL, BATCHED, COLD):
        client.enable(model)
        client.transition(model, "1", "Production")
    batching = {"max_batch_size": args.batch_size, "max_batch_wait_ms": args.batch_wait_ms}
    client.update_compute(BATCHED, "Production", "Small", **batching)
    client.update_compute(COLD, "Production", "Small", scale_to_zero=True)
    for model in (MODEL, BATCHED, COLD):
        client.wait_ready(model, ["1"], timeout=180)
    mlflow.set_tracking_uri(backend.url)
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{MODEL}/1", dst_path=str(work / "model"))
    return Path(local)


def _rtserve_target(backend: BackendProcess, name: str, model: str) -> Target:
    assert backend.process is not None
    pid = backend.process.pid

    def groups() -> dict[str, list[int]]:
        return {"gateway": [pid], "replicas": [p for p in procs.descendants(pid) if p != pid]}

    url = f"{backend.url}/model-endpoint/{model}/Production/invocations"
    return Target(name, url, f"Bearer {TOKEN}", groups)


def _throughput_phase(
    console: Console,
    results: Results,
    backend: BackendProcess,
    client: BackendClient,
    wrk: Wrk,
    model_dir: Path,
    work: Path,
    workers: int,
    levels: list[int],
    args: argparse.Namespace,
    on_ray: tuple[BackendProcess, BackendClient, Callable[[], list[int]]] | None,
) -> None:
    size = {1: "Small", 2: "Medium"}[workers]
    batching = {"max_batch_size": args.batch_size, "max_batch_wait_ms": args.batch_wait_ms}
    with console.status(f"rtserve {size}: waiting for {workers} replica(s) per version..."):
        client.update_compute(MODEL, "Production", size)
        client.update_compute(BATCHED, "Production", size, **batching)
        client.wait_ready(MODEL, ["1"], timeout=180)
        client.wait_ready(BATCHED, ["1"], timeout=180)
        for model in (MODEL, BATCHED):
            wait_for_replicas(client, model, "1", workers)
        if on_ray is not None:
            on_ray[1].update_compute(MODEL, "Production", size)
            wait_for_replicas(on_ray[1], MODEL, "1", workers)
    with console.status(f"Starting mlflow models serve -w {workers}..."):
        peer_started = time.monotonic()
        peer = MlflowServe(model_dir, workers, work / f"mlflow-w{workers}.log").start()
        first = httpx.post(f"{peer.url}/invocations", json=BODY, timeout=30)
        assert first.status_code == 200, first.text
        results.runs.append(
            {"kind": "peer-start", "workers": workers, "seconds": round(time.monotonic() - peer_started, 2)}
        )
    try:
        assert peer.process is not None
        peer_pid = peer.process.pid
        targets = [
            Target(
                f"mlflow -w {workers}", f"{peer.url}/invocations", "", lambda: {"mlflow": procs.descendants(peer_pid)}
            ),
            _rtserve_target(backend, f"rtserve {size}", MODEL),
            _rtserve_target(backend, f"rtserve {size} batched", BATCHED),
        ]
        if on_ray is not None:  # the replicas are Ray's processes, not the backend's: metered as the cluster's actors
            ray_pid = on_ray[0].process.pid if on_ray[0].process is not None else 0
            url = f"{on_ray[0].url}/model-endpoint/{MODEL}/Production/invocations"
            actors = on_ray[2]
            targets.append(
                Target(
                    f"rtserve {size} ray", url, f"Bearer {TOKEN}", lambda: {"gateway": [ray_pid], "replicas": actors()}
                )
            )
        for connections in levels:
            for target in targets:  # warm-up, not recorded
                wrk.run(target.url, connections, 1, target.authorization)
            for round_index in range(args.rounds):
                for target in targets:
                    console.print(
                        f"  {target.name:<24} c={connections:<3} round {round_index + 1}/{args.rounds}", end=" "
                    )
                    meter = procs.CpuMeter(target.cpu_groups()).start()
                    result = wrk.run(target.url, connections, args.duration, target.authorization)
                    cpu = meter.stop()
                    console.print(
                        f"{result.rps:8.1f} req/s  p50 {result.p50_us / 1000:6.2f} ms  failed {result.failures}"
                    )
                    results.runs.append(
                        {
                            "kind": "load",
                            "server": target.name,
                            "workers": workers,
                            "connections": connections,
                            "round": round_index,
                            **result.as_dict(),
                            "cpu_s": {name: round(value, 3) for name, value in cpu.items()},
                        }
                    )
    finally:
        peer.stop()


def wait_for_replicas(client: BackendClient, model: str, version: str, count: int, timeout: float = 120.0) -> None:
    """Until `model` version `version` has exactly `count` replicas, every one READY."""
    deadline = time.monotonic() + timeout
    while True:
        states = [r["last_known_status"] for r in client.replicas(model, version)]
        if states.count("READY") == count and len(states) == count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{model} v{version}: wanted {count} READY replicas, have {states}")
        time.sleep(0.2)


def _cold_start_phase(
    console: Console, results: Results, client: BackendClient, trials: int, label: str = "", settle: float = 0.0
) -> dict[str, object]:
    """A request that finds the version scaled to zero: how long until it is answered (`settle` s after the last)."""
    timings, failures = [], []
    for trial in range(trials):
        with console.status(f"{label}Cold start {trial + 1}/{trials}: waiting for {COLD} to scale to zero..."):
            try:
                _wait_for_zero(client, COLD, "1", timeout=IDLE_SECONDS + 30)
            except TimeoutError as exc:
                results.notes.append(f"{label}Cold start not measured: {exc}")
                break
            time.sleep(max(0.5, settle if trial else 0.0))  # nothing in flight, nothing starting: a cold version
            started = time.perf_counter()
            response = client.score(COLD, "Production", BODY)
            elapsed = time.perf_counter() - started
        if response.status_code == 200:
            timings.append(elapsed)
        else:
            failures.append(f"{response.status_code} {response.text[:200]}")
        console.print(f"  {label}cold start {trial + 1}: {elapsed * 1000:.0f} ms (status {response.status_code})")
        if trial + 1 < trials:
            time.sleep(0.2)
    return {
        "what": f"{label}request to a Production version scaled to zero (no replica running) until answered",
        "idle_seconds": IDLE_SECONDS,
        "settle_seconds": settle,
        "seconds": [round(value, 3) for value in timings],
        "failures": failures,
    }


def _wait_for_zero(client: BackendClient, model: str, version: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        live = [r for r in client.replicas(model, version) if r["last_known_status"] in ("STARTING", "READY")]
        if not live:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{model} v{version} still has {len(live)} replica(s) after {timeout:g} s")
        time.sleep(0.1)


def _promotion_phase(
    console: Console, results: Results, backend: BackendProcess, client: BackendClient, wrk: Wrk
) -> None:
    """Version 2 into Production (archiving version 1) while wrk keeps the Production URL busy."""
    target = _rtserve_target(backend, "rtserve", MODEL)
    connections, duration = 8, 12.0
    outcome: dict[str, WrkResult] = {}
    load = threading.Thread(
        target=lambda: outcome.setdefault("wrk", wrk.run(target.url, connections, duration, target.authorization))
    )
    with console.status("Promoting version 2 to Production under load..."):
        load.start()
        time.sleep(2.0)
        transitioned = time.monotonic()
        client.transition(MODEL, "2", "Production", archive=True, comment="bench: promote version 2")
        switched = None
        while time.monotonic() - transitioned < duration - 3:
            if client.aliases(MODEL).get("Production") == "2":
                switched = time.monotonic() - transitioned
                break
            time.sleep(0.05)
        load.join()
    served_by = client.score(MODEL, "Production", BODY).headers.get("served-model-name")
    result = outcome["wrk"]
    results.promotion = {
        "connections": connections,
        "duration_s": duration,
        "requests": result.requests,
        "failures": result.failures,
        "non_2xx": result.status_errors,
        "switch_seconds": None if switched is None else round(switched, 2),
        "served_by_after": served_by,
        "p99_ms": round(result.p99_us / 1000, 2),
    }
    moved = f"after {switched:.1f} s" if switched is not None else "NOT within the run"
    console.print(
        f"  promotion: {result.requests} requests, {result.failures} failed; Production moved to version 2 {moved}"
    )


if __name__ == "__main__":
    sys.exit(main())
