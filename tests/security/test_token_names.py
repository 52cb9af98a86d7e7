"""`rtserve tokens create` refuses a name an active token holds: grants go to names, so it would share them."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtserve.server.cli import app
from rtserve.server.store import db

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def keep_umask() -> Iterator[None]:
    """The tokens commands set the process umask (0o077) as the server does; give pytest's back."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield
    os.umask(saved)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RTSERVE_DATA_DIR", raising=False)
    monkeypatch.delenv("RTSERVE_DATABASE_URL", raising=False)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db.migrate(f"sqlite:///{data_dir / 'rtserve.db'}")  # a server's store, as after its first start
    return data_dir


def tokens(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["tokens", *args, "--data-dir", str(data_dir)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def create(data_dir: Path, name: str, permission: str, *extra: str) -> tuple[int, str, str]:
    return tokens(data_dir, "create", "--name", name, "--permission", permission, *extra)


def token_id(stderr: str) -> str:
    found = re.search(r"Created token (\w+)", stderr)
    assert found, stderr
    return found.group(1)


def active(data_dir: Path, name: str) -> int:
    _, listing, _ = tokens(data_dir, "list")
    return sum(1 for line in listing.splitlines() if f" {name} " in line and "active" in line)


def test_a_name_held_by_an_active_token_is_refused_with_what_to_do(data_dir: Path):
    code, _, stderr = create(data_dir, "admin", "ADMIN")
    assert code == 0
    held_by = token_id(stderr)

    code, stdout, stderr = create(data_dir, "admin", "CAN_VIEW")

    assert code == 1
    assert stdout == ""  # no token printed
    message = " ".join(stderr.split())
    assert f"An active token is already named 'admin': {held_by} (ADMIN)" in message
    assert "would get every grant given to that name" in message
    assert "Choose another name" in message and "rtserve tokens revoke" in message
    assert "--allow-existing-name" in message
    assert active(data_dir, "admin") == 1


def test_allow_existing_name_creates_it_anyway(data_dir: Path):
    assert create(data_dir, "billing-app", "CAN_VIEW")[0] == 0

    code, stdout, stderr = create(data_dir, "billing-app", "CAN_VIEW", "--allow-existing-name")

    assert code == 0, stderr
    assert stdout.strip().startswith("rtsv")
    assert active(data_dir, "billing-app") == 2


def test_the_name_of_a_revoked_token_is_free_again(data_dir: Path):
    code, _, stderr = create(data_dir, "ci-pipeline", "CAN_MANAGE")
    assert code == 0
    assert tokens(data_dir, "revoke", token_id(stderr))[0] == 0

    code, _, stderr = create(data_dir, "ci-pipeline", "CAN_MANAGE")

    assert code == 0, stderr
    assert active(data_dir, "ci-pipeline") == 1


def test_other_names_are_unaffected(data_dir: Path):
    assert create(data_dir, "reader", "CAN_VIEW")[0] == 0
    assert create(data_dir, "Reader", "CAN_VIEW")[0] == 0  # grants match names exactly
    assert create(data_dir, "writer", "CAN_QUERY")[0] == 0


def test_a_token_is_revoked_by_name_unless_several_share_it(data_dir: Path):
    first = token_id(create(data_dir, "billing-app", "CAN_VIEW")[2])
    assert tokens(data_dir, "revoke", "billing-app")[:2] == (0, f"Revoked token {first}.\n")
    assert active(data_dir, "billing-app") == 0

    second = token_id(create(data_dir, "billing-app", "CAN_VIEW")[2])
    third = token_id(create(data_dir, "billing-app", "CAN_VIEW", "--allow-existing-name")[2])
    code, _, stderr = tokens(data_dir, "revoke", "billing-app")

    assert code == 1
    assert f"Several active tokens are named 'billing-app' ({second}, {third}): revoke one by its id" in " ".join(
        stderr.split()
    )
    assert active(data_dir, "billing-app") == 2
    assert tokens(data_dir, "revoke", third)[0] == 0
    assert tokens(data_dir, "revoke", "no-such-token")[0] == 1
