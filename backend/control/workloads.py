"""Workload sizes (the reference's concurrency ranges) and how they map to replicas."""

from __future__ import annotations

import math
from dataclasses import dataclass

SERVING_STAGES = ("Staging", "Production")
DEFAULT_WORKLOAD_SIZE = "Small"


@dataclass(frozen=True)
class WorkloadSize:
    key: str
    min_concurrency: int
    max_concurrency: int


WORKLOAD_SIZES = {
    size.key: size
    for size in (
        WorkloadSize("Small", 4, 4),
        WorkloadSize("Medium", 8, 16),
        WorkloadSize("Large", 16, 64),
    )
}


def replica_range(workload_size_id: str, scale_to_zero: bool, replica_concurrency: int) -> tuple[int, int]:
    """Replicas needed to serve the size's concurrency range, each replica taking `replica_concurrency`."""
    size = WORKLOAD_SIZES[workload_size_id]
    low = max(1, math.ceil(size.min_concurrency / replica_concurrency))
    high = max(low, math.ceil(size.max_concurrency / replica_concurrency))
    return (0 if scale_to_zero else low, high)
