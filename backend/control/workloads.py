"""How workload sizes (their concurrency ranges are in rtserve.spec) and provisioned concurrency map to replicas."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rtserve.server.control.placement import Placement
from rtserve.spec import DEFAULT_WORKLOAD_SIZE as DEFAULT_WORKLOAD_SIZE
from rtserve.spec import SERVING_STAGES as SERVING_STAGES
from rtserve.spec import WORKLOAD_SIZES

if TYPE_CHECKING:
    from rtserve.server.store.models import ComputeConfig


def replica_range(concurrency: tuple[int, int], scale_to_zero: bool, replica_concurrency: int) -> tuple[int, int]:
    """Replicas needed to serve a concurrency range, each replica taking `replica_concurrency`."""
    low = max(1, math.ceil(concurrency[0] / replica_concurrency))
    high = max(low, math.ceil(concurrency[1] / replica_concurrency))
    return (0 if scale_to_zero else low, high)


@dataclass(frozen=True)
class ReplicaSettings:
    """What a replica is started with that it cannot change while it runs: a change to any of these is
    rolled out on new replicas."""

    batching: tuple[int, float] = (1, 0.0)  # (max_batch_size, max_batch_wait_ms)
    environment_vars: tuple[tuple[str, str], ...] = ()  # as configured: secrets still references
    placement: Placement | None = None  # the Ray nodes it may run on; None: any

    def digest(self) -> str:
        """Short and stable across processes (instances sharing a database compare them)."""
        wire = [self.batching, self.environment_vars, self.placement.to_wire() if self.placement else None]
        return hashlib.sha256(json.dumps(wire, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Compute:
    """What one served version runs on: its workload size, scale to zero, batching and placement.

    A model endpoint's compute is set per stage (the preview API's compute config; `generation` counts
    its updates); a serving endpoint's comes from each served entity. Both are this.
    """

    workload_size_id: str = DEFAULT_WORKLOAD_SIZE
    scale_to_zero_enabled: bool = False
    generation: int = 0
    max_batch_size: int = 1
    max_batch_wait_ms: float = 0.0
    provisioned_concurrency: tuple[int, int] | None = None  # a serving endpoint's alternative to the size
    # A served entity's environment_vars, as configured (secrets as references); changing them replaces replicas.
    environment_vars: tuple[tuple[str, str], ...] = ()
    # The Ray nodes its replicas may run on (control/placement.py): a served entity's, or a stage's; None: any node.
    placement: Placement | None = None

    @classmethod
    def of_stage(cls, row: ComputeConfig) -> Compute:
        """A model endpoint's stored compute config for one stage."""
        return cls(
            row.workload_size_id,
            row.scale_to_zero_enabled,
            row.generation,
            row.max_batch_size,
            row.max_batch_wait_ms,
            placement=Placement.from_json(row.placement),
        )

    @property
    def concurrency(self) -> tuple[int, int]:
        """The range of concurrent requests to provision for: the provisioned one, else the size's."""
        if self.provisioned_concurrency is not None:
            return self.provisioned_concurrency
        size = WORKLOAD_SIZES[self.workload_size_id]
        return (size.min_concurrency, size.max_concurrency)

    @property
    def batching(self) -> tuple[int, float]:
        return (self.max_batch_size, self.max_batch_wait_ms)

    @property
    def replica_settings(self) -> ReplicaSettings:
        return ReplicaSettings(self.batching, self.environment_vars, self.placement)


def combine(a: Compute, b: Compute) -> Compute:
    """One compute for a version that several endpoints serve: the larger size, scale to zero only if all agree."""

    def most_replicas(compute: Compute) -> int:
        return compute.concurrency[1]

    chosen = b if most_replicas(b) > most_replicas(a) else a
    # Served entities of one version agree on their variables and placement (serving_service refuses otherwise), but
    # a stage's compute has no variables, and while an update rolls out, the later (pending) config's win. A version
    # that a stage and serving endpoints serve runs where its served entities ask, else where its stage asks.
    return replace(
        chosen,
        scale_to_zero_enabled=a.scale_to_zero_enabled and b.scale_to_zero_enabled,
        environment_vars=b.environment_vars or a.environment_vars,
        placement=b.placement or a.placement,
    )
