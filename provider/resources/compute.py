"""The compute settings of served model versions, shared by `compute_config` blocks (rtserve_model_serving)
and `served_entities` blocks (rtserve_serving_endpoint): the same two attributes, whose unset values the
plan fills with the backend's defaults so that the applied result never differs from the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tf.schema import Attribute
from tf.types import Bool, String

from rtserve.spec import DEFAULT_SCALE_TO_ZERO, DEFAULT_WORKLOAD_SIZE, WORKLOAD_SIZES


def compute_attributes() -> list[Attribute]:
    """`workload_size` and `scale_to_zero_enabled`: optional, computed from the backend's defaults when unset."""
    return [
        Attribute(
            "workload_size",
            String(),
            description=f'{_sizes()}. Default: `"{DEFAULT_WORKLOAD_SIZE}"`, as the backend.',
            optional=True,
            computed=True,
        ),
        Attribute(
            "scale_to_zero_enabled",
            Bool(),
            description="Release every replica after an idle period; the next request waits for a cold start. "
            "Default: `false`, as the backend.",
            optional=True,
            computed=True,
        ),
    ]


def _sizes() -> str:
    """ "`Small` (4 concurrent requests), `Medium` (8-16) or `Large` (16-64)"."""
    sizes = [f"`{size.key}` ({size.concurrency})" for size in WORKLOAD_SIZES.values()]
    sizes[0] = sizes[0].replace(")", " concurrent requests)")
    return f"{', '.join(sizes[:-1])} or {sizes[-1]}"


def with_compute_defaults(block: dict, configured: Mapping[str, Any]) -> dict:
    """`block` with the backend's default for each compute setting that `configured` leaves unset."""
    filled = dict(block)
    if configured.get("workload_size") is None:
        filled["workload_size"] = DEFAULT_WORKLOAD_SIZE
    if configured.get("scale_to_zero_enabled") is None:
        filled["scale_to_zero_enabled"] = DEFAULT_SCALE_TO_ZERO
    return filled


def fill_blocks(blocks: Any, configured: Any, fill: Callable[[dict, Mapping[str, Any]], dict]) -> Any:
    """Each planned block completed by `fill(block, source)`.

    `source` is the same block (by position) as configured, and tells which values the user set:
    Terraform carries a computed value over from the prior state, so the planned block alone would
    keep an old default after the values it derives from changed. Without a configuration the
    planned block is its own source; a block not known yet is left as it is.
    """
    if not isinstance(blocks, list):
        return blocks
    configured = configured if isinstance(configured, list) else []
    result = []
    for index, block in enumerate(blocks):
        if not isinstance(block, dict):
            result.append(block)
            continue
        source = configured[index] if index < len(configured) and isinstance(configured[index], dict) else block
        result.append(fill(block, source))
    return result
