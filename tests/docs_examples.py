"""The code blocks of README.md and docs/, read from the Markdown itself, and the shell script that runs a
walkthrough of them as a reader would.

A reader's shell has this checkout's venv on PATH (as after `source .venv/bin/activate`) and a `terraform`
(the embedded one's wrapper that `rtserve provider install` writes). Python blocks run through the venv's
interpreter; HCL blocks are the configuration a reader writes into `main.tf`; a YAML block is a GitHub
Actions workflow whose jobs' `run` steps are run in order, with the repository's secrets and variables
taken from the environment of the same name. A block that cannot run here says why on the line before
it: `<!-- not run here: <why> -->`.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", *sorted(str(path.relative_to(REPO)) for path in (REPO / "docs").glob("*.md"))]
RUNNABLE = {"sh", "bash", "python", "hcl", "yaml"}
FENCE = re.compile(
    r"(?:^ *<!-- not run here: (?P<why>.+?) -->\n)?^(?P<indent> *)```(?P<language>\w*)\n(?P<code>.*?)^(?P=indent)```",
    re.M | re.S,
)
# `terraform plan -detailed-exitcode` and `rtserve plan` exit 2 when there are changes: not a failure.
PLAN = re.compile(r"^(?P<command>[^#\n]*(?:rtserve plan|-detailed-exitcode)[^#\n]*?)(?P<comment>\s*#.*)?$", re.M)
GITHUB_EXPRESSION = re.compile(r"\$\{\{\s*(?:secrets|vars)\.(\w+)\s*\}\}")


@dataclass(frozen=True)
class Block:
    document: str
    index: int  # the block's position among the document's fenced blocks
    language: str
    code: str
    not_run_because: str | None

    @property
    def runnable(self) -> bool:
        return self.language in RUNNABLE and self.not_run_because is None


def blocks(document: str, section: str | None = None) -> list[Block]:
    """Every fenced block under the heading `section` (up to the next heading of its level), or of the
    whole document."""
    text = (REPO / document).read_text()
    found = [
        Block(document, index, m["language"], textwrap.dedent(m["code"]), m["why"])
        for index, m in enumerate(FENCE.finditer(text))
    ]
    if section is None:
        return found
    start = text.index(f"\n{section}\n")
    level = section.split(" ")[0]
    # The next heading of its level or above; not "# ", which starts comments in code blocks.
    following = re.search(rf"^#{{2,{len(level)}}} ", text[start + len(section) + 2 :], re.M)
    end = start + len(section) + 2 + following.start() if following else len(text)
    return [block for block, m in zip(found, FENCE.finditer(text), strict=True) if start <= m.start() < end]


def workflow_as_shell(code: str) -> str:
    """A GitHub Actions workflow's jobs, in order, as shell: each job in a subshell with its environment,
    each `run` step as Actions runs it (`bash -eo pipefail`). `uses` steps (checkout, setup-python, ...)
    and `pip install` are what this checkout already has."""
    workflow = yaml.safe_load(code)
    lines = ['export GITHUB_OUTPUT="$PWD/github-output"']
    for name, job in workflow["jobs"].items():
        env = {**workflow.get("env", {}), **job.get("env", {})}
        lines.append(f"echo '--- job {name}'")
        lines.append("(")
        lines += [f"export {key}={value}" for key, value in env.items()]
        for step in job["steps"]:
            run = step.get("run")
            if run is None or run.startswith("pip install"):
                continue
            lines += ["bash -eo pipefail <<'STEP'", run.rstrip("\n"), "STEP"]
        lines.append(")")
    return GITHUB_EXPRESSION.sub(r"${\1:-}", "\n".join(lines))


def as_script(parts: list[Block], port: int) -> str:
    """The blocks as one bash script, stopping at the first failure, on `port` instead of the docs' 8080."""
    lines = ["set -euo pipefail", "SECONDS=0"]
    for block in parts:
        if not block.runnable:
            continue
        lines.append(f'echo "--- $SECONDS s: {block.document}, block {block.index}"')
        if block.language == "python":
            lines += [".venv/bin/python - <<'PYTHON'", block.code.rstrip("\n"), "PYTHON"]
        elif block.language in ("sh", "bash"):
            lines.append(PLAN.sub(r"\g<command> || [ $? -eq 2 ]\g<comment>", block.code))
        elif block.language == "yaml":
            lines.append(workflow_as_shell(block.code))
        # hcl: written to main.tf by `configuration`
    script = "\n".join(lines) + "\n"
    # The walkthrough's server listens on this run's port: where the docs leave the default, say it.
    script = re.sub(r"rtserve server (?!--port)", "rtserve server --port 8080 ", script)
    return script.replace("8080", str(port))


def configuration(parts: list[Block], port: int) -> str:
    """The HCL blocks as one Terraform configuration."""
    return "\n".join(block.code for block in parts if block.runnable and block.language == "hcl").replace(
        "8080", str(port)
    )
