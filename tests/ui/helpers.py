"""A browser-like HTTP client of the UI (cookies, forms, CSRF tokens) and token helpers, for live-backend tests."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

import httpx

from backend.process import BackendProcess

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
LOGIN_CSRF_INPUT = re.compile(r'name="login_csrf" value="([^"]+)"')


def create_token(backend: BackendProcess, permission: str) -> tuple[str, str]:
    """(token, token id) of a new token made with `rtserve tokens create`, as an operator would."""
    name = f"ui-{permission.lower()}-{uuid.uuid4().hex[:6]}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "backend",
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
        [sys.executable, "-m", "backend", "tokens", "revoke", token_id, "--data-dir", str(backend.data_dir)],
        capture_output=True,
        check=True,
    )


class UiClient:
    """Keeps the session cookie like a browser and finds the page's CSRF token like a form would."""

    def __init__(self, backend: BackendProcess) -> None:
        self.http = httpx.Client(base_url=backend.url, follow_redirects=False, timeout=30)
        self.csrf = ""

    def close(self) -> None:
        self.http.close()

    def sign_in(self, token: str, next_url: str = "/ui/") -> httpx.Response:
        form = self.http.get("/ui/login")
        login_csrf = LOGIN_CSRF_INPUT.search(form.text)
        assert login_csrf, form.text
        response = self.http.post(
            "/ui/login", data={"token": token, "login_csrf": login_csrf.group(1), "next": next_url}
        )
        if response.status_code == 303:
            page = self.http.get("/ui/")
            found = CSRF_INPUT.search(page.text)
            self.csrf = found.group(1) if found else ""
        return response

    def post(self, path: str, data: dict | None = None, csrf: bool = True, **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
        fields = dict(data or {})
        if csrf:
            fields["csrf_token"] = self.csrf
        return self.http.post(path, data=fields, **kwargs)
