"""Construct tests synthesize with cdktf.Testing and read the JSON Terraform would get."""

from __future__ import annotations

import json
import os
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import cdktf  # noqa: E402
import pytest  # noqa: E402

from rtserve.cdk import RtserveStack  # noqa: E402

HOST = "http://rtserve.test:8080"


@pytest.fixture
def stack() -> RtserveStack:
    return RtserveStack(cdktf.Testing.app(), "test", host=HOST)


def synth(stack: cdktf.TerraformStack) -> dict[str, Any]:
    return json.loads(cdktf.Testing.synth(stack))


def only(document: dict[str, Any], resource_type: str, kind: str = "resource") -> dict[str, Any]:
    """The one resource (or data source) of `resource_type` in a synthesized stack."""
    [value] = document[kind][resource_type].values()
    return value
