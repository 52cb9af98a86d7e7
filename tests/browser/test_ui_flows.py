"""Seed 000's UI flows, end to end in a real browser (Debian's chromium) against a live backend.

Sign in, open the model, transition a stage with the Stage dropdown, enable serving, watch the
status go from Pending to Ready, change the compute and follow its progress, query with Show
Example and Send Request, read the logs (one replica and All Replicas) and the Model Events,
disable. Each page is saved as a screenshot on the way (to docs/screenshots/ under `make screenshots`).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect

from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.browser.helpers import screenshot, sign_in
from tests.conftest import ADMIN_TOKEN, mlflow_pointing_at

pytestmark = pytest.mark.browser
MODEL = "iris-ui"
READY_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def ui_model(backend: BackendProcess) -> str:
    """Two versions of the demo model, in no stage yet, under a name no other test touches."""
    with mlflow_pointing_at(backend.url, ADMIN_TOKEN):
        register_demo_model(backend.url, name=MODEL)
    return MODEL


def endpoint_state(page: Page):  # type: ignore[no-untyped-def]
    return page.get_by_test_id("endpoint-state")


def transition(page: Page, version: str, stage: str, archive: bool) -> None:
    row = page.locator(f"#version-row-{version}")
    row.get_by_label("Stage", exact=True).select_option(stage)
    if archive:
        row.get_by_label("Archive existing versions in that stage").check()
    row.get_by_role("button", name="Transition").click()
    expect(page.locator(".flash-ok")).to_contain_text(f"Version {version} moved to {stage}.")
    expect(row.get_by_test_id("stage")).to_have_text(stage)


def test_seed_000_ui_flow_end_to_end(page: Page, ui_model: str) -> None:
    expect.set_options(timeout=20_000)
    page.on("dialog", lambda dialog: dialog.accept())  # "Disable serving?" confirmation

    # Signed out, the UI sends the browser to the sign-in page.
    page.goto("/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    screenshot(page, "01-sign-in")
    sign_in(page)
    expect(page.locator("#models-table")).to_contain_text(ui_model)
    screenshot(page, "02-models")

    # Versions tab: the Stage dropdown moves version 1 to Production.
    page.get_by_role("link", name=ui_model, exact=True).click()
    expect(page.get_by_role("heading", name=ui_model)).to_be_visible()
    transition(page, "1", "Production", archive=True)

    # Serving tab: Enable, Pending, then Ready.
    page.get_by_role("link", name="Serving", exact=True).click()
    page.get_by_role("button", name="Enable Serverless Real-Time Inference").click()
    expect(page.locator(".flash-ok")).to_contain_text("Serving enabled")
    expect(endpoint_state(page)).to_have_text("Pending")
    expect(endpoint_state(page)).to_have_attribute("data-state", "ENDPOINT_STATE_READY", timeout=READY_TIMEOUT_MS)
    expect(endpoint_state(page)).to_have_text("Ready")
    expect(page.get_by_role("button", name="Disable Serving")).to_be_visible()
    version_1 = page.locator(".vtab[data-version='1']")
    expect(version_1).to_contain_text("Production")
    expect(page.get_by_test_id("version-state")).to_have_text("Ready")
    expect(page.locator("#replicas-table")).to_contain_text("Ready")

    # Model URLs per stage and per version, each with a copy button.
    production_url = f"/model-endpoint/{ui_model}/Production/invocations"
    expect(page.locator("#urls-table")).to_contain_text(production_url)
    expect(page.locator("#urls-table")).to_contain_text(f"/model-endpoint/{ui_model}/1/invocations")
    page.get_by_role("button", name="Copy the Production URL").click()
    expect(page.get_by_role("button", name="Copy the Production URL")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()").endswith(production_url)

    # Compute Settings: Production to Medium; the progress shows until the change is applied.
    page.get_by_role("link", name="Compute Settings").click()
    production = page.locator("#compute-production")
    production.get_by_label("Workload size").select_option("Medium")
    production.get_by_role("button", name="Save Production").click()
    expect(page.locator(".flash-ok")).to_contain_text("Saved Production: Medium")
    summary = page.get_by_test_id("compute-summary")
    expect(summary).to_have_attribute("data-state", "PENDING")
    expect(summary).to_contain_text("Applying compute settings")
    expect(page.locator("#compute-table")).to_contain_text("Medium")
    screenshot(page, "06-compute-settings")  # while the change is applied
    expect(summary).to_have_attribute("data-state", "READY", timeout=READY_TIMEOUT_MS)
    expect(page.locator("#compute-table tr[data-version='1']")).to_contain_text("Compute config applied")
    expect(page.locator("#compute-production select")).to_have_value("Medium")

    # Versions tab again: version 2 to Staging; the Serving tab then shows it with its Staging label.
    page.get_by_role("link", name="Versions").click()
    transition(page, "2", "Staging", archive=True)
    screenshot(page, "03-versions")
    page.get_by_role("link", name="Serving", exact=True).click()
    version_2 = page.locator(".vtab[data-version='2']")
    expect(version_2).to_contain_text("Staging", timeout=READY_TIMEOUT_MS)
    expect(version_2.locator(".badge")).to_have_text("Ready", timeout=READY_TIMEOUT_MS)
    expect(page.locator(".vtab[data-version='1']")).to_contain_text("Production")
    version_2.click()
    expect(page).to_have_url(re.compile(r"version=2"))
    expect(page.locator("#version-status h2")).to_contain_text("Version 2")

    # Query panel: Show Example loads the logged input example; Send Request shows the predictions.
    page.get_by_role("button", name="Show Example").click()
    expect(page.get_by_test_id("example-note")).to_contain_text("serving_input_example.json")
    body = page.locator("#query-body")
    expect(body).to_have_value(re.compile(r'"dataframe_split"'))
    expect(body).to_have_value(re.compile(r"sepal length \(cm\)"))
    page.get_by_role("button", name="Send Request").click()
    result = page.get_by_test_id("query-result")
    expect(result).to_contain_text("HTTP 200")
    expect(result).to_contain_text("Answered by version 2")
    expect(result.get_by_test_id("latency")).to_have_text(re.compile(r"Latency \d+ ms"))
    expect(result.locator("#predictions-table tbody tr")).to_have_count(3)  # the example logged 3 rows
    screenshot(page, "04-serving")

    # A request the model cannot take: the error envelope is shown readably, not as a 500.
    body.fill('{"dataframe_split": {"columns": ["petal size"], "data": [["large"]]}}')
    page.get_by_role("button", name="Send Request").click()
    expect(result).to_contain_text("HTTP 400")
    expect(result.locator(".error-message")).to_contain_text("Model is missing inputs")
    body.fill("{not json")
    page.get_by_role("button", name="Send Request").click()
    expect(result.locator(".error-message")).to_contain_text("not valid JSON")

    # Logs: All Replicas merged (each line names its replica), then one replica alone.
    logs = page.locator("#logs-panel")
    expect(logs.get_by_role("tab", name="All Replicas")).to_have_attribute("aria-selected", "true")
    logs.get_by_role("button", name="Refresh").click()
    replica_tab = logs.locator("[data-replica]").first
    replica_id = replica_tab.get_attribute("data-replica")
    assert replica_id and replica_id.startswith(f"{ui_model}-2-")
    expect(logs.get_by_test_id("log-text")).to_contain_text(f"[{replica_id}]")
    logs.locator(f"[data-replica='{replica_id}']").click()
    expect(page.locator("#logs-panel [data-replica]").first).to_have_attribute("aria-selected", "true")
    single = page.locator("#logs-panel").get_by_test_id("log-text")
    expect(single).not_to_contain_text(f"[{replica_id}]")
    expect(single).not_to_have_text("")
    expect(page.locator("#logs-panel .hint")).to_contain_text(f"replica {replica_id}")
    page.locator("#logs-panel").get_by_role("tab", name="All Replicas").click()
    expect(page.locator("#logs-panel").get_by_test_id("log-text")).to_contain_text(f"[{replica_id}]")
    page.locator("#logs-panel").scroll_into_view_if_needed()
    screenshot(page, "05-logs")

    # Model Events: a table, newest first.
    page.get_by_role("link", name="Model Events").click()
    events = page.locator("#events-table tbody tr")
    expect(events.first).to_be_visible()
    messages = events.locator("td:nth-child(5)").all_inner_texts()
    assert any("Serving enabled by admin" in m for m in messages)
    assert any("Compute config for Production updated by admin: Medium" in m for m in messages)
    times = events.locator("td:nth-child(1)").all_inner_texts()
    assert times == sorted(times, reverse=True)
    assert messages.index(next(m for m in messages if "Version 2 moved to Staging" in m)) < messages.index(
        next(m for m in messages if "Serving enabled by admin" in m)
    )
    screenshot(page, "07-model-events")

    # Disable: the Enable button is back.
    page.get_by_role("link", name="Serving", exact=True).click()
    page.get_by_role("button", name="Disable Serving").click()
    expect(page.locator(".flash-ok")).to_contain_text("Serving disabled")
    expect(page.get_by_role("button", name="Enable Serverless Real-Time Inference")).to_be_visible()
    expect(endpoint_state(page)).to_have_text("Not enabled")


def test_view_only_token_sees_the_pages_but_every_change_is_disabled(
    page: Page, backend: BackendProcess, ui_model: str
) -> None:
    viewer = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtserve.server",
            "tokens",
            "create",
            "--name",
            "ui-viewer",
            "--permission",
            "CAN_VIEW",
            "--data-dir",
            str(backend.data_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    sign_in(page, viewer)
    page.goto(f"/ui/models/{ui_model}/serving")
    expect(page.locator(".readonly-note")).to_contain_text("your token has CAN_VIEW")
    enable_or_disable = page.locator("#endpoint-status button[type=submit]")
    expect(enable_or_disable).to_be_disabled()
    page.goto(f"/ui/models/{ui_model}")
    for button in page.get_by_role("button", name="Transition").all():
        expect(button).to_be_disabled()
