"""Infrastructure-as-code timings: `rtserve deploy` of the worked example, and plans over 50 endpoints.

    .venv/bin/python bench/iac.py            (also part of `make bench`)

1. The example (main.py, two stacks): synthesize, then per stack init and apply until READY.
2. 50 endpoints in one stack: apply (enable and configure 50 endpoints), then a no-op plan, which
   is what a pull request's `rtserve plan` costs at that size. The 50 registered models hold no
   version in a serving stage, so no replica starts: the figures are Terraform's, the provider's
   and the control API's, not model loading.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rtserve.provider.terraform import Terraform  # noqa: E402
from rtserve.server.demo_model import register_demo_model  # noqa: E402
from rtserve.server.deploy import synthesize  # noqa: E402
from rtserve.server.process import BackendProcess  # noqa: E402

TOKEN = "rtsv-bench-iac"
ENDPOINTS = 50
MANY_APP = """
import cdktf
from rtserve.cdk import ComputeConfig, ModelEndpoint, RtserveStack

app = cdktf.App()
stack = RtserveStack(app, "many", host={host!r}, state_path={state!r})
for index in range({count}):
    ModelEndpoint(stack, f"endpoint-{{index}}", model_name=f"bench-model-{{index}}",
                  production=ComputeConfig.small(), staging=ComputeConfig.medium())
app.synth()
"""


def timed(label: str, results: list[tuple[str, float]], action):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = action()
    results.append((label, time.perf_counter() - started))
    return value


def register_many(url: str, count: int) -> None:
    client = MlflowClient(url, url)
    for index in range(count):
        client.create_registered_model(f"bench-model-{index}")


def bench_example(backend: BackendProcess, work: Path, console: Console) -> list[tuple[str, float]]:
    results: list[tuple[str, float]] = []
    os.environ.update(RTSERVE_HOST=backend.url, RTSERVE_TOKEN=TOKEN, RTSERVE_STATE_DIR=str(work))
    quiet = Console(quiet=True)
    stacks = timed("example: synthesize main.py (2 stacks)", results, lambda: synthesize(REPO, quiet, work / "out"))
    for stack in stacks:
        terraform = Terraform.for_rtserve(stack.workdir, check=True)
        timed(f"example: init {stack.name}", results, terraform.init)
        timed(f"example: apply {stack.name} until READY", results, terraform.apply)
    for stack in stacks:
        terraform = Terraform.for_rtserve(stack.workdir, check=True)
        plan = timed(f"example: no-op plan {stack.name}", results, terraform.plan)
        assert not plan.summary.has_changes, f"second plan of {stack.name} is not empty: {plan.summary}"
    return results


def bench_many(backend: BackendProcess, work: Path) -> list[tuple[str, float]]:
    results: list[tuple[str, float]] = []
    app = work / "many.py"
    app.write_text(MANY_APP.format(host=backend.url, state=str(work / "many.tfstate"), count=ENDPOINTS))
    outdir = work / "many-out"
    env = {**os.environ, "CDKTF_OUTDIR": str(outdir), "PYTHONPATH": str(REPO)}
    timed(
        f"{ENDPOINTS} endpoints: synthesize",
        results,
        lambda: subprocess.run([sys.executable, str(app)], env=env, check=True, capture_output=True),
    )
    terraform = Terraform.for_rtserve(outdir / "stacks" / "many", check=True)
    timed(f"{ENDPOINTS} endpoints: init", results, terraform.init)
    timed(f"{ENDPOINTS} endpoints: apply", results, terraform.apply)
    plan = timed(f"{ENDPOINTS} endpoints: no-op plan", results, terraform.plan)
    assert not plan.summary.has_changes, f"second plan is not empty: {plan.summary}"
    return results


def run(console: Console) -> list[tuple[str, float]]:
    work = Path(tempfile.mkdtemp(prefix="rtserve-bench-iac-"))
    try:
        with BackendProcess(work / "data", admin_token=TOKEN) as backend:
            os.environ["MLFLOW_TRACKING_TOKEN"] = TOKEN
            with console.status("Registering the demo model and 50 more..."):
                register_demo_model(backend.url)
                register_many(backend.url, ENDPOINTS)
            with console.status("Deploying the worked example..."):
                results = bench_example(backend, work, console)
            with console.status(f"Applying and planning {ENDPOINTS} endpoints..."):
                results += bench_many(backend, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table("step", "seconds", title="rtserve deploy and plan (embedded Terraform)")
    for label, seconds in results:
        table.add_row(label, f"{seconds:.2f}")
    console.print(table)
    return results


def markdown(results: list[tuple[str, float]]) -> str:
    rows = "\n".join(f"| {label} | {seconds:.2f} |" for label, seconds in results)
    return f"| step | seconds |\n|---|---|\n{rows}\n"


if __name__ == "__main__":
    run(Console())
