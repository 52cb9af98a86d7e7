"""Where names from requests meet the file system: the data dir's layout, and the checks that keep it closed.

Model names, version numbers and replica ids arrive in URLs and bodies. Each reaches a path only
through this module: a version must be a registry version number, a name becomes one escaped path
segment (never `.`, `..` or anything with a separator), and every path is proven to stay under the
directory it belongs to before it is used.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from rtserve.server.errors import invalid
from rtserve.server.validate import version_number


def segment(name: str) -> str:
    """`name` as one path segment: percent-escaped, and never `.` or `..` (a leading dot is escaped too)."""
    escaped = quote(name, safe="")
    return "%2E" + escaped[1:] if escaped.startswith(".") else escaped


def under(root: Path, *parts: str) -> Path:
    """`root` joined with `parts`, refused (400) unless it stays under `root`."""
    path = root.joinpath(*parts)
    if not path.resolve().is_relative_to(root.resolve()):
        raise invalid(f"'{'/'.join(parts)}' does not name a place under the data directory.")
    return path


def version_dir(root: Path, model: str, version: str) -> Path:
    """`<root>/<model>/<version>`: the layout of replica logs (`logs/`) and downloaded models (`models/`)."""
    return under(root, segment(model), version_number(version))


def log_dir(data_dir: Path, model: str, version: str) -> Path:
    return version_dir(data_dir / "logs", model, version)


def model_dir(data_dir: Path, model: str, version: str) -> Path:
    return version_dir(data_dir / "models", model, version)


def build_dir(data_dir: Path, model: str, version: str) -> Path:
    """Where a version's environment build log lives (apart from its replicas' logs)."""
    return version_dir(data_dir / "builds", model, version)
