"""`rtserve deploy / plan / destroy` check the server and the token before Terraform runs, and say what to do."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from rtserve.server.deploy import DeployError, Stack, check_backends
from rtserve.server.process import BackendProcess, free_port
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.api


def stack(tmp_path: Path, provider: dict) -> Stack:
    workdir = tmp_path / "stacks" / "dev"
    workdir.mkdir(parents=True)
    (workdir / "cdk.tf.json").write_text(json.dumps({"provider": {"rtserve": [provider]}}))
    return Stack("dev", workdir)


def check(stacks: list[Stack], **environ: str) -> None:
    check_backends(stacks, Console(file=io.StringIO()), environ)


def test_a_server_that_takes_the_token_passes(tmp_path: Path, backend: BackendProcess):
    check([stack(tmp_path, {"host": backend.url})], RTSERVE_TOKEN=ADMIN_TOKEN)
    check([stack(tmp_path / "env", {})], RTSERVE_HOST=backend.url, RTSERVE_TOKEN=ADMIN_TOKEN)


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"RTSERVE_TOKEN": "rtsv-not-a-token"}, "refused the token in RTSERVE_TOKEN"),
        ({}, "refused no token (RTSERVE_TOKEN is not set)"),
    ],
)
def test_a_token_the_server_refuses_is_named_with_how_to_make_one(
    tmp_path: Path, backend: BackendProcess, environ: dict[str, str], says: str
):
    with pytest.raises(DeployError) as refused:
        check([stack(tmp_path, {"host": backend.url})], **environ)
    assert says in str(refused.value) and "rtserve tokens create" in str(refused.value)


def test_no_server_listening_asks_whether_it_runs(tmp_path: Path):
    host = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(DeployError) as refused:
        check([stack(tmp_path, {"host": host})], RTSERVE_TOKEN=ADMIN_TOKEN)
    assert f"Cannot reach the rtserve server at {host}" in str(refused.value)
    assert "Is it running?" in str(refused.value)


def test_a_stack_without_a_host_says_to_set_one(tmp_path: Path):
    with pytest.raises(DeployError, match="set RTSERVE_HOST"):
        check([stack(tmp_path, {})], RTSERVE_TOKEN=ADMIN_TOKEN)
