"""Browser helpers: launching Debian's chromium, signing in, and the docs' screenshots."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page

from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN

CHROMIUM = os.environ.get("RTSERVE_CHROMIUM", "/usr/bin/chromium")
# Playwright cannot download its own browser here: launch the system chromium, quietly and offline.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1366, "height": 768}  # the laptop screen the UI is designed for
# The docs' screenshots are rewritten only by `make screenshots` (it sets RTSERVE_SCREENSHOTS_DIR); a test
# run writes them to a temporary directory, so it changes no tracked file.
SCREENSHOTS = Path(os.environ.get("RTSERVE_SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="rtserve-screenshots-"))


def new_context(browser: Browser, backend: BackendProcess) -> BrowserContext:
    context = browser.new_context(viewport=VIEWPORT, base_url=backend.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=backend.url)
    context.set_default_timeout(20_000)
    return context


def sign_in(page: Page, token: str = ADMIN_TOKEN) -> None:
    page.goto("/ui/login")
    page.fill("#token", token)
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/ui/")


def screenshot(page: Page, name: str) -> None:
    """<name>.png in SCREENSHOTS (docs/screenshots/ under `make screenshots`): the whole page, in a palette
    small enough to commit."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    try:
        from PIL import Image  # installed with MLflow (through matplotlib); without it the PNG stays as taken
    except ImportError:
        return
    with Image.open(path) as image:
        flat = image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    flat.save(path, optimize=True)
