"""The wheel as a user gets it: built once per session from the working tree, installed into fresh venvs.

Everything runs in subprocesses with the session's own HOME, TMPDIR and pip cache (shared by the
venvs, so jsii, constructs and their dependencies are downloaded once), and without PYTHONPATH, so
nothing of the checkout or of the test venv leaks in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
HOST = "http://rtserve.example:8080"
FRAMEWORKS = ("cdktf", "cdktn")

# What a user's infrastructure repository holds: an app that takes the framework's App, the constructs,
# and synthesizes one stack. `{framework}` is cdktf or cdktn; the app prints where things came from.
APP = """\
import json
import sys

import {framework}
import rtserve
import rtserve.cdk
from rtserve.cdk import (
    AccessControl,
    ComputeConfig,
    ModelEndpoint,
    PermissionLevel,
    RateLimit,
    RtserveStack,
    ServedEntity,
    ServingEndpoint,
    ServingEndpointPermissions,
)

app = {framework}.App(outdir=sys.argv[1])
stack = RtserveStack(app, "production", host={host!r})
iris = ModelEndpoint(
    stack,
    "iris",
    model_name="iris-classifier",
    production=ComputeConfig.small(),
    promotions={{"Production": "1"}},
    disable_on_destroy=False,
)
canary = ServingEndpoint(
    stack,
    "canary",
    name="iris-canary",
    served_entities=[
        ServedEntity("iris-classifier", "1", name="current"),
        ServedEntity("iris-classifier", "2", name="candidate"),
    ],
    traffic={{"current": 90, "candidate": 10}},
    rate_limits=[RateLimit(calls=600, key="user")],
)
ServingEndpointPermissions(
    stack, "canary-acl", endpoint=canary, access_control=[AccessControl.group("users", PermissionLevel.CAN_QUERY)]
)
{framework}.TerraformOutput(stack, "url", value=canary.endpoint_url)
app.synth()

print(json.dumps({{
    "framework": {framework}.__file__,
    "rtserve_cdk": rtserve.cdk.__file__,
    "version": rtserve.__version__,
    "modules": sorted(name for name in sys.modules if name.split(".")[0] in ("rtserve", "mlflow", "fastapi", "tf")),
}}))
"""


@dataclass(frozen=True)
class Sandbox:
    root: Path
    env: Mapping[str, str]


@dataclass(frozen=True)
class Venv:
    framework: str
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"


@dataclass(frozen=True)
class Synthesized:
    app_dir: Path
    document: dict[str, Any]
    probe: dict[str, Any]


def run(args: list[str | os.PathLike[str]], env: Mapping[str, str], cwd: Path, timeout: float = 600) -> str:
    """Run a command; on failure, the assertion shows its output."""
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    output = f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, f"{' '.join(map(str, args))} exited {done.returncode}\n{output}"
    return done.stdout


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    root = tmp_path_factory.mktemp("packaging")
    dirs = {name: root / name for name in ("home", "tmp", "pip-cache", "xdg-cache")}
    for path in dirs.values():
        path.mkdir()
    # The machine's pip settings (index, certificates) still apply; not where pip would install to.
    dropped = ("PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_USER", "PIP_NO_CACHE_DIR", "PIP_REQUIRE_VIRTUALENV")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "CDKTF_", "JSII_")) and k not in dropped
    }
    env.update(
        HOME=str(dirs["home"]),
        TMPDIR=str(dirs["tmp"]),
        XDG_CACHE_HOME=str(dirs["xdg-cache"]),
        PIP_CACHE_DIR=str(dirs["pip-cache"]),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PYTHONNOUSERSITE="1",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
    )
    return Sandbox(root, env)


def working_tree_copy(destination: Path) -> Path:
    """The checkout's files (tracked, and new ones not ignored), as a user's clone or an sdist would hold them.

    Building from a copy keeps setuptools' build/ and egg-info out of the repository, and keeps a stale
    build/lib there from slipping deleted modules into the wheel.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is skipped
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.fixture(scope="session")
def source(sandbox: Sandbox) -> Path:
    """The copy of the working tree the wheel is built from (the checkout may change while the tests run)."""
    return working_tree_copy(sandbox.root / "source")


@pytest.fixture(scope="session")
def wheel(sandbox: Sandbox, source: Path) -> Path:
    dist = sandbox.root / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dist, source], sandbox.env, cwd=sandbox.root)
    [built] = dist.glob("rtserve-*.whl")
    return built


@pytest.fixture(scope="session")
def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


class LightVenvs:
    """One fresh venv per framework, made on first use: the wheel with only that framework's extra."""

    def __init__(self, sandbox: Sandbox, wheel: Path) -> None:
        self.sandbox, self.wheel = sandbox, wheel
        self._venvs: dict[str, Venv] = {}
        self._synthesized: dict[str, Synthesized] = {}

    def get(self, framework: str) -> Venv:
        if framework not in self._venvs:
            venv = Venv(framework, self.sandbox.root / f"venv-{framework}")
            # Without a pip of its own (the test venv's pip installs into it), and without byte-compiling
            # all of jsii and cdktf: the slow parts of a fresh venv.
            run([sys.executable, "-m", "venv", "--without-pip", venv.root], self.sandbox.env, cwd=self.sandbox.root)
            run(
                [sys.executable, "-m", "pip", "--python", venv.python, "install", "--quiet", "--no-compile"]
                + [f"{self.wheel}[{framework}]"],
                self.sandbox.env,
                cwd=self.sandbox.root,
                timeout=900,
            )
            self._venvs[framework] = venv
        return self._venvs[framework]

    def python_code(self, framework: str, code: str) -> str:
        """Run `code` with the venv's python from a directory outside the repository; its stdout."""
        return run([self.get(framework).python, "-c", code], self.sandbox.env, cwd=self.sandbox.env["HOME"])

    def synthesized(self, framework: str) -> Synthesized:
        """The app above, written into its own directory outside the repository and run there."""
        if framework not in self._synthesized:
            venv = self.get(framework)
            app_dir = self.sandbox.root / f"infra-{framework}"
            app_dir.mkdir()
            (app_dir / "main.py").write_text(APP.format(framework=framework, host=HOST))
            stdout = run([venv.python, "main.py", "cdktf.out"], self.sandbox.env, cwd=app_dir)
            document = json.loads((app_dir / "cdktf.out" / "stacks" / "production" / "cdk.tf.json").read_text())
            self._synthesized[framework] = Synthesized(app_dir, document, json.loads(stdout.strip().splitlines()[-1]))
        return self._synthesized[framework]


@pytest.fixture(scope="session")
def light_venvs(sandbox: Sandbox, wheel: Path) -> LightVenvs:
    return LightVenvs(sandbox, wheel)
