"""Lets an environment's interpreter import rtserve's worker code, without installing rtserve into it.

A replica needs `rtserve.server.worker` (and what it imports from `rtserve.server`); installing
rtserve with its dependencies would put the server's packages (and their versions) into every
environment. Instead the environment's site-packages gets a finder for the two package folders,
loaded by a .pth file at interpreter start. It is rewritten each time the environment is used, so
an environment keeps working when rtserve moves or is upgraded.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import rtserve
import rtserve.server

MODULE = "_rtserve_worker_path"

_TEMPLATE = '''"""Written by rtserve: its worker code, importable here without installing rtserve."""
import importlib.abc
import importlib.util
import sys

_PACKAGES = {packages!r}


class _RtserveFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        folder = _PACKAGES.get(name)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            name, folder + "/__init__.py", submodule_search_locations=[folder]
        )


sys.meta_path.insert(0, _RtserveFinder())
'''


def package_folders() -> dict[str, str]:
    """Where this server's `rtserve` and `rtserve.server` packages live (folders of other names: package-dir)."""
    return {"rtserve": str(Path(rtserve.__file__).parent), "rtserve.server": str(Path(rtserve.server.__file__).parent)}


def install(env_dir: Path) -> None:
    """Write the finder and its .pth into the environment's site-packages."""
    site_packages = site_packages_of(env_dir)
    (site_packages / f"{MODULE}.py").write_text(_TEMPLATE.format(packages=package_folders()))
    (site_packages / f"{MODULE}.pth").write_text(f"import {MODULE}\n")


def site_packages_of(env_dir: Path) -> Path:
    """The purelib folder of a virtual environment made with this interpreter's version."""
    relative = sysconfig.get_path("purelib", vars={"base": "", "platbase": ""}).lstrip("/")
    return env_dir / relative
