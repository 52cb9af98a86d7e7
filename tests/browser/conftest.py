"""Playwright (sync API) on Debian's chromium, against the live backend of tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from rtserve.server.process import BackendProcess
from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS, new_context


@pytest.fixture(scope="module")  # Playwright's sync API keeps an event loop running until it stops
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium is not installed at {CHROMIUM}: run .ci/system-deps.sh (or set RTSERVE_CHROMIUM)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, backend: BackendProcess) -> Iterator[Page]:
    context = new_context(browser, backend)
    opened = context.new_page()
    yield opened
    context.close()
