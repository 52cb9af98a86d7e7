"""`rtserve sql`: a statement on DuckDB with ai_query, over a Parquet file, printed and written to a file."""

from __future__ import annotations

import io
import re
from pathlib import Path

import duckdb
import pytest
from rich.console import Console
from typer.testing import CliRunner

from rtserve.server.cli import app
from rtserve.server.process import BackendProcess
from rtserve.sql.shell import run_statement

pytestmark = pytest.mark.api


@pytest.fixture
def server_env(backend: BackendProcess, label_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTSERVE_HOST", backend.url)
    monkeypatch.setenv("RTSERVE_TOKEN", backend.admin_token)


def test_a_parquet_file_is_scored_printed_and_written(tmp_path: Path, server_env: None):
    rows = tmp_path / "rows.parquet"
    duckdb.execute(f"COPY (SELECT i AS id, (i * 5)::DOUBLE AS x FROM range(4) t(i)) TO '{rows}'")
    statement = (
        "SELECT id, ai_query('sql-label', struct_pack(x := x), returnType => 'STRUCT<label:STRING, score:DOUBLE>') "
        f"AS prediction FROM '{rows}' ORDER BY id"
    )
    for output in (tmp_path / "result.parquet", tmp_path / "result.csv"):
        result = CliRunner().invoke(app, ["sql", statement, "--output", str(output)])
        assert result.exit_code == 0, result.output
        assert "{'label': 'high', 'score': 30.0}" in result.stdout
        assert "4 rows" in result.stdout
        assert f"wrote 4 rows to {output}" in " ".join(result.stderr.split())
    written = duckdb.execute(f"SELECT id, prediction.label FROM '{tmp_path / 'result.parquet'}' ORDER BY id")
    assert written.fetchall() == [(0, "low"), (1, "low"), (2, "high"), (3, "high")]
    lines = (tmp_path / "result.csv").read_text().splitlines()
    assert lines[0] == "id,prediction" and lines[3].startswith("2,") and "high" in lines[3]


def test_an_error_is_one_clear_line_and_exit_1(server_env: None):
    result = CliRunner().invoke(app, ["sql", "SELECT ai_query('no-such-endpoint', {'x': 1.0})"])
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert message.startswith("Error: ai_query: endpoint 'no-such-endpoint' was not found")
    assert "Traceback" not in result.output and "Python exception" not in message


def test_an_unknown_output_format_is_refused_before_the_statement_runs(tmp_path: Path, server_env: None):
    result = CliRunner().invoke(app, ["sql", "SELECT ai_query('sql-label', {'x': -1.0})", "-o", "out.json"])
    assert result.exit_code == 1
    assert "the file name must end in .parquet or .csv" in " ".join(result.stderr.split())


def test_files_are_read_without_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("RTSERVE_HOST", "RTSERVE_TOKEN", "DATABRICKS_HOST", "DATABRICKS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "rows.csv").write_text("a,b\n1,x\n2,y\n")
    result = CliRunner().invoke(app, ["sql", f"SELECT sum(a) AS total FROM '{tmp_path / 'rows.csv'}'"])
    assert result.exit_code == 0, result.output
    assert "│ 3     │" in result.stdout
    missing = CliRunner().invoke(app, ["sql", "SELECT ai_query('sql-label', {'x': 1.0})"])
    assert missing.exit_code == 1 and "set RTSERVE_HOST" in missing.stderr


def test_a_long_statement_shows_a_progress_bar_at_a_terminal(monkeypatch: pytest.MonkeyPatch):
    for name in ("RTSERVE_HOST", "DATABRICKS_HOST"):
        monkeypatch.delenv(name, raising=False)
    terminal = Console(file=io.StringIO(), force_terminal=True, width=80)
    table = run_statement("SELECT sum(hash(i) % 7) AS s FROM range(200000000) t(i)", progress_console=terminal)
    assert table is not None and table.num_rows == 1
    drawn = terminal.file.getvalue()
    assert "running" in drawn and re.search(r"\b[1-9]\d?%", drawn)  # DuckDB's progress, between 0 and 100
    quiet = Console(file=io.StringIO(), force_terminal=True)
    run_statement("SELECT 1", progress_console=quiet)
    assert quiet.file.getvalue() == ""  # a quick statement draws nothing
