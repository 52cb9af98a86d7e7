"""What fencing a replica start costs: a slot claim on PostgreSQL, next to the database's cheapest writes.

Not part of `make bench`. `.venv/bin/python -m bench.replica_slots [--rounds 300]` starts a throw-away
PostgreSQL cluster (the tests' `tests/stores.py`), then, in alternation, claims a slot of a version
with four slots (`store/replica_slots.py`, what a replica start adds with several instances), releases
it (a stop), and runs a transaction of `SELECT 1` and one inserting a row: the peers, on the same
connection pool. Prints the median and 90th percentile of each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from rtserve.server.store import db
from rtserve.server.store.replica_slots import SlotClaims

GROUP = "iris/1/0123456789ab"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    rounds = parser.parse_args().rounds
    from tests.stores import postgres_cluster

    with tempfile.TemporaryDirectory(prefix="rtserve-bench-slots-") as work, postgres_cluster(Path(work)) as url:
        db.migrate(url)
        engine = db.make_engine(url)
        sessions = db.session_factory(engine)
        claims = SlotClaims(sessions, "bench")
        live = [f"live-{n}" for n in range(20)]

        def transaction(sql: str, **values: str) -> None:
            with sessions.begin() as session:
                session.execute(text(sql), values)

        steps: dict[str, Callable[[int], object]] = {
            "claim a slot": lambda n: claims.claim(GROUP, 4, f"replica-{n}", live),
            "release it": lambda n: claims.release(f"replica-{n}"),
            "SELECT 1 (a transaction)": lambda n: transaction("SELECT 1"),
            "insert a row (a transaction)": lambda n: transaction(
                "INSERT INTO replica_slots (slot, replica_id, holder) VALUES (:key, :key, 'bench')", key=f"row-{n}"
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in steps}
        for n in range(rounds + 20):  # the first 20 rounds warm the pool up, and are not counted
            for name, step in steps.items():
                started = time.perf_counter()
                step(n)
                if n >= 20:
                    times[name].append((time.perf_counter() - started) * 1000)
        engine.dispose()
    for name, values in times.items():
        values.sort()
        p90 = values[int(len(values) * 0.9)]
        print(f"{name:>29}: median {statistics.median(values):.2f} ms, p90 {p90:.2f} ms (n={len(values)})")


if __name__ == "__main__":
    main()
