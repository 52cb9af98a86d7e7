"""Logged requests written to the inference tables in batches, by one thread, never on the scoring path.

`record` (called on the event loop once a request is answered) only puts a few scalars and the two
bodies in a bounded queue; when the queue is full the request is not logged, and is counted. The
writer thread takes them off the queue and appends them to each table with the `deltalake` package,
as one Delta commit per table per flush: when `flush_rows` requests wait, when the oldest has waited
`flush_seconds`, and at shutdown. A crash (SIGKILL, power loss) loses at most what waited to be
written: the last `flush_seconds`.

Several backend instances may append to the same tables: each commit is a new file in the table's
`_delta_log`, created only if absent, so two instances never overwrite each other's commit; the one
that loses a race retries on top of the winner's (docs/inference-tables.md).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from deltalake import write_deltalake

from rtserve.server.control.endpoint import EndpointKind
from rtserve.server.control.inference_tables import USAGE_TABLE
from rtserve.server.control.snapshot import Snapshot
from rtserve.server.settings import Settings
from rtserve.server.tables.rows import Exchange, payload_table, usage_table

log = logging.getLogger("rtserve.tables")
COMMIT_ATTEMPTS = 5  # a commit that lost a race with another instance's is retried on top of it
_STOP = object()


class InferenceLog:
    def __init__(self, settings: Settings, snapshot: Callable[[], Snapshot]) -> None:
        self.warehouse = settings.warehouse
        self.flush_seconds = settings.inference_table_flush_seconds
        self.flush_rows = settings.inference_table_flush_rows
        self._snapshot = snapshot
        self._queue: queue.Queue[Exchange | object] = queue.Queue(settings.inference_table_buffer_rows)
        self._thread = threading.Thread(target=self._run, name="rtserve-inference-tables", daemon=True)
        # Each counter has one writer: `dropped` the event loop, `rows` ((table, outcome) -> count) the thread.
        self.dropped = 0
        self.rows: Counter[tuple[str, str]] = Counter()

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop (blocking: call it off the event loop)."""
        self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)

    def record(
        self,
        kind: EndpointKind,
        endpoint: str,
        request_id: str,
        requester: str,
        served_entity: str,
        destination: tuple[str, str],
        arrived: float,
        status: int,
        request: bytes,
        response: bytes,
    ) -> None:
        """Queue one answered request of a serving endpoint that logs to a table; never blocks."""
        state = self._snapshot().serving_endpoints.get(endpoint) if kind is EndpointKind.SERVING else None
        if state is None or not state.inference_tables.logging:
            return
        now = time.time()
        exchange = Exchange(
            endpoint,
            state.inference_tables,
            request_id,
            requester,
            served_entity,
            destination[0],
            destination[1],
            int(arrived * 1000),
            int((now - arrived) * 1000),
            status,
            request,
            response,
        )
        try:
            self._queue.put_nowait(exchange)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        batch: list[Exchange] = []
        due = float("inf")  # when the oldest waiting request must be written
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, due - time.monotonic()) if batch else None)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._write(batch)
                return
            if isinstance(item, Exchange):
                if not batch:
                    due = time.monotonic() + self.flush_seconds
                batch.append(item)
            if batch and (len(batch) >= self.flush_rows or time.monotonic() >= due):
                self._write(batch)
                batch = []

    def _write(self, batch: Sequence[Exchange]) -> None:
        payload: dict[Path, list[Exchange]] = defaultdict(list)
        usage: list[Exchange] = []
        for exchange in batch:
            if (table := exchange.tables.payload) is not None:
                payload[table.path(self.warehouse)].append(exchange)
            if exchange.tables.usage_tracking:
                usage.append(exchange)
        for path, exchanges in payload.items():
            self._append("payload", path, exchanges)
        if usage:
            self._append("usage", self.warehouse.joinpath(*USAGE_TABLE), usage)

    def _append(self, kind: str, path: Path, exchanges: list[Exchange]) -> None:
        rows = payload_table(exchanges) if kind == "payload" else usage_table(exchanges)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                path.mkdir(parents=True, exist_ok=True)
                write_deltalake(path, rows, mode="append")
            except Exception as exc:  # noqa: BLE001 - deltalake raises several kinds; logging must never stop serving
                if attempt < COMMIT_ATTEMPTS:
                    continue
                self.rows[(kind, "failed")] += len(exchanges)
                log.warning("could not write %d rows to the inference table %s: %s", len(exchanges), path, exc)
            else:
                self.rows[(kind, "written")] += len(exchanges)
            return
