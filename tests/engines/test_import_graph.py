"""Imports between the engines and the worker point one way: engines -> worker, never back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rtserve.server.worker

pytestmark = pytest.mark.unit

ENGINES = "rtserve.server.engines"


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module `path` imports, anywhere in it (lazy imports inside functions too), as absolute names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # `from rtserve.server import engines`
    return names


def worker_modules() -> list[Path]:
    folder = Path(rtserve.server.worker.__file__).parent
    return sorted(folder.rglob("*.py"))


def test_the_worker_has_modules_to_check():
    assert len(worker_modules()) > 5


@pytest.mark.parametrize("path", worker_modules(), ids=lambda path: path.name)
def test_no_worker_module_imports_an_engine(path: Path):
    engines = sorted(
        name
        for name in imported_modules(path, "rtserve.server.worker")
        if name == ENGINES or name.startswith(ENGINES + ".")
    )

    assert engines == [], f"{path.name} imports {engines}: the worker must not depend on an engine"
