"""What a replica and its engine exchange: how to start a replica, and one answer it gives.

The worker owns these so that both sides import them from here and imports point one way (engines
-> worker, never back); `backend.engines.base` re-exports them as part of the engine interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReplicaSpec:
    """Everything needed to start one replica of one model version."""

    replica_id: str  # unique across the engine, e.g. "iris-1-a1b2c3"
    model_name: str
    version: str
    model_uri: str  # a local directory holding the MLflow model (already downloaded)
    log_path: str  # the replica's stdout/stderr go here
    env: dict[str, str] = field(default_factory=dict, repr=False)  # may hold resolved secrets: never shown
    # Start in a fresh interpreter, not from the pre-loaded fork server: `env` sets a variable that the
    # libraries the fork server imported read at import time (control/environment_vars.py).
    fresh_interpreter: bool = False
    # Adaptive batching (opt-in per compute config): concurrent requests predicted in one call.
    max_batch_size: int = 1  # 1 = no batching
    max_batch_wait_ms: float = 0.0  # how long the first request of a batch waits for company
    # The interpreter of the model's own environment (backend/environments); None: the server's.
    python: str | None = None
    # Where the replica may run (engines that place replicas on nodes: Ray's label_selector and custom
    # resources, control/placement.py); empty: anywhere.
    node_labels: dict[str, str] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)
    # The replica's slot (engines fencing starts between instances: store/replica_slots.py): one of
    # `slots` of `slot_group` ("<model>/<version>/<settings digest>"); no group: not fenced.
    slot_group: str = ""
    slots: int = 0


@dataclass(frozen=True)
class InvocationResult:
    status: int
    body: bytes
    content_type: str = "application/json"
