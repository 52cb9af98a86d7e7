"""Replica logs: every line timestamped, the file bounded and rotated to `<path>.1`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from rtserve.server.replica_logs import DEFAULT_MAX_BYTES, MAX_LINE_BYTES, LogPump, RotatingLog, timestamp
from rtserve.server.settings import Settings, SettingsError

pytestmark = pytest.mark.unit

STAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")
NOW = 1795321936.123456  # 2026-11-22T04:32:16.123Z


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_the_timestamp_is_iso_8601_utc_with_milliseconds_then_a_space():
    assert timestamp(NOW) == b"2026-11-22T04:32:16.123Z "
    assert timestamp(1795321936.0) == b"2026-11-22T04:32:16.000Z "


def test_every_line_is_prefixed_and_an_unfinished_line_waits_for_its_end(tmp_path: Path):
    log = RotatingLog(str(tmp_path / "r.log"), clock=lambda: NOW)

    log.feed(b"first line\nsecond ")
    log.feed(b"line\n\nthird")
    written_so_far = lines(tmp_path / "r.log")
    log.close()

    assert written_so_far == [b"2026-11-22T04:32:16.123Z first line", b"2026-11-22T04:32:16.123Z second line"] + [
        b"2026-11-22T04:32:16.123Z "
    ]
    assert lines(tmp_path / "r.log")[-1] == b"2026-11-22T04:32:16.123Z third"


def test_the_log_rotates_to_a_single_backup_and_never_passes_its_bound(tmp_path: Path):
    path = tmp_path / "r.log"
    log = RotatingLog(str(path), max_bytes=1000, clock=lambda: NOW)

    for number in range(100):
        log.feed(f"line {number:03d} {'x' * 40}\n".encode())
    log.close()

    assert path.stat().st_size <= 1000
    assert (tmp_path / "r.log.1").stat().st_size <= 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.log", "r.log.1"]
    newest = lines(path)
    assert newest[-1].endswith(b"line 099 " + b"x" * 40)
    assert all(STAMP.match(line) for line in newest + lines(tmp_path / "r.log.1"))
    older_last = int(lines(tmp_path / "r.log.1")[-1].split()[2])
    assert int(newest[0].split()[2]) == older_last + 1  # nothing lost between the backup and the log


def test_a_burst_read_in_one_go_is_split_so_no_file_passes_the_bound(tmp_path: Path):
    path = tmp_path / "r.log"
    log = RotatingLog(str(path), max_bytes=1000, clock=lambda: NOW)

    log.feed(b"".join(f"line {number:03d} {'x' * 40}\n".encode() for number in range(30)))  # ~2 KB at once
    log.close()

    assert path.stat().st_size <= 1000
    assert (tmp_path / "r.log.1").stat().st_size <= 1000
    newest, older = lines(path), lines(tmp_path / "r.log.1")
    assert newest[-1].endswith(b"line 029 " + b"x" * 40)
    assert int(newest[0].split()[2]) == int(older[-1].split()[2]) + 1  # the split lost no line


def test_an_existing_log_is_appended_to_and_counts_towards_the_bound(tmp_path: Path):
    path = tmp_path / "r.log"
    path.write_bytes(b"x" * 900 + b"\n")
    log = RotatingLog(str(path), max_bytes=1000)

    log.feed(b"y" * 200 + b"\n")
    log.close()

    assert (tmp_path / "r.log.1").read_bytes() == b"x" * 900 + b"\n"
    assert lines(path)[0].endswith(b"y" * 200)


def test_an_overlong_line_is_written_in_pieces(tmp_path: Path):
    log = RotatingLog(str(tmp_path / "r.log"))

    log.feed(b"z" * (MAX_LINE_BYTES * 2 + 10))
    log.close()

    pieces = lines(tmp_path / "r.log")
    assert len(pieces) >= 2 and all(STAMP.match(piece) for piece in pieces)
    assert sum(len(piece) - len(b"2026-11-22T04:32:16.123Z ") for piece in pieces) == MAX_LINE_BYTES * 2 + 10


def test_the_pump_copies_a_pipe_until_end_of_file(tmp_path: Path):
    read_fd, write_fd = os.pipe()
    pump = LogPump(read_fd, RotatingLog(str(tmp_path / "r.log")))

    os.write(write_fd, b"hello\nfrom the ")
    os.write(write_fd, b"replica\nno newline at the end")
    os.close(write_fd)

    assert pump.join(5)
    texts = [line[len(b"2026-11-22T04:32:16.123Z ") :] for line in lines(tmp_path / "r.log")]
    assert texts == [b"hello", b"from the replica", b"no newline at the end"]


def test_the_bound_comes_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("RTSERVE_REPLICA_LOG_MAX_BYTES", raising=False)
    assert Settings(data_dir=tmp_path).replica_log_max_bytes == DEFAULT_MAX_BYTES == 5 * 1024 * 1024
    monkeypatch.setenv("RTSERVE_REPLICA_LOG_MAX_BYTES", "65536")
    assert Settings(data_dir=tmp_path).replica_log_max_bytes == 65536
    for refused in ("10", "5MB"):  # below the 1 KiB that keeps a line or two, or not a number
        monkeypatch.setenv("RTSERVE_REPLICA_LOG_MAX_BYTES", refused)
        with pytest.raises(SettingsError, match="RTSERVE_REPLICA_LOG_MAX_BYTES"):
            Settings(data_dir=tmp_path)
