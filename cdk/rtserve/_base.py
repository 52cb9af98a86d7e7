"""What the hand-written bindings share: provider metadata and the Terraform meta-arguments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from typing import Any, TypedDict

from rtserve.cdk._framework import cdktf
from rtserve.spec import PROVIDER_NAME, PROVIDER_VERSION


def generator_metadata() -> cdktf.TerraformProviderGeneratorMetadata:
    return cdktf.TerraformProviderGeneratorMetadata(provider_name=PROVIDER_NAME, provider_version=PROVIDER_VERSION)


class MetaArguments(TypedDict, total=False):
    """Terraform's meta-arguments, passed through to cdktf.TerraformResource / TerraformDataSource."""

    connection: Any
    count: Any
    depends_on: Any
    for_each: Any
    lifecycle: Any
    provider: Any
    provisioners: Any


def block(value: Any) -> dict[str, Any] | None:
    """A nested block as Terraform JSON: a dataclass or a mapping, without its None values."""
    if value is None:
        return None
    items = asdict(value) if is_dataclass(value) and not isinstance(value, type) else dict(value)
    return {k: v for k, v in items.items() if v is not None}


def blocks(values: Any) -> list[dict[str, Any]] | None:
    if values is None:
        return None
    return [b for b in (block(v) for v in values) if b is not None]


def without_none(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}
