"""Models served from environments of their own, built with uv by a live backend (real builds, real replicas).

One backend, one uv cache for the session; the versions that share requirements share one build.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
from mlflow.models import infer_signature

from rtserve.server.client import BackendClient
from rtserve.server.environments.builder import Builder
from rtserve.server.environments.decision import ModelRequirements
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN, mlflow_pointing_at
from tests.registry_helpers import MODEL_CODE
from tests.ui.helpers import UiClient

pytestmark = [pytest.mark.api, pytest.mark.timeout(600)]

SERVING = "/api/2.0/serving-endpoints"
PREVIEW = "/api/2.0/preview/mlflow/endpoints-v2"
ROMAN = "env-roman"
OTHER_SKLEARN = "1.5.2"  # the server installs a newer scikit-learn (pyproject.toml: scikit-learn>=1.3)
BUILD_TIMEOUT = 300.0


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One uv cache for the module's builds (the backend's and the test's own)."""
    cache = tmp_path_factory.mktemp("uv-cache")
    saved = os.environ.get("UV_CACHE_DIR")
    os.environ["UV_CACHE_DIR"] = str(cache)
    yield cache
    if saved is None:
        os.environ.pop("UV_CACHE_DIR", None)
    else:
        os.environ["UV_CACHE_DIR"] = saved


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, uv_cache: Path) -> Iterator[BackendProcess]:
    root = tmp_path_factory.mktemp("environments")
    process = BackendProcess(root / "data", admin_token=ADMIN_TOKEN, log_path=root / "backend.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def live(server: BackendProcess) -> Iterator[BackendClient]:
    client = BackendClient(server.url, ADMIN_TOKEN)
    with mlflow_pointing_at(server.url, ADMIN_TOKEN):
        yield client
    client.close()


def register_roman(requirements: list[str]) -> str:
    """A version of ROMAN whose predict imports `roman` (not in the server's environment)."""
    mlflow.set_experiment("rtserve-environments")
    frame = pd.DataFrame({"x": [4.0, 9.0]})
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE / "roman_numerals.py"),
            signature=infer_signature(frame, ["IV", "IX"]),
            registered_model_name=ROMAN,
            pip_requirements=[f"mlflow=={mlflow.__version__}", *requirements],
        )
    return str(info.registered_model_version)


def serve(client: BackendClient, name: str, model: str, version: str) -> None:
    entity = {"entity_name": model, "entity_version": version, "workload_size": "Small", "scale_to_zero_enabled": False}
    client.create_serving_endpoint(name, {"served_entities": [entity]})


def build_logs(client: BackendClient, name: str, model: str, version: str) -> str:
    return client.call("GET", f"{SERVING}/{name}/served-models/{model}-{version}/build-logs")["logs"]


