"""Builds a model's environment with uv, or reuses one built before, under `<data-dir>/envs/<key>`.

The model's requirements plus what a replica needs (MLflow, pandas, numpy, msgspec) are resolved first
(`uv pip compile`); the key is a hash of the Python version and that resolution, so versions with the
same resolved requirements share one environment, across restarts too. A new environment is made
next to its final place (`uv venv`, `uv pip sync` of the resolution) and renamed into it when
complete, so a half-built one is never used. One build runs at a time per key (a lock file, which
also holds between backend instances sharing the data dir).

The package index is whatever uv is configured with (UV_INDEX_URL, UV_EXTRA_INDEX_URL, or pip's
PIP_INDEX_URL, passed on as uv's); nothing else is fetched.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from rtserve.server.environments import worker_path
from rtserve.server.environments.decision import ModelRequirements

READY_MARKER = "rtserve-ready"
LAST_USED = "rtserve-last-used"
LOCK_FILE = "requirements.lock"
# What the replica itself imports besides the model's own requirements (backend/worker).
REPLICA_PACKAGES = ("pandas", "numpy", "msgspec")  # msgspec: backend/worker/jsonbody.py
DEFAULT_TIMEOUT = 600.0


class BuildFailed(Exception):
    """uv could not resolve or install the requirements; the message is uv's own (its last lines)."""


@dataclass(frozen=True)
class Environment:
    key: str
    path: Path
    reused: bool

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")


def uv_binary() -> str:
    """The uv executable the `uv` package ships (a dependency of the server extra)."""
    from uv import find_uv_bin

    return find_uv_bin()


def replica_requirements(model: ModelRequirements) -> list[str]:
    """The model's requirements, with MLflow as mlflow-skinny (all a replica loads) at the server's version
    unless the model pins its own, and the packages the replica imports."""
    lines: list[str] = []
    pinned_mlflow = False
    for line in model.requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            lines.append(line)  # uv says what is wrong with it, in the build log
            continue
        if canonicalize_name(requirement.name) in ("mlflow", "mlflow-skinny"):
            pinned_mlflow = True
            requirement.name = "mlflow-skinny"
            requirement.extras = set()
            lines.append(str(requirement))
        else:
            lines.append(line)
    if not pinned_mlflow:
        lines.append(f"mlflow-skinny=={importlib.metadata.version('mlflow-skinny')}")
    lines.extend(REPLICA_PACKAGES)
    return lines


class Builder:
    """Builds environments under `root` with `uv`; `log` receives each line of the build log as it comes."""

    def __init__(self, root: Path, *, uv: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.root = root
        self.uv = uv or uv_binary()
        self.timeout = timeout

    def ensure(self, model: ModelRequirements, log: Callable[[str], None]) -> Environment:
        """The environment for `model`: reused if one with the same key exists, else built now.

        Requirements seen before are not resolved again: they name their environment's key
        (`.requested/`), so a restart reuses environments without reaching the package index.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        requirements = replica_requirements(model)
        log("Requirements: " + ", ".join(requirements))
        requested = self.root / ".requested" / environment_key(platform.python_version(), "\n".join(requirements))
        known = requested.read_text().strip() if requested.is_file() else ""
        if known and (environment := self._build_or_reuse(known, None, log)) is not None:
            return environment
        work = self.root / ".resolve" / f"{os.getpid()}-{time.monotonic_ns()}"
        work.mkdir(parents=True)
        try:
            wanted = work / "requirements.in"
            wanted.write_text("\n".join(requirements) + "\n")
            resolved = work / LOCK_FILE
            compile_args = [
                "--python",
                sys.executable,
                "--no-header",
                "--no-annotate",
                str(wanted),
                "-o",
                str(resolved),
            ]
            self._run(log, "resolve", "pip", "compile", *compile_args)
            key = environment_key(platform.python_version(), resolved.read_text())
            environment = self._build_or_reuse(key, resolved, log)
            assert environment is not None  # built when absent
        finally:
            shutil.rmtree(work, ignore_errors=True)
        requested.parent.mkdir(exist_ok=True)
        requested.write_text(key + "\n")
        return environment

    def _build_or_reuse(self, key: str, resolved: Path | None, log: Callable[[str], None]) -> Environment | None:
        """Reuse the environment `key`, or build it from `resolved`; None if it is absent and `resolved` is."""
        path = self.root / key
        with open(self.root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build per key; the second waits, then reuses
            if (path / READY_MARKER).exists():
                log(f"Reused environment {key} (built before with the same resolved requirements)")
                reused = True
            elif resolved is None:  # pruned since these requirements named it: resolved again
                return None
            else:
                self._build(path, resolved, log)
                log(f"Built environment {key}")
                reused = False
            worker_path.install(path)
            (path / LAST_USED).write_text(f"{time.time():.0f}\n")
        return Environment(key, path, reused)

    def _build(self, path: Path, resolved: Path, log: Callable[[str], None]) -> None:
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(path, ignore_errors=True)  # a folder without the marker is a build that was cut short
        try:
            self._run(log, "create", "venv", "--python", sys.executable, "--no-project", str(partial))
            python = str(partial / "bin" / "python")
            self._run(log, "install", "pip", "sync", "--python", python, str(resolved))
            shutil.copy(resolved, partial / LOCK_FILE)
            (partial / READY_MARKER).write_text(f"{platform.python_version()}\n")
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        partial.rename(path)

    def _run(self, log: Callable[[str], None], step: str, *args: str) -> None:
        """Run one uv command, its output into the log with the time it took; BuildFailed if it fails."""
        log(f"$ uv {' '.join(args)}")
        started = time.monotonic()
        try:
            done = subprocess.run(
                [self.uv, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=self.timeout,
                env=uv_environment(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildFailed(f"uv did not finish the {step} step in {self.timeout:g} s") from exc
        output = done.stdout.rstrip()
        for line in output.splitlines():
            log("  " + line)
        log(f"({step}: {time.monotonic() - started:.2f} s, exit code {done.returncode})")
        if done.returncode != 0:
            tail = "\n".join(output.splitlines()[-6:]) or f"exit code {done.returncode}"
            raise BuildFailed(f"uv could not {step} the environment: {tail}")


def environment_key(python_version: str, resolved: str) -> str:
    """The name of the environment for a Python version and a resolution (`uv pip compile`'s output)."""
    pins = "\n".join(line for line in resolved.splitlines() if line and not line.lstrip().startswith("#"))
    return hashlib.sha256(f"{python_version}\n{pins}".encode()).hexdigest()[:16]


def uv_environment() -> dict[str, str]:
    """The process environment for uv: pip's index settings become uv's where uv's are not set."""
    env = dict(os.environ)
    if "PIP_INDEX_URL" in env and "UV_INDEX_URL" not in env and "UV_DEFAULT_INDEX" not in env:
        env["UV_INDEX_URL"] = env["PIP_INDEX_URL"]
    if "PIP_EXTRA_INDEX_URL" in env and "UV_EXTRA_INDEX_URL" not in env:
        env["UV_EXTRA_INDEX_URL"] = env["PIP_EXTRA_INDEX_URL"]
    env.setdefault("UV_NO_PROGRESS", "1")
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")  # environments use the server's interpreter, never a download
    return env
