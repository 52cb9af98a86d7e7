"""`rtserve init [DIR]`: a user's own infrastructure repository, ready to deploy as it is.

Writes a CDKTF project (cdktf.json, main.py serving one registered model, requirements.txt,
.gitignore) and a GitHub Actions workflow that plans on pull requests and deploys on merge, as
docs/pipeline.md describes. Never overwrites: a file that exists is reported and nothing is written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rtserve import __version__

WORKFLOW = ".github/workflows/serving.yml"
PROJECT_ID = re.compile(r"[^a-z0-9-]+")


class ScaffoldError(Exception):
    """The project cannot be written as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Scaffold:
    directory: Path
    files: tuple[Path, ...]


def write_project(directory: Path, model: str, version: str, host: str) -> Scaffold:
    """Write the project's files into `directory` (created if missing); refuse if any of them exists."""
    if not model or any(ch in model for ch in "\"'\\\n"):
        raise ScaffoldError(f"--model must be a registered model's name; got {model!r}.")
    if not version.isdigit():
        raise ScaffoldError(f"--model-version must be a version number such as 1; got {version!r}.")
    if not host.startswith(("http://", "https://")):
        raise ScaffoldError(f"--host must be the server's URL, starting with http:// or https://; got {host!r}.")
    files = _files(directory, model, version, host)
    existing = [path for path in files if (directory / path).exists()]
    if existing:
        raise ScaffoldError(
            f"{directory} already has {', '.join(existing)}; nothing was written. "
            "Choose an empty directory, or move those files away first."
        )
    for path, text in files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return Scaffold(directory, tuple(directory / path for path in files))


def _files(directory: Path, model: str, version: str, host: str) -> dict[str, str]:
    project_id = PROJECT_ID.sub("-", directory.resolve().name.lower()).strip("-") or "serving"
    cdktf_json = {
        "language": "python",
        "app": "python main.py",
        "projectId": project_id,
        "sendCrashReports": "false",
        "terraformProviders": [],
        "terraformModules": [],
        "context": {},
    }
    return {
        "cdktf.json": json.dumps(cdktf_json, indent=2) + "\n",
        "main.py": MAIN.format(model=model, version=version, host=host),
        "requirements.txt": f"rtserve[iac]>={__version__}\n",
        ".gitignore": GITIGNORE,
        WORKFLOW: WORKFLOW_TEXT,
    }


MAIN = '''"""Serving, declared as code: `rtserve plan` shows what would change, `rtserve deploy` applies it.

RTSERVE_HOST names the rtserve server and RTSERVE_TOKEN authenticates (never written into cdktf.out).
A promotion is a pull request that changes one number in `promotions`.
"""

import os

import cdktf

from rtserve.cdk import ComputeConfig, ModelEndpoint, RtserveStack

HOST = os.environ.get("RTSERVE_HOST", "{host}")
MODEL = os.environ.get("RTSERVE_MODEL", "{model}")

app = cdktf.App()

production = RtserveStack(app, "production", host=HOST)
endpoint = ModelEndpoint(
    production,
    "model",
    model_name=MODEL,
    production=ComputeConfig.small(),
    promotions={{"Production": "{version}"}},
)
cdktf.TerraformOutput(production, "url", value=endpoint.production_url)

app.synth()
'''

GITIGNORE = """cdktf.out/
.terraform/
*.tfstate
*.tfstate.*
.venv/
__pycache__/
"""

WORKFLOW_TEXT = """# Plan on pull requests (the plan is posted as a comment), deploy on merge to main.
# Settings: the variable RTSERVE_HOST, the secrets RTSERVE_PLAN_TOKEN (CAN_VIEW) and RTSERVE_DEPLOY_TOKEN
# (CAN_MANAGE), made with `rtserve tokens create`. The stacks' Terraform state must outlive a runner:
# give RtserveStack a remote backend (see rtserve's docs/pipeline.md) before the first deploy from CI.
name: serving

on:
  pull_request:
  push:
    branches: [main]

concurrency:
  group: serving-${{ github.event_name == 'push' && 'deploy' || github.ref }}
  cancel-in-progress: ${{ github.event_name != 'push' }}

env:
  RTSERVE_HOST: ${{ vars.RTSERVE_HOST }}
  JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION: "20"

jobs:
  plan:
    if: github.event_name == 'pull_request'
    runs-on: ubuntu-latest
    permissions:
      contents: read
      pull-requests: write
    env:
      RTSERVE_TOKEN: ${{ secrets.RTSERVE_PLAN_TOKEN }}
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: { python-version: "3.11", cache: pip }
      - uses: actions/setup-node@v4
        with: { node-version: "20" }
      - run: pip install -r requirements.txt
      - name: Plan
        id: plan
        run: |
          set +e
          rtserve plan --format markdown > plan.md
          status=$?
          [ "$status" -eq 1 ] && exit 1 || exit 0
      - name: Post the plan on the pull request
        uses: actions/github-script@v7
        with:
          script: |
            const body = require("fs").readFileSync("plan.md", "utf8").slice(0, 60000);
            await github.rest.issues.createComment({ ...context.repo, issue_number: context.issue.number, body });

  deploy:
    if: github.event_name == 'push'
    runs-on: ubuntu-latest
    environment: production
    env:
      RTSERVE_TOKEN: ${{ secrets.RTSERVE_DEPLOY_TOKEN }}
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: { python-version: "3.11", cache: pip }
      - uses: actions/setup-node@v4
        with: { node-version: "20" }
      - run: pip install -r requirements.txt
      - run: rtserve deploy
      - name: Nothing is left to change
        run: rtserve plan
"""
