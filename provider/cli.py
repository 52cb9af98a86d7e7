"""`rtserve provider ...`: the Typer sub-app the main `rtserve` command mounts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rtserve.provider import ADDRESS, VERSION
from rtserve.provider.install import HOME_ENV, install

provider_app = typer.Typer(help="The rtserve Terraform provider.", no_args_is_help=True)
console = Console()


@provider_app.callback()
def provider_group() -> None:
    """The rtserve Terraform provider (a group even with one command, so `rtserve provider install` stays stable)."""


@provider_app.command("install")
def install_command(
    mirror: Annotated[
        Path | None,
        typer.Option(
            "--mirror",
            metavar="DIR",
            help=f"Filesystem mirror directory [default: ${HOME_ENV}/mirror, or this installation's own "
            "~/.rtserve/terraform/<version>-<id>/mirror].",
        ),
    ] = None,
    cli_config: Annotated[
        Path | None,
        typer.Option(
            "--cli-config",
            metavar="FILE",
            help="Terraform CLI config file to write [default: terraformrc next to the mirror].",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the export line.")] = False,
) -> None:
    """Install the provider into a local mirror for the embedded Terraform, terraform and tofu (no network)."""
    result = install(mirror, cli_config)
    line = f"export TF_CLI_CONFIG_FILE={result.cli_config}"
    if quiet:
        typer.echo(line)
        return
    verb = "installed" if result.changed else "already installed (unchanged)"
    console.print(f"[green]✓[/] {ADDRESS} {VERSION} {verb}")
    console.print(f"  mirror:     {result.mirror}", soft_wrap=True)
    console.print(f"  CLI config: {result.cli_config}", soft_wrap=True)
    console.print("For your own terraform or tofu:")
    console.print(f"  {line}", highlight=False, soft_wrap=True)
    console.print("For the npm cdktf-cli (`cdktf deploy --skip-provider-lock`) with the embedded Terraform:")
    console.print(f"  {line} TERRAFORM_BINARY_NAME={result.terraform}", highlight=False, soft_wrap=True)
