"""Where a model runs: the server's environment when it satisfies the model's logged requirements."""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

import pytest

from rtserve.server.environments.builder import environment_key, replica_requirements, uv_environment
from rtserve.server.environments.decision import ModelRequirements, decide, read_requirements, unmet

pytestmark = pytest.mark.unit

SERVER_PYTHON = platform.python_version()
PANDAS = importlib.metadata.version("pandas")
MLFLOW = importlib.metadata.version("mlflow")


def logged(tmp_path: Path, requirements: list[str], python: str | None = SERVER_PYTHON) -> Path:
    (tmp_path / "requirements.txt").write_text("\n".join(requirements) + "\n")
    if python is not None:
        (tmp_path / "python_env.yaml").write_text(f"python: {python}\nbuild_dependencies:\n- pip\n")
    return tmp_path


def test_requirements_txt_is_read_without_comments_and_pip_options(tmp_path: Path):
    model = read_requirements(logged(tmp_path, ["# a comment", "-r extra.txt", "pandas==2.0  # pinned", "", "numpy"]))

    assert model == ModelRequirements(("pandas==2.0", "numpy"), SERVER_PYTHON)


def test_a_model_without_python_env_yaml_has_no_python_version(tmp_path: Path):
    assert read_requirements(logged(tmp_path, ["pandas"], python=None)).python is None


def test_installed_versions_that_meet_every_pin_satisfy_the_model(tmp_path: Path):
    model = read_requirements(logged(tmp_path, [f"pandas=={PANDAS}", f"mlflow=={MLFLOW}", "numpy"]))

    assert unmet(model) == []


def test_a_missing_package_a_wrong_version_and_another_python_minor_are_each_named():
    model = ModelRequirements(("roman==4.2", "pandas==0.1.0"), "2.7.18")

    reasons = unmet(model)

    assert reasons == [
        f"logged with Python 2.7.18, the server runs {SERVER_PYTHON}",
        "roman is not installed",
        f"pandas==0.1.0 wanted, {PANDAS} installed",
    ]


def test_another_patch_release_of_the_same_python_minor_is_satisfied():
    major, minor, _ = SERVER_PYTHON.split(".")

    assert unmet(ModelRequirements((), f"{major}.{minor}.0")) == []


def test_a_requirement_whose_marker_does_not_apply_here_is_ignored():
    assert unmet(ModelRequirements(('roman==4.2; sys_platform == "win32"',), None)) == []


def test_a_line_that_is_no_requirement_is_unmet():
    assert unmet(ModelRequirements(("git+https://example.invalid/x.git",), None)) == [
        "'git+https://example.invalid/x.git' is not a requirement the server can check"
    ]


def test_auto_serves_a_satisfied_model_from_the_server_environment(tmp_path: Path):
    decision = decide("auto", logged(tmp_path, [f"pandas=={PANDAS}"]))

    assert not decision.isolated
    assert decision.reason == "the server's environment satisfies the model's requirements"


def test_auto_isolates_a_model_the_server_does_not_satisfy_and_says_why(tmp_path: Path):
    decision = decide("auto", logged(tmp_path, ["roman==4.2"]))

    assert decision.isolated
    assert decision.reason.endswith("roman is not installed")


def test_local_and_isolated_policies_decide_whatever_the_model_logged(tmp_path: Path):
    assert not decide("local", logged(tmp_path, ["roman==4.2"])).isolated
    assert decide("isolated", logged(tmp_path, [f"pandas=={PANDAS}"])).isolated


def test_replica_requirements_add_mlflow_skinny_at_the_server_version_and_what_the_replica_imports():
    lines = replica_requirements(ModelRequirements(("roman==4.2",), None))

    server_mlflow = f"mlflow-skinny=={importlib.metadata.version('mlflow-skinny')}"
    assert lines == ["roman==4.2", server_mlflow, "pandas", "numpy", "msgspec"]


def test_a_model_pinning_mlflow_gets_mlflow_skinny_at_its_own_version():
    lines = replica_requirements(ModelRequirements(("mlflow[extras]==3.1.0", "roman"), None))

    assert lines == ["mlflow-skinny==3.1.0", "roman", "pandas", "numpy", "msgspec"]


def test_the_environment_key_depends_on_python_and_pins_not_on_comments():
    resolved = "roman==4.2\n    # via -r requirements.in\npandas==2.2.0\n"

    assert environment_key("3.11.7", resolved) == environment_key("3.11.7", "roman==4.2\npandas==2.2.0\n")
    assert environment_key("3.11.7", resolved) != environment_key("3.12.1", resolved)
    assert environment_key("3.11.7", resolved) != environment_key("3.11.7", "roman==4.1\npandas==2.2.0\n")


def test_pip_index_settings_become_uv_ones_unless_uv_has_its_own(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("UV_INDEX_URL", raising=False)
    monkeypatch.delenv("UV_DEFAULT_INDEX", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")

    assert uv_environment()["UV_INDEX_URL"] == "https://mirror.example/simple"

    monkeypatch.setenv("UV_INDEX_URL", "https://own.example/simple")
    assert uv_environment()["UV_INDEX_URL"] == "https://own.example/simple"


def test_uv_never_downloads_a_python(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("UV_PYTHON_DOWNLOADS", raising=False)

    assert uv_environment()["UV_PYTHON_DOWNLOADS"] == "never"
