"""`cdktf deploy` from the npm cdktf-cli@0.21.0 on this repository, with the embedded Terraform.

The CLI is installed with npm into a cache directory (.cache/, ignored by git) the first time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from rtserve.provider.install import install
from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import DEMO_MODEL, register_demo_model
from rtserve.server.process import BackendProcess
from tests.conftest import mlflow_pointing_at

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
CLI_DIR = REPO / ".cache" / "cdktf-cli-0.21.0"
TOKEN = "rtsv-npm-cdktf"


def cdktf_cli() -> Path:
    binary = CLI_DIR / "node_modules" / ".bin" / "cdktf"
    if not binary.exists():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed")
        CLI_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "cdktf-cli@0.21.0"],
            cwd=CLI_DIR,
            check=True,
            capture_output=True,
            timeout=600,
        )
    return binary


def test_cdktf_deploy_applies_the_worked_example(tmp_path: Path):
    cli = cdktf_cli()
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "main.py", project)
    # The copy runs outside the repository: point the app at the repository's interpreter.
    config = (REPO / "cdktf.json").read_text().replace(".venv/bin/python", str(REPO / ".venv" / "bin" / "python"))
    (project / "cdktf.json").write_text(config)
    installation = install()
    with BackendProcess(tmp_path / "data", admin_token=TOKEN) as backend, mlflow_pointing_at(backend.url, TOKEN):
        register_demo_model(backend.url)
        env = {
            **os.environ,
            **installation.env,
            "TERRAFORM_BINARY_NAME": str(installation.terraform),
            "RTSERVE_HOST": backend.url,
            "RTSERVE_TOKEN": TOKEN,
            "RTSERVE_STATE_DIR": str(tmp_path),
            "CI": "1",
            "CHECKPOINT_DISABLE": "1",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        }
        result = subprocess.run(
            [str(cli), "deploy", "--auto-approve", "--skip-provider-lock", "staging", "production"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        client = BackendClient(backend.url, TOKEN)
        assert client.aliases(DEMO_MODEL) == {"Staging": "2", "Production": "1"}
        for stage in ("Staging", "Production"):
            response = httpx.post(
                f"{backend.url}/model-endpoint/{DEMO_MODEL}/{stage}/invocations",
                json=request_bodies()["dataframe_split"][1],
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert response.status_code == 200, response.text
        canary = client.serving_endpoint(f"{DEMO_MODEL}-canary")  # applied until ready, not merely created
        assert canary["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"}
        client.close()
