"""`rtserve secrets`: scopes and secrets in the data dir's store, as Databricks' CLI names them.

Works on the data dir (or database) directly, like `rtserve tokens`, with the same secrets key file
as the server (`<data-dir>/secrets.key`, or RTSERVE_SECRETS_KEY_FILE). No command prints a value.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rtserve.server.cli_options import DatabaseUrl, DataDir

if TYPE_CHECKING:
    from rtserve.server.secret_store import SecretStore

secrets_app = typer.Typer(
    help="Secrets that served entities' environment_vars refer to as {{secrets/<scope>/<key>}} (works on the data "
    "dir directly; values are encrypted, and no command or API shows them).",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

Scope = Annotated[str, typer.Argument(metavar="SCOPE", help="The scope's name.")]
Key = Annotated[str, typer.Argument(metavar="KEY", help="The secret's key within its scope.")]


def _store(data_dir: Path | None, database_url: str | None) -> SecretStore:
    from rtserve.server.cli import _sessions, _settings
    from rtserve.server.secret_store import open_store

    sessions = _sessions(data_dir, database_url)
    return open_store(sessions, _settings(data_dir=data_dir, database_url=database_url).secrets_key_path)


def _run(action: str, call: Callable[[], object]) -> None:
    """Run a store call; an ApiError (no such scope, bad name) becomes a one-line error and exit code 1."""
    from rtserve.server.errors import ApiError

    try:
        call()
    except ApiError as exc:
        err_console.print(f"[red]Could not {action}:[/] {escape(exc.message)}", highlight=False)
        raise typer.Exit(1) from None


@secrets_app.command("create-scope")
def create_scope(scope: Scope, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Create a secret scope."""
    store = _store(data_dir, database_url)
    _run("create the scope", lambda: store.create_scope(scope))
    console.print(f"Created scope {escape(scope)}.")


@secrets_app.command("delete-scope")
def delete_scope(scope: Scope, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Delete a secret scope and every secret in it."""
    store = _store(data_dir, database_url)
    _run("delete the scope", lambda: store.delete_scope(scope))
    console.print(f"Deleted scope {escape(scope)}.")


@secrets_app.command("list-scopes")
def list_scopes(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """List the secret scopes."""
    table = Table("scope")
    for name in _store(data_dir, database_url).list_scopes():
        table.add_row(escape(name))
    console.print(table)


@secrets_app.command("put")
def put(
    scope: Scope,
    key: Key,
    string_value: Annotated[
        str | None,
        typer.Option(
            "--string-value",
            metavar="VALUE",
            help="The value (visible to other users in the process list: prefer standard input).",
        ),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create or replace a secret; its value comes from --string-value, else standard input (asked for, hidden, on
    a terminal)."""
    if string_value is not None:
        value = string_value
    elif sys.stdin.isatty():
        value = typer.prompt(f"Value of {key}", hide_input=True)
    else:
        value = sys.stdin.read().removesuffix("\n")
    store = _store(data_dir, database_url)
    _run("put the secret", lambda: store.put(scope, key, value))
    console.print(
        f"Stored secret {escape(key)} in scope {escape(scope)} (refer to it as {{{{secrets/{scope}/{key}}}}})."
    )


@secrets_app.command("list")
def list_secrets(scope: Scope, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """List a scope's secrets: keys and when they were last updated, never values."""
    store = _store(data_dir, database_url)
    listed: list[tuple[str, int]] = []
    _run("list the scope", lambda: listed.extend(store.list(scope)))
    table = Table("key", "last updated (UTC)")
    for key, updated in listed:
        table.add_row(escape(key), datetime.fromtimestamp(updated / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"))
    console.print(table)


@secrets_app.command("delete")
def delete(scope: Scope, key: Key, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Delete a secret. Replicas already running keep the value; new ones of an entity that refers to it fail."""
    store = _store(data_dir, database_url)
    _run("delete the secret", lambda: store.delete(scope, key))
    console.print(f"Deleted secret {escape(key)} from scope {escape(scope)}.")
