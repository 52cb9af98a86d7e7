"""The README's and the quick start's walkthroughs run as written, in order, against a server they start.

Each walkthrough's code blocks are taken from the Markdown itself (shell as it is, Python through the
venv's interpreter), so a change to the docs that breaks them fails here. Only the port and the data
dir are moved to this test's own, and `.venv/bin` to this checkout's.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from rtserve.server.process import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(document: str, section: str | None) -> list[tuple[str, str]]:
    """(language, code) of every fenced block under the heading `section` (up to the next heading of its
    level or above), or of the whole document."""
    text = (REPO / document).read_text()
    if section is None:
        return FENCE.findall(text)
    start = text.index(section)
    level = section.split(" ")[0]
    # Headings of its level or above; not "# ", which starts comments in code blocks (the title is above all).
    following = re.search(rf"^#{{2,{len(level)}}} ", text[start + len(section) :], re.MULTILINE)
    end = start + len(section) + following.start() if following else len(text)
    return FENCE.findall(text[start:end])


def as_script(parts: list[tuple[str, str]], port: int, workdir: Path) -> str:
    lines = ["set -euo pipefail", f"cd {workdir}"]
    for language, code in parts:
        if language == "python":
            lines += [".venv/bin/python - <<'PYTHON'", code.rstrip("\n"), "PYTHON"]
        elif language in ("sh", "bash"):
            lines.append(code)
    script = "\n".join(lines) + "\n"
    # The walkthrough's server listens on this test's port: where the docs leave the default, say it.
    script = re.sub(r"rtserve server (?!--port)", "rtserve server --port 8080 ", script)
    return script.replace("8080", str(port)).replace(".venv/bin", str(REPO / ".venv" / "bin"))


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        # The README's walkthrough, then the API reference's examples (the deployment client, rate limits,
        # a grant) and the SQL page's worked example (`rtserve sql` on a Parquet file) on what it set up.
        (
            [
                ("README.md", "## Running it yourself"),
                ("docs/api.md", None),
                ("docs/sql.md", "### Worked example: scoring a Parquet file"),
            ],
            [
                '{"predictions": [0]}',
                "Created token",
                "{'predictions': [0]}",
                "CAN_QUERY",
                "wrote 10000 rows to classes.parquet",
                "10000 rows, the first 40 shown",
            ],
        ),
        ([("docs/quickstart.md", "## Your first endpoint")], ['{"predictions": [0]}']),
    ],
    ids=["readme-and-api-reference", "quickstart"],
)
def test_a_walkthrough_runs_as_written(tmp_path: Path, sections: list[tuple[str, str | None]], expected: list[str]):
    port = free_port()
    parts = [part for document, section in sections for part in blocks(document, section)]
    script = as_script(parts, port, tmp_path)
    # A reader's shell: none of the MLflow, Databricks or rtserve settings other tests left in this process.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_", "RTSERVE_"))}
    env["HOME"] = str(tmp_path / "home")
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env['PATH']}"  # `rtserve` as a reader's install puts it on PATH
    try:
        result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=300)
        log = (tmp_path / "rtserve.log").read_text(errors="replace") if (tmp_path / "rtserve.log").exists() else ""
        assert result.returncode == 0, (
            f"{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}\n{log[-3000:]}"
        )
        for text in expected:
            assert text in result.stdout + result.stderr, result.stdout
    finally:
        subprocess.run(["pkill", "-INT", "-f", f"rtserve server --port {port} "], check=False)
