"""The Ray engine's pure parts, without Ray: shipping artifacts, the actor's log tail and its copy, seals."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from rtserve.server.engines.base import ReplicaSpec
from rtserve.server.engines.ray.adoption import adoptable
from rtserve.server.engines.ray.artifacts import Shipment, pack, unpack
from rtserve.server.engines.ray.logs import LogMirror, TailedLog
from rtserve.server.engines.ray.seals import seal, seal_key
from rtserve.server.engines.ray.supervision import death_reason
from rtserve.server.replica_logs import read_log_tail

pytestmark = pytest.mark.unit


class FakeStore:
    """`ray.put` and an awaitable `ray.get` over a dict."""

    def __init__(self) -> None:
        self.objects: dict[int, bytes] = {}
        self._ids = itertools.count()

    def put(self, data: bytes) -> int:
        ref = next(self._ids)
        self.objects[ref] = data
        return ref

    async def get(self, ref: int) -> bytes:
        return self.objects[ref]


def test_a_model_directory_is_shipped_in_chunks_and_rebuilt(tmp_path: Path):
    source = tmp_path / "model"
    (source / "data" / "empty").mkdir(parents=True)
    (source / "MLmodel").write_text("flavors: {}\n")
    (source / "data" / "weights.bin").write_bytes(bytes(range(256)) * 40)  # 10,240 bytes
    (source / "link").symlink_to("/etc/passwd")  # never followed: it could point anywhere
    store = FakeStore()

    shipment = pack(str(source), store.put, chunk_bytes=4096)
    asyncio.run(unpack(shipment, str(tmp_path / "copy"), store.get))

    assert dict(shipment.files)["data/weights.bin"] == (1, 2, 3)  # three chunks, in order
    assert shipment.total_bytes == len("flavors: {}\n") + 10_240
    assert shipment.skipped == ("link",)
    assert (tmp_path / "copy" / "data" / "weights.bin").read_bytes() == bytes(range(256)) * 40
    assert (tmp_path / "copy" / "MLmodel").read_text() == "flavors: {}\n"
    assert (tmp_path / "copy" / "data" / "empty").is_dir()
    assert not (tmp_path / "copy" / "link").exists()


def test_packing_a_directory_without_a_model_fails(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="MLmodel"):
        pack(str(tmp_path), FakeStore().put)


def test_a_shipped_path_cannot_leave_the_destination(tmp_path: Path):
    store = FakeStore()
    shipment = Shipment(files=(("../outside", (store.put(b"x"),)),))
    with pytest.raises(ValueError, match="leaves the model directory"):
        asyncio.run(unpack(shipment, str(tmp_path / "copy"), store.get))
    assert not (tmp_path / "outside").exists()


def test_the_tail_numbers_what_was_written_and_hands_out_whole_lines(tmp_path: Path):
    log = TailedLog(str(tmp_path / "replica.log"), keep_bytes=100)
    log.feed(b"first line\nsecond line\nthird")

    start, data = log.since(0)
    assert start == 0 and data.endswith(b" second line\n") and b"third" not in data
    assert log.position == len(data)
    _, nothing = log.since(log.position)
    assert nothing == b""
    cut_start, cut = log.since(0, max_bytes=len(data) - 1)  # only the first line fits whole
    assert cut_start == 0 and cut.endswith(b" first line\n") and b"second" not in cut


def test_the_tail_forgets_old_output_and_says_where_it_starts(tmp_path: Path):
    log = TailedLog(str(tmp_path / "replica.log"), keep_bytes=100)
    for index in range(20):
        log.feed(f"line {index:02d} of the replica's output\n".encode())

    start, data = log.since(0)

    assert start > 0  # the beginning is gone from memory (still in the file)
    assert data.endswith(b"line 19 of the replica's output\n")
    assert "line 00" in (tmp_path / "replica.log").read_text()


def test_the_mirror_keeps_the_actors_timestamps_and_notes_a_gap(tmp_path: Path):
    mirror = LogMirror(str(tmp_path / "copy.log"), max_bytes=1024 * 1024)
    mirror.write(0, b"2026-01-01T00:00:00.000Z INFO loading\n")
    mirror.write(100, b"2026-01-01T00:00:05.000Z INFO ready\n")  # 62 bytes the actor no longer had
    mirror.note("CRASHED: killed")
    mirror.close()

    text = read_log_tail(tmp_path / "copy.log", 10_000)
    lines = text.splitlines()
    assert lines[0] == "2026-01-01T00:00:00.000Z INFO loading"
    assert "62 bytes of this replica's log were not copied" in lines[1]
    assert lines[2] == "2026-01-01T00:00:05.000Z INFO ready"
    assert lines[3].endswith("rtserve: CRASHED: killed")
    assert mirror.position == 100 + len(b"2026-01-01T00:00:05.000Z INFO ready\n")


def test_the_seal_key_is_made_once_and_private(tmp_path: Path):
    key = seal_key(tmp_path / "data")
    assert seal_key(tmp_path / "data") == key and len(key) == 64
    assert ((tmp_path / "data" / "ray-engine.key").stat().st_mode & 0o777) == 0o600


def test_only_an_actor_sealed_by_this_deployment_is_adoptable(tmp_path: Path):
    data_dir = tmp_path / "data"
    key = seal_key(data_dir)
    spec = ReplicaSpec("iris-1-abc", "iris", "1", "/models/iris/1", "unused", max_batch_size=4, max_batch_wait_ms=2.0)
    info = {
        "kind": "rtserve.replica/1",
        "replica_id": "iris-1-abc",
        "model_name": "iris",
        "version": "1",
        "max_batch_size": 4,
        "max_batch_wait_ms": 2.0,
        "seal": seal(key, spec),
    }

    adopted = adoptable("iris-1-abc", info, key, data_dir)

    assert adopted is not None and (adopted.model_name, adopted.version, adopted.max_batch_size) == ("iris", "1", 4)
    assert adopted.log_path == str(tmp_path / "data" / "logs" / "iris" / "1" / "iris-1-abc.log")
    # Model code in the actor can change what it says, but not seal it.
    assert adoptable("iris-1-abc", {**info, "model_name": "payments"}, key, data_dir) is None
    assert adoptable("other-name", info, key, data_dir) is None
    assert adoptable("iris-1-abc", {**info, "kind": "something else"}, key, data_dir) is None
    stranger_dir = tmp_path / "other"
    assert adoptable("iris-1-abc", info, seal_key(stranger_dir), stranger_dir) is None


def test_death_reasons_are_short():
    killed = (
        "The actor died unexpectedly before finishing this task.\n\tclass_name: ReplicaActor\n"
        "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit "
        "detail: Worker unexpectedly exits with a connection error code 2. End of file. Some common causes..."
    )
    assert death_reason(RuntimeError(killed)) == (
        "its process exited (SYSTEM_ERROR: Worker unexpectedly exits with a connection error code 2)"
    )
    lost = (
        "The actor died unexpectedly before finishing this task. class_name: ReplicaActor actor_id: 2c1f "
        "namespace: rtserve ip: 127.0.0.4 The actor died because its node has died. Node Id: 5f3a9c0d1e2b4a6f8e7d"
    )
    assert death_reason(RuntimeError(lost)) == "its node 5f3a9c0d1e2b was lost"
