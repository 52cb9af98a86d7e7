"""Every example in README.md and docs/ runs as written, in order, against a server its walkthrough starts.

The blocks are read from the Markdown (tests/docs_examples.py), so a change to the docs that breaks one
fails here. Each walkthrough runs in a directory laid out like a checkout (this one's `.venv`, `main.py`,
`cdktf.json` and `modules/`), with its own HOME and port. `test_every_example_is_run` keeps it honest:
a block that no walkthrough runs must say on the line before it why it cannot run here.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from rtserve.server.process import free_port
from tests.docs_examples import DOCUMENTS, REPO, Block, as_script, blocks, configuration

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

README_SETUP = ("README.md", "## Running it yourself")
WALKTHROUGHS: dict[str, tuple[list[tuple[str, str | None]], list[str]]] = {
    # The README's walkthrough, the API reference's examples on what it set up, the SQL page's worked example
    # (then its DuckDB and Spark forms on the file it wrote), the README's environments as code, the
    # constructs' worked example applied with terraform, then the pipeline: its workflow's jobs with a
    # CAN_VIEW token for the plan and a CAN_MANAGE one for the deploy, and the same with plain tools.
    "readme-api-sql-constructs-pipeline": (
        [
            README_SETUP,
            ("docs/api.md", None),
            ("docs/sql.md", "### Worked example: scoring a Parquet file"),
            ("docs/sql.md", "## `ai_query` on DuckDB"),
            ("docs/sql.md", "## `ai_query` on Spark"),
            ("README.md", "## Environments as code"),
            ("docs/constructs.md", None),
            ("docs/pipeline.md", None),
        ],
        [
            '{"predictions": [0]}',
            "Created token",
            "{'predictions': [0]}",
            "CAN_QUERY",
            "wrote 10000 rows to classes.parquet",
            "10000 rows, the first 40 shown",
            "staging 0 to add",
        ],
    ),
    "quickstart": (
        [("docs/quickstart.md", "## Your first endpoint"), ("docs/quickstart.md", "## Tokens")],
        ['{"predictions": [0]}', "Revoked token"],
    ),
    # Secrets and environment variables, on what the README set up.
    "secrets": (
        [README_SETUP, ("docs/secrets.md", None)],
        ["Stored secret api-token in scope iris", "{'API_TOKEN': '{{secrets/iris/api-token}}', 'LOG_LEVEL': 'debug'}"],
    ),
    # The provider's HCL examples, as one configuration, applied on what the README set up.
    "provider": ([README_SETUP, ("docs/provider.md", None)], ["Apply complete!", "No changes."]),
}


def selected(sections: list[tuple[str, str | None]]) -> list[Block]:
    parts = [block for document, section in sections for block in blocks(document, section)]
    return one_program_per_page(parts)


def one_program_per_page(parts: list[Block]) -> list[Block]:
    """constructs.md builds one app across its page (a fragment adds to the `app` and `stack` of the blocks
    before it), so its Python blocks run as one program, where its first Python block is."""
    page = [b for b in parts if b.document == "docs/constructs.md" and b.language == "python" and b.runnable]
    if not page:
        return parts
    program = replace(page[0], code="".join(block.code + "\n" for block in page))
    return [program if b is page[0] else b for b in parts if b not in page[1:]]


def checkout_like(workdir: Path) -> None:
    for name in (".venv", "main.py", "cdktf.json", "modules"):
        (workdir / name).symlink_to(REPO / name)


@pytest.mark.parametrize("walkthrough", list(WALKTHROUGHS))
def test_a_walkthrough_runs_as_written(tmp_path: Path, walkthrough: str):
    sections, expected = WALKTHROUGHS[walkthrough]
    parts = selected(sections)
    port = free_port()
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    checkout_like(workdir)
    (workdir / "main.tf").write_text(configuration(parts, port))
    script = as_script(parts, port)
    # A reader's shell: the venv activated, a terraform on PATH, and none of the MLflow, Databricks or rtserve
    # settings other tests left in this process.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_", "RTSERVE_", "TF_"))}
    env["HOME"] = str(tmp_path / "home")
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{terraform_dir(env)}:{env['PATH']}"
    env["CI"] = ""  # pipeline.md's main.py fragment adds a remote state backend on CI
    try:
        result = subprocess.run(
            ["bash", "-c", script], cwd=workdir, env=env, capture_output=True, text=True, timeout=800
        )
        log = (workdir / "rtserve.log").read_text(errors="replace") if (workdir / "rtserve.log").exists() else ""
        assert result.returncode == 0, (
            f"{script}\n--- stdout\n{result.stdout[-8000:]}\n--- stderr\n{result.stderr[-8000:]}\n{log[-3000:]}"
        )
        for text in expected:
            assert text in result.stdout + result.stderr, result.stdout[-8000:]
    finally:
        subprocess.run(["pkill", "-INT", "-f", f"rtserve server --port {port} "], check=False)


def terraform_dir(env: dict[str, str]) -> str:
    """Where `rtserve provider install` puts its `bin/terraform` for this HOME (a reader's own terraform)."""
    out = subprocess.run(
        [str(REPO / ".venv" / "bin" / "rtserve"), "provider", "install", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    config = out.split("TF_CLI_CONFIG_FILE=", 1)[1].split()[0].strip("'\"")
    return str(Path(config).parent / "bin")


@pytest.mark.unit
def test_every_example_is_run():
    run = {(b.document, b.index) for sections, _ in WALKTHROUGHS.values() for b in selected_all(sections)}
    missed = [
        f"{b.document}, block {b.index} ({b.language}): {b.code.splitlines()[0]}"
        for document in DOCUMENTS
        for b in blocks(document)
        if b.runnable and (b.document, b.index) not in run
    ]
    assert not missed, "run these in a walkthrough, or say why not with <!-- not run here: ... -->:\n" + "\n".join(
        missed
    )
    # A block without a language would escape the check above: output is `text`.
    untagged = [f"{b.document}, block {b.index}" for document in DOCUMENTS for b in blocks(document) if not b.language]
    assert not untagged, "give these blocks a language (sh, python, hcl, yaml, json, text, ...): " + ", ".join(untagged)


def selected_all(sections: list[tuple[str, str | None]]) -> list[Block]:
    return [block for document, section in sections for block in blocks(document, section)]
