"""A browser-like HTTP client of the UI (cookies, forms, CSRF tokens), for live-backend tests."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx

from rtserve.server.client import BackendClient
from rtserve.server.process import BackendProcess

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
LOGIN_CSRF_INPUT = re.compile(r'name="login_csrf" value="([^"]+)"')


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


SERVING_ENDPOINTS_API = "/api/2.0/serving-endpoints"


def wait_serving_endpoint(admin: BackendClient, name: str, until: Callable[[dict], bool], timeout: float = 120) -> dict:
    """GET the named endpoint (GA API) until `until(detail)` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not until(detail := admin.call("GET", f"{SERVING_ENDPOINTS_API}/{name}")):
        assert time.monotonic() < deadline, f"serving endpoint {name} never got there: {detail['state']}"
        time.sleep(0.1)
    return detail


def settled(detail: dict) -> bool:
    return detail["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"}
