"""Type-check the rtserve packages with mypy: `python .ci/typecheck.py [mypy options]` (run by `make lint`).

The import package `rtserve` is mapped from folders of other names (pyproject.toml's
[tool.setuptools.package-dir]: `backend/` is `rtserve.server`, ...), and the editable install reaches
them through an import hook that mypy cannot follow, so neither `mypy -p rtserve` nor `mypy backend`
(modules named `backend.*`) works. This lets mypy collect the files of those folders, renames each
module after the mapping, and runs mypy's own build and report: errors name the real files.
"""

import os
import sys
import time
import tomllib
from pathlib import Path

from mypy import util
from mypy.fscache import FileSystemCache
from mypy.main import process_options, run_build
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parent.parent


def package_dirs() -> dict[Path, str]:
    """Folder -> import name, from pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {(ROOT / folder).resolve(): name for name, folder in mapping.items()}


def module_name(path: Path, dirs: dict[Path, str]) -> str:
    for folder, package in sorted(dirs.items(), key=lambda item: len(item[0].parts), reverse=True):
        if path.is_relative_to(folder):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join(parts)
    raise SystemExit(f"{path} is in none of the folders of [tool.setuptools.package-dir]")


def main() -> None:
    t0 = time.time()
    os.chdir(ROOT)  # errors name files relative to the checkout, wherever this is run from
    dirs = package_dirs()
    fscache = FileSystemCache()
    folders = [str(folder.relative_to(ROOT)) for folder in dirs]
    sources, options = process_options(
        ["--config-file", str(ROOT / "pyproject.toml"), *sys.argv[1:], *folders], fscache=fscache
    )
    sources = [
        BuildSource(source.path, module_name(Path(source.path).resolve(), dirs), None, str(ROOT))
        for source in sources
        if source.path
    ]
    _, messages, blockers = run_build(sources, options, fscache, t0, sys.stdout, sys.stderr)
    formatter = util.FancyFormatter(sys.stdout, sys.stderr, options.hide_error_codes)
    n_errors, n_notes, n_files = util.count_stats(messages)
    if n_errors or blockers:
        print(formatter.format_error(n_errors, n_files, len(sources), blockers=blockers, use_color=False))
        sys.exit(2 if blockers else 1)
    print(formatter.format_success(len(sources), False))


if __name__ == "__main__":
    main()
