"""`make bench` (model environments): a model that needs its own environment, rtserve next to `mlflow models serve`.

The model is a pyfunc whose predict imports `roman`, a package the server's environment lacks
(tests/model_code/roman_numerals.py), so both servers must build an environment for it. Measured
in one run, on this machine:

- rtserve: the first build of its environment (`uv pip compile` + `uv venv` + `uv pip sync`) with an
  empty uv cache, and again with the cache warm; the environment's fork server starting with its
  first replica; a replica started from zero from that existing environment (the cold start the
  target is about: < 1 s); the memory (USS/RSS) of the environment's fork server;
- `mlflow models serve --env-manager uv` (its environments under a temp MLFLOW_ENV_ROOT): the first
  serve, which builds its environment, until /ping answers; a second serve, reusing it; the memory
  (RSS) of its process tree.

Prints a table and writes .bench/environments/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import mlflow  # noqa: E402
import psutil  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench import procs  # noqa: E402
from rtserve.server.engines.base import ReplicaSpec, ReplicaState  # noqa: E402
from rtserve.server.engines.local import LocalEngine  # noqa: E402
from rtserve.server.engines.local.environment_forkserver import server_for  # noqa: E402
from rtserve.server.environments.builder import Builder  # noqa: E402
from rtserve.server.environments.decision import read_requirements  # noqa: E402
from rtserve.server.process import free_port  # noqa: E402

MODEL_CODE = ROOT / "tests" / "model_code" / "roman_numerals.py"
BODY = {"dataframe_records": [{"x": 4}, {"x": 9}]}


def save_model(path: Path) -> None:
    mlflow.pyfunc.save_model(
        str(path), python_model=str(MODEL_CODE), pip_requirements=[f"mlflow=={mlflow.__version__}", "roman==4.2"]
    )


def timed_build(root: Path, model_dir: Path) -> tuple[float, str]:
    started = time.perf_counter()
    environment = Builder(root).ensure(read_requirements(model_dir), lambda line: None)
    return time.perf_counter() - started, environment.python


async def replica_starts(work: Path, model_dir: Path, python: str) -> dict[str, float]:
    """The environment's fork server with its first replica, then a replica from zero; the fork server's memory."""
    engine = LocalEngine(str(work / "run"))
    await engine.start()
    figures: dict[str, float] = {}
    try:
        for label in ("forkserver_and_first_replica_s", "replica_from_existing_env_s"):
            replica_id = label.split("_")[0]
            spec = ReplicaSpec(replica_id, "roman", "1", str(model_dir), str(work / f"{replica_id}.log"), python=python)
            started = time.perf_counter()
            await engine.start_replica(spec)
            while (state := _state(engine, replica_id)) is ReplicaState.STARTING:
                await asyncio.sleep(0.005)
            figures[label] = time.perf_counter() - started
            assert state is ReplicaState.READY, (work / f"{replica_id}.log").read_text()
            result = await engine.invoke("roman", "1", json.dumps(BODY).encode(), "application/json", 10)
            assert json.loads(result.body)["predictions"] == ["IV", "IX"], result.body
            await engine.stop_replica(replica_id)  # from zero: the next replica finds none running
            while _state(engine, replica_id) not in (ReplicaState.STOPPED, None):
                await asyncio.sleep(0.01)
        forkserver = psutil.Process(server_for(python).pid)
        memory = forkserver.memory_full_info()
        figures["env_forkserver_uss_mib"] = memory.uss / 2**20
        figures["env_forkserver_rss_mib"] = memory.rss / 2**20
    finally:
        await engine.close()
    return figures


def _state(engine: LocalEngine, replica_id: str) -> ReplicaState | None:
    return next((r.state for r in engine.replicas() if r.replica_id == replica_id), None)


def mlflow_serve(model_dir: Path, env_root: Path, timeout: float) -> tuple[float, float]:
    """Seconds until `mlflow models serve --env-manager uv` answers /ping and scores, and its tree's RSS (MiB)."""
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_ENV_ROOT": str(env_root),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "-p", str(port)]
    argv += ["--env-manager", "uv", "--workers", "1"]
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited with {process.returncode}")
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"mlflow models serve not ready after {timeout:g} s")
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/invocations", json=BODY, timeout=2)
                if answer.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        ready = time.perf_counter() - started
        rss = sum(_rss(pid) for pid in procs.descendants(process.pid))
        return ready, rss / 2**20
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def _rss(pid: int) -> int:
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-mlflow", action="store_true", help="leave out `mlflow models serve`")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a build or serve may take")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rtserve-bench-envs-"))
    os.environ["UV_CACHE_DIR"] = str(work / "uv-cache")  # empty: the first build downloads
    results: dict[str, float] = {}
    try:
        model_dir = work / "model"
        save_model(model_dir)
        results["rtserve_first_build_cold_cache_s"], python = timed_build(work / "envs-cold", model_dir)
        results["rtserve_first_build_warm_cache_s"], python = timed_build(work / "envs-warm", model_dir)
        results["rtserve_reuse_s"], _ = timed_build(work / "envs-warm", model_dir)
        results.update({f"rtserve_{k}": v for k, v in asyncio.run(replica_starts(work, model_dir, python)).items()})
        if not args.no_mlflow:
            env_root = work / "mlflow-envs"
            results["mlflow_first_serve_s"], _ = mlflow_serve(model_dir, env_root, args.timeout)
            results["mlflow_serve_existing_env_s"], results["mlflow_serve_rss_mib"] = mlflow_serve(
                model_dir, env_root, args.timeout
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / ".bench" / "environments"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = Table("figure", "value")
    for name, value in results.items():
        table.add_row(name, f"{value:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
