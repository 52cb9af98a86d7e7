"""End to end through CDKTF: two stacks ("staging", "production") share one model's endpoint, each
owning its stage, as the worked example (main.py) does. Synthesized with cdktf, applied with the
embedded Terraform against a live backend, then scored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rtserve.provider.install import Installation, install
from rtserve.provider.terraform import Terraform
from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
MODEL = "iris-cdktf-e2e"

APP = """
import os
import sys

import cdktf

sys.path.insert(0, {repo!r})
from rtserve.cdk import ComputeConfig, ModelEndpoint, RtserveStack  # noqa: E402

host, model = os.environ["RTSERVE_HOST"], os.environ["RTSERVE_MODEL"]
app = cdktf.App()

staging = RtserveStack(app, "staging", host=host)
iris = ModelEndpoint(staging, "iris", model_name=model, staging=ComputeConfig.small(),
                     promotions={{"Staging": "2"}}, disable_on_destroy=False, timeout="4m")
cdktf.TerraformOutput(staging, "url", value=iris.staging_url)

production = RtserveStack(app, "production", host=host)
iris = ModelEndpoint(production, "iris", model_name=model, production=ComputeConfig.small(),
                     promotions={{"Production": "1"}}, disable_on_destroy=False, timeout="4m")
cdktf.TerraformOutput(production, "url", value=iris.production_url)

app.synth()
"""


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    return install(tmp_path_factory.mktemp("tf") / "mirror")


@pytest.fixture(scope="module")
def model(mlflow_client_env: str) -> str:
    register_demo_model(mlflow_client_env, name=MODEL)
    return MODEL


def synthesize(main: Path, workdir: Path, host: str, model: str) -> Path:
    env = {
        **os.environ,
        "RTSERVE_HOST": host,
        "RTSERVE_MODEL": model,
        "CDKTF_OUTDIR": str(workdir / "cdktf.out"),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    subprocess.run([sys.executable, str(main)], cwd=workdir, env=env, check=True, timeout=300)
    return workdir / "cdktf.out" / "stacks"


def score(url: str) -> httpx.Response:
    _, body = request_bodies()["dataframe_split"]
    return httpx.post(url, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)


def deploy_both_then_destroy(
    stacks: Path, installation: Installation, admin: BackendClient, model: str, resources: dict[str, int]
) -> None:
    runners = {
        name: Terraform(stacks / name, installation, env={"RTSERVE_TOKEN": ADMIN_TOKEN}, check=True)
        for name in ("staging", "production")
    }
    try:
        for name, tf in runners.items():
            tf.init()
            assert str(tf.apply().summary) == f"{resources[name]} to add, 0 to change, 0 to destroy"
        assert admin.aliases(model) == {"Staging": "2", "Production": "1"}
        for stage, tf in (("Staging", runners["staging"]), ("Production", runners["production"])):
            url = tf.output()["url"]
            assert url.endswith(f"/model-endpoint/{model}/{stage}/invocations")
            assert score(url).status_code == 200
            assert not tf.plan().summary.has_changes

        # Destroying one stack leaves the other stage serving: the stacks share the model's endpoint.
        runners["staging"].destroy()
        assert "Staging" not in admin.aliases(model)
        assert score(runners["production"].output()["url"]).status_code == 200
        assert not runners["production"].plan().summary.has_changes
    finally:
        for tf in runners.values():
            tf.check = False
            tf.destroy()


def test_two_stacks_share_one_model_each_owning_its_stage(
    tmp_path: Path, backend: BackendProcess, admin: BackendClient, installation: Installation, model: str
) -> None:
    main = tmp_path / "main.py"
    main.write_text(APP.format(repo=str(REPO)))
    stacks = synthesize(main, tmp_path, backend.url, model)
    deploy_both_then_destroy(stacks, installation, admin, model, {"staging": 2, "production": 2})


def test_the_repositorys_main_py_deploys(
    tmp_path: Path, backend: BackendProcess, admin: BackendClient, installation: Installation, model: str
) -> None:
    main = REPO / "main.py"
    stacks = synthesize(main, tmp_path, backend.url, model)
    assert {p.name for p in stacks.iterdir()} == {"staging", "production"}
    # production also owns the serving endpoint `<model>-canary`, checked (and scored) by the demo test
    deploy_both_then_destroy(stacks, installation, admin, model, {"staging": 2, "production": 4})


def test_rtserve_plan_exits_2_with_changes_pending_and_0_once_deployed(
    tmp_path: Path, backend: BackendProcess, model: str
) -> None:
    (tmp_path / "main.py").write_text(APP.format(repo=str(REPO)))
    (tmp_path / "cdktf.json").write_text('{"language": "python", "app": "python main.py"}')
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),  # the provider's mirror goes under this run's own home
        "RTSERVE_HOST": backend.url,
        "RTSERVE_MODEL": model,
        "RTSERVE_TOKEN": ADMIN_TOKEN,
    }

    def rtserve(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "rtserve.server", *args, "--project", str(tmp_path)]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=400)

    pending = rtserve("plan")
    assert pending.returncode == 2, pending.stdout + pending.stderr
    assert f"/model-endpoint/{model}/Staging/invocations answers from version 2" in pending.stdout
    assert 'version = "2"' in pending.stdout  # the resource's attributes, as Terraform shows them
    try:
        deployed = rtserve("deploy")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        settled = rtserve("plan")
        assert settled.returncode == 0, settled.stdout + settled.stderr

        # A promotion of version 2 to Production, reviewed as a plan: the URL, the attribute, and the warning
        # that version 2 leaves Staging (a version is in one stage at a time).
        main = tmp_path / "main.py"
        main.write_text(main.read_text().replace('{"Production": "1"}', '{"Production": "2"}'))
        report = rtserve("plan", "--json")
        assert report.returncode == 2, report.stderr
        plan = json.loads(report.stdout)
        assert f"/model-endpoint/{model}/Production/invocations answers from version 2 (was version 1)" in " ".join(
            plan["serving"]["urls"]
        )
        assert any("leaves Staging for Production" in warning for warning in plan["serving"]["warnings"])
        (change,) = [r for r in plan["resources"] if r["type"] == "rtserve_model_version_stage"]
        assert {"path": "version", "before": "1", "after": "2"} in change["attributes"]
        markdown = rtserve("plan", "--format", "markdown")
        assert markdown.stdout.startswith("### Serving plan") and ":warning:" in markdown.stdout
    finally:
        refused = rtserve("destroy")  # not at a terminal: it will not act without --auto-approve
        assert refused.returncode == 1 and "--auto-approve" in refused.stderr
        destroyed = rtserve("destroy", "--auto-approve")
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
        assert "staging: destroyed: " in destroyed.stdout
