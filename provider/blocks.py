"""Schema pieces the `tf` framework lacks: list, set and single nested blocks, and an object type.

`tf` 1.2 only ships a set-nested block, which cannot encode a null or unknown value nor fill the
attributes an element leaves out. A list block correlates each configured block with its prior value
by position, so a change shows as `compute_config[0].workload_size: "Small" -> "Medium"` instead of a
removed and an added set element. A set block is for blocks whose order means nothing (the grants of
`rtserve_permissions`): Terraform compares them as a set, and so does `semantically_equal`, so a
state read back in another order keeps the planned encoding. Data sources return lists of objects,
for which `Object` provides the cty type.
"""

from __future__ import annotations

import json
from typing import Any

from tf.gen import tfplugin_pb2 as pb
from tf.schema import Attribute, Block, NestedBlock, NestMode
from tf.types import String, TfType, Unknown
from tf.utils import Diagnostics

from rtserve.provider.waiter import parse_duration


def _encode_element(block: NestedBlock, value: dict) -> dict:
    from tf.provider import _encode_state_d

    # Terraform expects every attribute of a block object, null or not.
    full: dict[str, Any] = {a.name: None for a in block.block.attributes}
    full |= {b.type_name: [] for b in block.block.block_types}
    return _encode_state_d(block._amap(), block._bmap(), full | value, None) or {}


def _decode_element(block: NestedBlock, value: dict) -> dict:
    from tf.provider import _decode_state

    return _decode_state(Diagnostics(), block._amap(), block._bmap(), value)[1] or {}


class ListNestedBlock(NestedBlock):
    """Repeated `name { ... }` blocks, in configuration order. State: a list of dicts."""

    NESTING = pb.Schema.NestedBlock.NestingMode.LIST

    def __init__(self, type_name: str, block: Block, min_items: int | None = None, max_items: int | None = None):
        super().__init__(type_name, NestMode.Set, block, min_items=min_items, max_items=max_items)

    def to_pb(self) -> pb.Schema.NestedBlock:
        return pb.Schema.NestedBlock(
            type_name=self.type_name,
            block=self.block.to_pb(),
            min_items=self.min_items,
            max_items=self.max_items,
            nesting=self.NESTING,
        )

    def encode(self, value: Any) -> Any:
        if value is None or value is Unknown:
            return [] if value is None else value
        return [_encode_element(self, v) for v in value]

    def decode(self, value: Any) -> Any:
        if value is None or value is Unknown:
            return [] if value is None else value
        return [_decode_element(self, v) for v in value]

    def semantically_equal(self, a_decoded: Any, b_decoded: Any) -> bool:
        return a_decoded == b_decoded


class SetNestedBlock(ListNestedBlock):
    """Repeated `name { ... }` blocks whose order does not matter. State: a list of dicts, in any order."""

    NESTING = pb.Schema.NestedBlock.NestingMode.SET

    def semantically_equal(self, a_decoded: Any, b_decoded: Any) -> bool:
        return self._canonical(a_decoded) == self._canonical(b_decoded)

    def _canonical(self, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        names = [a.name for a in self.block.attributes]
        return sorted(repr([e.get(name) for name in names] if isinstance(e, dict) else e) for e in value)


class SingleNestedBlock(NestedBlock):
    """At most one `name { ... }` block. State: a dict, or None when the block is absent."""

    def __init__(self, type_name: str, block: Block):
        super().__init__(type_name, NestMode.Single, block)

    def encode(self, value: Any) -> Any:
        if value is None or value is Unknown:
            return value
        return _encode_element(self, value)

    def decode(self, value: Any) -> Any:
        if value is None or value is Unknown:
            return value
        return _decode_element(self, value)

    def semantically_equal(self, a_decoded: Any, b_decoded: Any) -> bool:
        return a_decoded == b_decoded


class Object(TfType):
    """A cty object type with fixed attributes. Maps to a Python dict with exactly those keys."""

    def __init__(self, attributes: dict[str, TfType]):
        self.attributes = attributes

    def encode(self, value: Any) -> Any:
        if value is None or value is Unknown:
            return value
        return {name: t.encode(value.get(name)) for name, t in self.attributes.items()}

    def decode(self, value: Any) -> Any:
        if value is None or value is Unknown:
            return value
        return {name: t.decode(value.get(name)) for name, t in self.attributes.items()}

    def tf_type(self) -> bytes:
        inner = ",".join(f"{json.dumps(name)}:{t.tf_type().decode()}" for name, t in self.attributes.items())
        return f'["object",{{{inner}}}]'.encode()


DEFAULT_TIMEOUT = "20m"


def timeouts_block() -> SingleNestedBlock:
    """The `timeouts { create, update }` block every resource takes: how long apply waits for READY."""
    return SingleNestedBlock(
        "timeouts",
        Block(
            attributes=[
                Attribute(
                    op, String(), description=f'How long {op} waits. Default `"{DEFAULT_TIMEOUT}"`.', optional=True
                )
                for op in ("create", "update")
            ]
        ),
    )


def validate_timeouts(diags: Diagnostics, config: dict) -> None:
    """An error for each `timeouts` value that is not a Go duration (checked at plan, not after a create)."""
    timeouts = config.get("timeouts")
    if not isinstance(timeouts, dict):
        return
    for op in ("create", "update"):
        value = timeouts.get(op)
        if isinstance(value, str):
            try:
                parse_duration(value)
            except ValueError as error:
                diags.add_error("Invalid timeout", str(error), ["timeouts", op])


def timeout_seconds(state: dict, op: str) -> float:
    """How long `op` (create or update) may wait, from the state's `timeouts` block or the default."""
    timeouts = state.get("timeouts") or {}
    return parse_duration(timeouts.get(op) or DEFAULT_TIMEOUT)
