"""The wheel installs one top-level name, `rtserve`, with the server's data and without the tests or benchmarks."""

from __future__ import annotations

import fnmatch
import hashlib
import zipfile
from pathlib import Path, PurePosixPath

import pytest

pytestmark = pytest.mark.packaging

# Directories and file names of test code; none of them belongs in the wheel.
TEST_DIRS = {"tests", "test", "testing", "bench", "benchmarks", "model_code", "__pycache__"}
TEST_FILES = ("conftest.py", "test_*.py", "*_test.py", "*helpers.py", "fake_*.py")


def test_the_only_top_level_name_is_rtserve(wheel: Path, wheel_names: list[str]) -> None:
    version = wheel.name.split("-")[1]
    dist_info = f"rtserve-{version}.dist-info"
    assert {name.split("/")[0] for name in wheel_names} == {"rtserve", dist_info}
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(f"{dist_info}/top_level.txt").decode().split() == ["rtserve"]
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert "rtserve = rtserve.server.cli:app" in entry_points
    assert not [name for name in wheel_names if name.endswith(".pth")]


def test_no_tests_benchmarks_or_test_helpers_are_shipped(wheel_names: list[str]) -> None:
    offending = [
        name
        for name in wheel_names
        if TEST_DIRS & set(PurePosixPath(name).parts[:-1])
        or any(fnmatch.fnmatch(PurePosixPath(name).name, pattern) for pattern in TEST_FILES)
    ]
    assert offending == []


def test_no_file_of_the_tests_or_benchmarks_is_shipped_under_another_name(
    source: Path, wheel: Path, wheel_names: list[str]
) -> None:
    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    test_code = {
        digest(path.read_bytes()): str(path.relative_to(source))
        for folder in ("tests", "bench")
        for path in (source / folder).rglob("*.py")
        if path.stat().st_size > 0 and path.name != "__init__.py"
    }
    with zipfile.ZipFile(wheel) as archive:
        copies = {name: test_code[d] for name in wheel_names if (d := digest(archive.read(name))) in test_code}
    assert copies == {}


def test_the_servers_package_data_is_inside(source: Path, wheel_names: list[str]) -> None:
    names = set(wheel_names)
    migrations = "rtserve/server/store/migrations"
    assert f"{migrations}/env.py" in names
    assert f"{migrations}/script.py.mako" in names
    revisions = sorted(p.name for p in (source / "backend/store/migrations/versions").glob("*.py"))
    assert revisions, "no Alembic revisions in the checkout"
    assert {f"{migrations}/versions/{name}" for name in revisions} <= names
    for folder, pattern in (("templates", "*.html"), ("static", "*")):
        files = sorted(p.name for p in (source / "backend/ui" / folder).glob(pattern) if p.is_file())
        assert files, f"nothing in backend/ui/{folder}"
        assert {f"rtserve/server/ui/{folder}/{name}" for name in files} <= names
    assert "rtserve/server/ui/templates/base.html" in names
    assert "rtserve/server/ui/static/htmx.min.js" in names


def test_every_module_of_the_checkout_is_shipped(source: Path, wheel_names: list[str]) -> None:
    """The explicit `packages` list misses nothing: each .py of rtserve/, backend/, provider/, cdk/ is inside."""
    folders = {"rtserve": "rtserve", "backend": "rtserve/server", "provider": "rtserve/provider", "cdk": "rtserve/cdk"}
    expected = {
        f"{prefix}/{path.relative_to(source / folder).as_posix()}"
        for folder, prefix in folders.items()
        for path in (source / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert sorted(expected - set(wheel_names)) == []
