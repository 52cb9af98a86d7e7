"""Tokens made and revoked with the `rtserve tokens` command, as an operator would, for live-backend tests."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

from rtserve.server.process import BackendProcess


def create_token(backend: BackendProcess, permission: str, name: str | None = None) -> tuple[str, str]:
    """(token, token id) of a new token made with `rtserve tokens create`, as an operator would."""
    name = name or f"ui-{permission.lower()}-{uuid.uuid4().hex[:6]}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtserve.server",
            "tokens",
            "create",
            "--name",
            name,
            "--permission",
            permission,
            "--data-dir",
            str(backend.data_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    token_id = re.search(r"Created token (\w+)", result.stderr + result.stdout)
    assert token_id, result.stderr
    return result.stdout.strip().splitlines()[-1], token_id.group(1)


def revoke_token(backend: BackendProcess, token_id: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "rtserve.server", "tokens", "revoke", token_id, "--data-dir", str(backend.data_dir)],
        capture_output=True,
        check=True,
    )
