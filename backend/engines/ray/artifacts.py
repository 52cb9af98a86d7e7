"""A model version's artifacts, from the backend's disk to an actor's node, through Ray's object store.

The controller downloads each version's artifacts once, on the backend (`Registry.download`), as it
does for the local engine; `ReplicaSpec.model_uri` is that directory. An actor runs on another
machine and must not read a path of the backend's disk, so the engine ships the directory: every
file in chunks of `CHUNK_BYTES`, each chunk one object in the object store (`ray.put`), listed in a
`Shipment`. The actor fetches the chunks (awaiting their refs) and writes the files under a directory of its
own node, then loads the model from there.

Why not let the actor download from the registry itself: it would need a credential for the
registry (with the embedded one, a token for the backend's API) inside a process that runs model
code, and the backend's HTTP port reachable from every node. The object store needs neither, and
works the same for the embedded registry and an external MLflow server. The objects belong to the
backend (the driver): the engine drops them once no replica of the version is loading (`Shipments`),
and an actor still loading when the backend dies fails (its artifacts are gone), to be started again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CHUNK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Shipment:
    """A directory's files as object refs: relative path -> its chunks, in order."""

    files: tuple[tuple[str, tuple[Any, ...]], ...]
    directories: tuple[str, ...] = ()
    total_bytes: int = 0
    skipped: tuple[str, ...] = field(default=())  # symbolic links and special files, which are not shipped


class Shipments:
    """The engine's shipments, by model URI: each packed once while replicas of it are loading."""

    def __init__(self) -> None:
        # model_uri -> (the packing, how many replicas are loading from it)
        self._shipments: dict[str, tuple[asyncio.Task[Shipment], int]] = {}

    async def ship(self, model_uri: str, put: Callable[[bytes], Any]) -> Shipment:
        """The shipment of `model_uri` (packed once while replicas of it are loading)."""
        entry = self._shipments.get(model_uri)
        if entry is None:
            packing = asyncio.ensure_future(asyncio.to_thread(pack, model_uri, put))
            entry = (packing, 0)
        self._shipments[model_uri] = (entry[0], entry[1] + 1)
        try:
            return await asyncio.shield(entry[0])
        except BaseException:
            self.unship(model_uri)
            raise

    def unship(self, model_uri: str) -> None:
        entry = self._shipments.get(model_uri)
        if entry is None:
            return
        if entry[1] <= 1:
            del self._shipments[model_uri]  # the objects go once the actors that fetched them let go
        else:
            self._shipments[model_uri] = (entry[0], entry[1] - 1)

    def clear(self) -> None:
        self._shipments.clear()


def pack(model_dir: str, put: Callable[[bytes], Any], chunk_bytes: int = CHUNK_BYTES) -> Shipment:
    """Put every regular file under `model_dir` into the object store, `chunk_bytes` at a time (blocks).

    Symbolic links are not followed: a link could point anywhere on the backend's disk.
    """
    root = Path(model_dir)
    if not (root / "MLmodel").is_file():
        raise FileNotFoundError(f"no MLflow model (MLmodel file) in {model_dir}")
    files: list[tuple[str, tuple[Any, ...]]] = []
    directories: list[str] = []
    skipped: list[str] = []
    total = 0
    for current, dirnames, filenames in os.walk(root):
        base = Path(current)
        for name in sorted(dirnames):
            path = base / name
            if path.is_symlink():
                skipped.append(str(path.relative_to(root)))
            else:
                directories.append(str(path.relative_to(root)))
        dirnames[:] = sorted(name for name in dirnames if not (base / name).is_symlink())
        for name in sorted(filenames):
            path = base / name
            relative = str(path.relative_to(root))
            if path.is_symlink() or not path.is_file():
                skipped.append(relative)
                continue
            chunks = []
            with open(path, "rb") as source:
                while chunk := source.read(chunk_bytes):
                    chunks.append(put(chunk))
                    total += len(chunk)
            files.append((relative, tuple(chunks)))
    if skipped:
        logger.warning("Not shipped with the model in %s (links or special files): %s", model_dir, ", ".join(skipped))
    return Shipment(tuple(files), tuple(directories), total, tuple(skipped))


async def unpack(shipment: Shipment, destination: str, get: Callable[[Any], Awaitable[bytes]]) -> None:
    """Write the shipped files under `destination` (created), awaiting each chunk with `get`, one at a time.

    In an async actor, awaiting the object refs keeps its event loop free (a blocking `ray.get` would not).
    """
    root = Path(destination)
    root.mkdir(parents=True, exist_ok=True)
    for directory in shipment.directories:
        _inside(root, directory).mkdir(parents=True, exist_ok=True)
    for relative, chunks in shipment.files:
        path = _inside(root, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as target:
            for ref in chunks:
                data = await get(ref)
                await asyncio.to_thread(target.write, data)


def _inside(root: Path, relative: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"a shipped path leaves the model directory: {relative!r}")
    return path
