"""The compute settings of served model versions, shared by `compute_config` blocks (rtserve_model_serving)
and `served_entities` blocks (rtserve_serving_endpoint): the same attributes, sent and read back the same
way. The unset size and scale to zero are filled by the plan with the backend's defaults, so that the
applied result never differs from the plan; placement (rtserve's own, Ray engine only) is two flat maps
for the backend's `placement` object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tf.schema import Attribute
from tf.types import Bool, Map, Number, String

from rtserve.spec import DEFAULT_SCALE_TO_ZERO, DEFAULT_WORKLOAD_SIZE, WORKLOAD_SIZES

# Flat attributes of a block for the backend's `placement` object (rtserve's own, Ray engine).
PLACEMENT_FIELDS = {"placement_node_labels": "node_labels", "placement_resources": "resources"}


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


def placement_attributes() -> list[Attribute]:
    """`placement_node_labels` and `placement_resources`: optional, sent as the backend's `placement`."""
    return [
        Attribute(
            "placement_node_labels",
            Map(String()),
            description="rtserve's own, Ray engine only: labels a Ray node must carry (each equal) for the "
            "replicas to run there (`ray start --labels`). The backend refuses it on `--engine local`. "
            "Changing it rolls out new replicas.",
            optional=True,
        ),
        Attribute(
            "placement_resources",
            Map(Number()),
            description="rtserve's own, Ray engine only: custom Ray resources each replica reserves on its "
            "node (`ray start --resources`), e.g. `{ licensed = 1 }`; above 1, whole numbers.",
            optional=True,
        ),
    ]


def placement_body(block: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The backend's `placement` object from a block's placement attributes; {} when neither is set."""
    return {key: dict(block[field]) for field, key in PLACEMENT_FIELDS.items() if block.get(field)}


def placement_from_answer(answered: Mapping[str, Any], before: Any) -> dict[str, dict[str, Any] | None]:
    """The placement attributes from an answered block (its `placement` object); `before` is the block as
    the state had it, for an absent map to read as it was written (null or {})."""
    placement = answered.get("placement") or {}
    return {field: reported_map(placement.get(key), before, field) for field, key in PLACEMENT_FIELDS.items()}


def reported_map(reported: Any, before: Any, field: str) -> dict[str, Any] | None:
    """A map attribute as the backend answers it (variables: secrets as their references); none reads as
    the configuration wrote it (null or {})."""
    if reported:
        return dict(reported)
    prior = before.get(field) if isinstance(before, dict) else None
    return {} if isinstance(prior, dict) else None


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
