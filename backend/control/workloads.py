"""How workload sizes (their concurrency ranges are in rtserve.spec) map to replicas."""

from __future__ import annotations

import math

from rtserve.spec import DEFAULT_WORKLOAD_SIZE as DEFAULT_WORKLOAD_SIZE
from rtserve.spec import SERVING_STAGES as SERVING_STAGES
from rtserve.spec import WORKLOAD_SIZES


def replica_range(workload_size_id: str, scale_to_zero: bool, replica_concurrency: int) -> tuple[int, int]:
    """Replicas needed to serve the size's concurrency range, each replica taking `replica_concurrency`."""
    size = WORKLOAD_SIZES[workload_size_id]
    low = max(1, math.ceil(size.min_concurrency / replica_concurrency))
    high = max(low, math.ceil(size.max_concurrency / replica_concurrency))
    return (0 if scale_to_zero else low, high)
