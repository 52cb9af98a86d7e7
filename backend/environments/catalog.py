"""The model environments on disk, under `<data-dir>/envs/`: what `rtserve envs list` shows and `prune` removes."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from rtserve.server.environments.builder import LAST_USED, LOCK_FILE, READY_MARKER


@dataclass(frozen=True)
class EnvironmentInfo:
    key: str
    path: Path
    python: str  # the Python version it was built with
    packages: int  # pinned packages in its resolution
    size_bytes: int
    last_used: float  # epoch seconds: when a version was last prepared with it


def list_environments(root: Path) -> list[EnvironmentInfo]:
    """Every complete environment under `root`, most recently used first."""
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else ():
        marker = path / READY_MARKER
        if not path.is_dir() or not marker.is_file():
            continue
        found.append(
            EnvironmentInfo(
                key=path.name,
                path=path,
                python=marker.read_text().strip(),
                packages=_pins(path / LOCK_FILE),
                size_bytes=_size(path),
                last_used=_last_used(path),
            )
        )
    return sorted(found, key=lambda info: info.last_used, reverse=True)


def prune(root: Path, *, unused_for: float, now: float) -> list[str]:
    """Remove the environments not used for `unused_for` seconds, and builds cut short; the names removed."""
    removed = []
    for info in list_environments(root):
        if now - info.last_used >= unused_for:
            shutil.rmtree(info.path, ignore_errors=True)
            removed.append(info.key)
    for leftover in (*root.glob("*.partial"), root / ".resolve") if root.is_dir() else ():
        shutil.rmtree(leftover, ignore_errors=True)
        if leftover.name.endswith(".partial"):
            removed.append(leftover.name)
    return removed


def _pins(lock: Path) -> int:
    if not lock.is_file():
        return 0
    return sum(1 for line in lock.read_text().splitlines() if "==" in line and not line.lstrip().startswith("#"))


def _last_used(path: Path) -> float:
    try:
        return float((path / LAST_USED).read_text().strip())
    except (OSError, ValueError):
        return (path / READY_MARKER).stat().st_mtime


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total