def predictions(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def deployment_state(client: BackendClient, name: str) -> dict:
    return client.serving_endpoint(name)["pending_config"]["served_entities"][0]["state"]


def test_a_model_importing_a_package_the_server_lacks_is_served_from_its_own_environment(live: BackendClient):
    version = register_roman(["roman==4.2"])
    serve(live, "env-roman-1", ROMAN, version)

    live.wait_serving_settled("env-roman-1", timeout=BUILD_TIMEOUT)

    assert predictions(live.score_serving("env-roman-1", {"dataframe_records": [{"x": 4}, {"x": 9}]})) == ["IV", "IX"]
    logs = build_logs(live, "env-roman-1", ROMAN, version)
    assert "Environment: the server's environment does not satisfy the model: roman is not installed" in logs
    assert "$ uv pip compile" in logs and "$ uv pip sync" in logs
    assert "+ roman==4.2" in logs  # uv's own output
    assert "(install: " in logs  # with its timing
    assert "Built environment" in logs


def test_a_second_version_with_the_same_requirements_reuses_the_environment(live: BackendClient):
    version = register_roman(["roman==4.2"])
    serve(live, "env-roman-2", ROMAN, version)

    live.wait_serving_settled("env-roman-2", timeout=BUILD_TIMEOUT)

    assert predictions(live.score_serving("env-roman-2", {"dataframe_records": [{"x": 14}]})) == ["XIV"]
    logs = build_logs(live, "env-roman-2", ROMAN, version)
    assert "Reused environment" in logs
    assert "$ uv pip sync" not in logs


def test_the_preview_api_returns_the_same_build_log(live: BackendClient):
    live.enable(ROMAN)
    params = {"registered_model_name": ROMAN, "endpoint_version_name": "1"}

    logs = live.call("GET", f"{PREVIEW}/get-version-build-logs", params=params)["logs"]

    assert "roman is not installed" in logs and "Built environment" in logs


def test_the_version_tab_of_the_ui_shows_the_build_log(live: BackendClient, server: BackendProcess):
    ui = UiClient(server)
    try:
        assert ui.sign_in(ADMIN_TOKEN).status_code == 303

        fragment = ui.http.get(f"/ui/models/{ROMAN}/versions/1/logs", params={"build": "1"})
    finally:
        ui.close()

    assert fragment.status_code == 200
    assert 'data-testid="build-log-tab"' in fragment.text
    assert "roman is not installed" in fragment.text and "Built environment" in fragment.text


def test_an_unresolvable_requirement_fails_its_version_only_with_uvs_message(live: BackendClient):
    version = register_roman(["rtserve-no-such-package-anywhere==9.9.9"])
    serve(live, "env-roman-broken", ROMAN, version)

    deadline = time.monotonic() + BUILD_TIMEOUT
    while (state := deployment_state(live, "env-roman-broken"))["deployment"] != "DEPLOYMENT_FAILED":
        assert time.monotonic() < deadline, state
        time.sleep(0.2)

    assert state["deployment_state_message"].startswith("Could not build the model's environment: uv could not resolve")
    assert "rtserve-no-such-package-anywhere" in state["deployment_state_message"]
    logs = build_logs(live, "env-roman-broken", ROMAN, version)
    assert "rtserve-no-such-package-anywhere" in logs and "FAILED after" in logs
    # The other versions keep serving.
    assert predictions(live.score_serving("env-roman-1", {"dataframe_records": [{"x": 3}]})) == ["III"]


TRAIN = """
import json, sys
import mlflow.pyfunc, mlflow.sklearn, pandas as pd, sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True, as_frame=True)
model = LogisticRegression(max_iter=300).fit(X, y)
mlflow.sklearn.save_model(model, sys.argv[1], serialization_format="cloudpickle", input_example=X.head(2))
rows = X.iloc[[0, 60, 120]]
expected = mlflow.pyfunc.load_model(sys.argv[1]).predict(rows)
print(json.dumps({"sklearn": sklearn.__version__, "rows": rows.to_dict(orient="split"), "expected": expected.tolist()}))
"""


def test_a_scikit_learn_model_logged_with_another_version_predicts_as_in_its_own_environment(
    live: BackendClient, tmp_path: Path
):
    # The model is trained and saved by scikit-learn 1.5.2, in an environment of its own (built here with uv).
    trainer = Builder(tmp_path / "trainer-envs").ensure(
        ModelRequirements((f"scikit-learn=={OTHER_SKLEARN}",), None), print
    )
    saved = tmp_path / "model"
    done = subprocess.run(
        [trainer.python, "-c", TRAIN, str(saved)], capture_output=True, text=True, check=True, timeout=300
    )
    trained = json.loads(done.stdout.strip().splitlines()[-1])
    assert trained["sklearn"] == OTHER_SKLEARN
    mlflow.set_experiment("rtserve-environments")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(saved), "model")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "env-old-sklearn").version
    serve(live, "env-old-sklearn", "env-old-sklearn", str(version))

    live.wait_serving_settled("env-old-sklearn", timeout=BUILD_TIMEOUT)

    rows = trained["rows"]
    body = {"dataframe_split": {"columns": rows["columns"], "data": rows["data"]}}
    assert predictions(live.score_serving("env-old-sklearn", body)) == trained["expected"]
    logs = build_logs(live, "env-old-sklearn", "env-old-sklearn", str(version))
    assert f"scikit-learn=={OTHER_SKLEARN} wanted" in logs
    assert f"+ scikit-learn=={OTHER_SKLEARN}" in logs or "Reused environment" in logs


def test_two_versions_needing_one_environment_at_once_build_it_once(uv_cache: Path, tmp_path: Path):
    builder = Builder(tmp_path / "envs")
    logs: list[list[str]] = [[], []]
    requirements = ModelRequirements(("roman==4.2",), None)

    with ThreadPoolExecutor(max_workers=2) as pool:
        built = list(pool.map(lambda log: builder.ensure(requirements, log.append), logs))

    assert built[0].path == built[1].path
    assert sorted(environment.reused for environment in built) == [False, True]
    assert sum("$ uv pip sync" in line for log in logs for line in log) == 1
