"""Whether a model runs in the server's environment or in one of its own, from what MLflow logged with it.

`auto` serves a model from the server's environment when that satisfies the model: the Python minor
version MLflow recorded (python_env.yaml) is the server's, and every requirement of requirements.txt
is installed at a version it allows. Anything else gets an environment built with uv.
"""

from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class ModelRequirements:
    """What MLflow logged with a model: its pip requirements and the Python version it was logged with."""

    requirements: tuple[str, ...]
    python: str | None  # e.g. "3.11.7"; None when the model has no python_env.yaml


@dataclass(frozen=True)
class Decision:
    isolated: bool
    reason: str  # one line, for the build log
    requirements: ModelRequirements


def read_requirements(model_dir: Path) -> ModelRequirements:
    """The model's requirements.txt lines (comments and pip options left out) and python_env.yaml's Python."""
    lines: list[str] = []
    requirements_file = model_dir / "requirements.txt"
    if requirements_file.is_file():
        for raw in requirements_file.read_text().splitlines():
            line = raw.split(" #", 1)[0].strip()
            if line and not line.startswith(("#", "-")):
                lines.append(line)
    python = None
    python_env = model_dir / "python_env.yaml"
    if python_env.is_file():
        loaded = yaml.safe_load(python_env.read_text()) or {}
        if isinstance(loaded, dict) and loaded.get("python"):
            python = str(loaded["python"])
    return ModelRequirements(tuple(lines), python)


def unmet(model: ModelRequirements, python: str | None = None) -> list[str]:
    """Why the server's environment does not satisfy `model`, one reason per line; empty if it does."""
    reasons: list[str] = []
    server_python = python or platform.python_version()
    if model.python and _minor(model.python) != _minor(server_python):
        reasons.append(f"logged with Python {model.python}, the server runs {server_python}")
    for line in model.requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            reasons.append(f"{line!r} is not a requirement the server can check")
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(canonicalize_name(requirement.name))
        except importlib.metadata.PackageNotFoundError:
            reasons.append(f"{requirement.name} is not installed")
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            reasons.append(f"{requirement} wanted, {installed} installed")
    return reasons


def decide(policy: str, model_dir: Path) -> Decision:
    """Where a model runs under `policy`, one of `rtserve.spec.ENVIRONMENT_POLICIES` (`auto`, `local`, `isolated`)."""
    model = read_requirements(model_dir)
    if policy == "local":
        return Decision(False, "policy 'local': the server's environment, whatever the model logged", model)
    if policy == "isolated":
        return Decision(True, "policy 'isolated': an environment of its own", model)
    reasons = unmet(model)
    if not reasons:
        return Decision(False, "the server's environment satisfies the model's requirements", model)
    return Decision(True, "the server's environment does not satisfy the model: " + "; ".join(reasons), model)


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])
