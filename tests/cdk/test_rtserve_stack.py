"""RtserveStack: the provider block, the secret-free configuration, and the state location."""

from __future__ import annotations

import cdktf
import pytest

from rtserve.cdk import RtserveStack
from tests.cdk.conftest import HOST, synth

pytestmark = pytest.mark.unit


def test_the_provider_points_at_the_host_and_carries_no_token(stack: RtserveStack) -> None:
    document = synth(stack)
    assert document["provider"]["rtserve"] == [{"host": HOST}]
    assert document["terraform"]["required_providers"]["rtserve"] == {"source": "rtserve/rtserve", "version": "0.1.0"}


def test_a_literal_token_is_refused() -> None:
    with pytest.raises(ValueError, match="a literal token would be written into cdk.tf.json"):
        RtserveStack(cdktf.Testing.app(), "s", host=HOST, token="rtsv-secret")


def test_a_token_reference_is_accepted() -> None:
    app = cdktf.Testing.app()
    holder = cdktf.TerraformStack(app, "holder")
    variable = cdktf.TerraformVariable(holder, "token", type="string", sensitive=True)
    stack = RtserveStack(app, "s", host=HOST, token=variable.string_value)
    assert synth(stack)["provider"]["rtserve"][0]["token"].startswith("${")


def test_a_host_that_is_not_a_url_is_refused() -> None:
    with pytest.raises(ValueError, match="host must be a URL starting with http:// or https://; got '127.0.0.1:8080'"):
        RtserveStack(cdktf.Testing.app(), "s", host="127.0.0.1:8080")


def test_state_path_selects_a_local_state_file() -> None:
    stack = RtserveStack(cdktf.Testing.app(), "s", host=HOST, state_path="state/s/terraform.tfstate")
    assert synth(stack)["terraform"]["backend"] == {"local": {"path": "state/s/terraform.tfstate"}}


def test_by_default_the_state_is_cdktfs_per_stack_local_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = cdktf.App(outdir=str(tmp_path / "out"))
    RtserveStack(app, "staging", host=HOST)
    app.synth()
    text = (tmp_path / "out" / "stacks" / "staging" / "cdk.tf.json").read_text()
    assert '"path": "' in text and "terraform.staging.tfstate" in text
    assert "token" not in text
