"""Seals: how the Ray engine proves that an actor is one this deployment started.

Each actor is given, at creation, an HMAC of its identity (a replica's id, model, version and
batching; a warm-pool actor's name) under a key kept in the data dir. Model code running in the
actor can change what the actor says of itself, but cannot seal another identity.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from rtserve.server.engines.base import ReplicaSpec

# The key that seals the identity of the actors this deployment starts (in the data dir, mode 0600).
SEAL_KEY_FILE = "ray-engine.key"


def seal_key(data_dir: Path) -> bytes:
    """This deployment's key for actor seals, created (0600) at the first start."""
    path = data_dir / SEAL_KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    key = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


def seal(key: bytes, spec: ReplicaSpec) -> str:
    """The seal of a replica actor's identity."""
    identity = [spec.replica_id, spec.model_name, spec.version, spec.max_batch_size, spec.max_batch_wait_ms]
    return hmac.new(key, json.dumps(identity).encode(), hashlib.sha256).hexdigest()


def warm_seal(key: bytes, name: str) -> str:
    """The seal of a warm-pool actor's name."""
    return hmac.new(key, json.dumps(["warm", name]).encode(), hashlib.sha256).hexdigest()
