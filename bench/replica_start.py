"""How long a replica takes to become READY: forked from the pre-loaded fork server (the default) against
started in a fresh interpreter (a served entity setting a variable read at import time, such as
OMP_NUM_THREADS; docs/secrets.md). Same model, same engine, interleaved, in one run.

    .venv/bin/python -m bench.replica_start [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from rtserve.server.engines.base import Engine, ReplicaSpec, ReplicaState
from rtserve.server.engines.local import LocalEngine


def save_iris_model(path: Path) -> Path:
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True, as_frame=True)
    mlflow.sklearn.save_model(LogisticRegression(max_iter=500).fit(features, labels), str(path))
    return path


async def start_ready(engine: Engine, spec: ReplicaSpec, timeout: float = 120.0) -> None:
    await engine.start_replica(spec)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = next(r.state for r in engine.replicas() if r.replica_id == spec.replica_id)
        if state is ReplicaState.READY:
            return
        if state in (ReplicaState.FAILED, ReplicaState.CRASHED):
            raise RuntimeError(f"{spec.replica_id}: {state}: {engine.read_logs(spec.replica_id)[-2000:]}")
        await asyncio.sleep(0.01)
    raise TimeoutError(spec.replica_id)


async def _measure(rounds: int, root: Path) -> dict[str, list[float]]:
    model = save_iris_model(root / "iris")
    engine = LocalEngine(str(root / "run"))
    await engine.start()
    await start_ready(engine, ReplicaSpec("warm-up", "iris", "1", str(model), str(root / "warm-up.log")))
    await engine.stop_replica("warm-up")
    seconds: dict[str, list[float]] = {"forked": [], "fresh interpreter": []}
    try:
        for index in range(rounds):
            for kind, fresh in (("forked", False), ("fresh interpreter", True)):
                replica_id = f"{'fresh' if fresh else 'forked'}-{index}"
                env = {"OMP_NUM_THREADS": "1"} if fresh else {}
                spec = ReplicaSpec(
                    replica_id, "iris", "1", str(model), str(root / f"{replica_id}.log"), env, fresh_interpreter=fresh
                )
                began = time.perf_counter()
                await start_ready(engine, spec)
                seconds[kind].append(time.perf_counter() - began)
                await engine.stop_replica(replica_id)
    finally:
        await engine.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory(prefix="rtserve-bench-") as root:
        seconds = asyncio.run(_measure(rounds, Path(root)))
    forked = statistics.median(seconds["forked"])
    for kind, values in seconds.items():
        median = statistics.median(values)
        print(f"{kind:>18}: median {median:.2f} s to READY (min {min(values):.2f}, max {max(values):.2f}, n={rounds})")
    print(f"a fresh interpreter costs {statistics.median(seconds['fresh interpreter']) / forked:.1f}x a fork")


if __name__ == "__main__":
    main()
