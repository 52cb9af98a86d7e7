"""The inference tables' writer: real Delta tables, written in batches by size, by time and at close; a full
buffer drops requests (counted) and never blocks the caller."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from deltalake import DeltaTable

from rtserve.server.control.endpoint import EndpointKind
from rtserve.server.control.inference_tables import InferenceTables, PayloadTable
from rtserve.server.settings import Settings
from rtserve.server.tables.writer import InferenceLog

pytestmark = pytest.mark.unit
PAYLOAD = PayloadTable("main", "serving", "iris")


@dataclass
class Endpoint:
    inference_tables: InferenceTables


@dataclass
class Snapshot:
    serving_endpoints: dict[str, Endpoint] = field(default_factory=dict)


def inference_log(tmp_path: Path, tables: InferenceTables, **settings: float) -> InferenceLog:
    snapshot = Snapshot({"iris": Endpoint(tables)})
    return InferenceLog(Settings(data_dir=tmp_path, **settings), lambda: snapshot)  # type: ignore[arg-type, return-value]


def answer(log: InferenceLog, n: int, endpoint: str = "iris", kind: EndpointKind = EndpointKind.SERVING) -> None:
    for i in range(n):
        log.record(
            kind,
            endpoint,
            f"req-{i}",
            "ci-bot",
            "current",
            ("iris-model", "2"),
            time.time(),
            200,
            b'{"inputs": [[1, 2, 3, 4]], "client_request_id": "mine-%d"}' % i,
            b'{"predictions": [0]}',
        )


def rows(path: Path) -> int:
    return DeltaTable(str(path)).to_pyarrow_table().num_rows if (path / "_delta_log").exists() else 0


def rows_when(path: Path, count: int, timeout: float = 20) -> int:
    """The table's row count once it reaches `count` (or after `timeout`)."""
    deadline = time.monotonic() + timeout
    while rows(path) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return rows(path)


def test_a_full_batch_is_written_at_once_as_one_commit(tmp_path: Path):
    log = inference_log(tmp_path, InferenceTables(inference_table=PAYLOAD), inference_table_flush_rows=50)
    log.start()
    answer(log, 50)
    table = PAYLOAD.path(tmp_path / "warehouse")

    assert rows_when(table, 50) == 50
    assert DeltaTable(str(table)).version() == 0  # one commit
    frame = DeltaTable(str(table)).to_pandas().sort_values("databricks_request_id")
    first = frame.iloc[0]
    assert first["databricks_request_id"] == "req-0" and first["client_request_id"] == "mine-0"
    assert first["status_code"] == 200 and first["served_entity_id"] == "current" and first["requester"] == "ci-bot"
    assert first["response"] == '{"predictions": [0]}' and first["sampling_fraction"] == 1.0
    metadata = {"endpoint_name": "iris", "model_name": "iris-model", "model_version": "2"}
    assert dict(first["request_metadata"]) == metadata
    log.close()


def test_a_partial_batch_is_written_after_the_flush_interval(tmp_path: Path):
    log = inference_log(tmp_path, InferenceTables(inference_table=PAYLOAD), inference_table_flush_seconds=0.2)
    log.start()
    answer(log, 3)
    table = PAYLOAD.path(tmp_path / "warehouse")

    assert rows_when(table, 3) == 3
    assert log.rows[("payload", "written")] == 3
    log.close()


def test_close_writes_what_is_queued_and_usage_rows_go_to_the_usage_table(tmp_path: Path):
    tables = InferenceTables(auto_capture=PAYLOAD, usage_tracking=True)
    log = inference_log(tmp_path, tables, inference_table_flush_seconds=3600)
    log.start()
    answer(log, 7)

    log.close()

    assert rows(PAYLOAD.path(tmp_path / "warehouse")) == 7
    usage = DeltaTable(str(tmp_path / "warehouse/system/serving/endpoint_usage")).to_pandas()
    assert len(usage) == 7
    assert set(usage["endpoint_name"]) == {"iris"} and set(usage["input_character_count"]) == {57}
    assert log.rows == {("payload", "written"): 7, ("usage", "written"): 7}


def test_a_full_buffer_drops_and_counts_requests_without_blocking(tmp_path: Path):
    log = inference_log(tmp_path, InferenceTables(inference_table=PAYLOAD), inference_table_buffer_rows=10)
    # Not started: nothing takes requests off the buffer.
    started = time.monotonic()
    answer(log, 25)

    assert time.monotonic() - started < 1
    assert log.dropped == 15
    log.start()
    log.close()
    assert rows(PAYLOAD.path(tmp_path / "warehouse")) == 10


def test_requests_of_endpoints_without_tables_and_of_model_endpoints_are_not_logged(tmp_path: Path):
    log = inference_log(tmp_path, InferenceTables(inference_table=PayloadTable("main", "serving", "iris", False)))
    answer(log, 2)
    answer(log, 2, endpoint="unknown")
    answer(log, 2, kind=EndpointKind.MODEL)
    log.start()
    log.close()

    assert not (tmp_path / "warehouse").exists()
    assert log.dropped == 0


def test_two_writers_appending_to_one_table_at_once_lose_no_row(tmp_path: Path):
    # Two instances' writers sharing a warehouse: a commit that loses the race is retried on top of the winner's.
    logs = [
        inference_log(tmp_path, InferenceTables(inference_table=PAYLOAD), inference_table_flush_rows=5)
        for _ in range(2)
    ]
    for log in logs:
        log.start()
    for _ in range(8):
        for log in logs:
            answer(log, 5)
    for log in logs:
        log.close()

    assert rows(PAYLOAD.path(tmp_path / "warehouse")) == 80
    assert [log.rows[("payload", "failed")] for log in logs] == [0, 0]
