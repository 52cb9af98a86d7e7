"""Seed 002's Serving UI in a real browser: the Serving endpoints list, one endpoint, and its query panel.

The endpoint is created through the GA API (as curl, Terraform or CDKTF would); the browser signs
in, opens it from the list, loads the input example with Show Example and scores it with Send
Request, through the traffic split and then through one served model. The pages are saved as
screenshots on the way (to docs/screenshots/ under `make screenshots`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from rtserve.server.client import BackendClient
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.browser.helpers import screenshot, sign_in
from tests.conftest import ADMIN_TOKEN, mlflow_pointing_at
from tests.ui.helpers import SERVING_ENDPOINTS_API

pytestmark = pytest.mark.browser
MODEL = "iris-ui-ga-browser"  # registered only by this test
ENDPOINT = "iris-champion-challenger"
READY_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def champion_challenger(backend: BackendProcess, admin: BackendClient) -> Iterator[str]:
    """Version 1 as the champion with 80% of the traffic, version 2 as the challenger with 20%."""
    with mlflow_pointing_at(backend.url, ADMIN_TOKEN):
        register_demo_model(backend.url, name=MODEL, versions=2)
    entities = [
        {"name": "champion", "entity_name": MODEL, "entity_version": "1", "workload_size": "Small"},
        {"name": "challenger", "entity_name": MODEL, "entity_version": "2", "scale_to_zero_enabled": True},
    ]
    routes = [
        {"served_model_name": "champion", "traffic_percentage": 80},
        {"served_model_name": "challenger", "traffic_percentage": 20},
    ]
    config = {"served_entities": entities, "traffic_config": {"routes": routes}}
    tags = [{"key": "team", "value": "botany"}, {"key": "stage", "value": "production"}]
    admin.call("POST", SERVING_ENDPOINTS_API, json={"name": ENDPOINT, "config": config, "tags": tags})
    yield ENDPOINT
    admin.call("DELETE", f"{SERVING_ENDPOINTS_API}/{ENDPOINT}")


def test_query_a_serving_endpoint_from_its_page(page: Page, champion_challenger: str) -> None:
    expect.set_options(timeout=20_000)
    sign_in(page)

    # The list, from the navigation: the endpoint turns Ready by itself once its versions load.
    page.get_by_role("navigation").get_by_role("link", name="Serving endpoints").click()
    row = page.locator(f"#serving-endpoints-table tr[data-endpoint='{champion_challenger}']")
    expect(row).to_contain_text("champion")
    expect(row).to_contain_text("80%")
    row.get_by_role("link", name=champion_challenger).click()

    # The endpoint page: its live state, URL, served models with their share of the traffic, tags.
    expect(page.get_by_role("heading", name=champion_challenger)).to_be_visible()
    ready = page.get_by_test_id("endpoint-ready")
    expect(ready).to_have_attribute("data-state", "READY", timeout=READY_TIMEOUT_MS)
    expect(ready).to_have_text("Ready")
    active = page.locator("#active-config-table")
    expect(active.locator("tr[data-served='champion']")).to_contain_text("80%")
    expect(active.locator("tr[data-served='challenger'] [data-testid='deployment-state']")).to_have_text("Ready")
    expect(page.locator("#endpoint-tags-table")).to_contain_text("botany")
    endpoint_url = f"/serving-endpoints/{champion_challenger}/invocations"
    expect(page.get_by_test_id("endpoint-url")).to_have_text(re.compile(re.escape(endpoint_url) + "$"))

    # Query endpoint: Show Example loads the champion's logged example (it gets the most traffic).
    page.get_by_role("link", name="Query endpoint").click()
    page.get_by_role("button", name="Show Example").click()
    expect(page.get_by_test_id("example-note")).to_contain_text("served model 'champion', 80% of the traffic")
    body = page.locator("#query-body")
    expect(body).to_have_value(re.compile(r'"dataframe_split"'))

    # Send Request through the traffic split: predictions, the served model that answered, the latency.
    page.get_by_role("button", name="Send Request").click()
    result = page.get_by_test_id("query-result")
    expect(result).to_contain_text("HTTP 200")
    expect(result.locator("#predictions-table tbody tr")).to_have_count(3)  # the example logged 3 rows
    expect(result.get_by_test_id("served-model-name")).to_have_text(re.compile(r"^(champion|challenger)$"))
    expect(result.get_by_test_id("latency")).to_have_text(re.compile(r"Latency \d+ ms"))

    # One served model, chosen in the dropdown.
    page.get_by_label("Send to").select_option("challenger")
    page.get_by_role("button", name="Send Request").click()
    expect(result).to_contain_text("/served-models/challenger/invocations")
    expect(result.get_by_test_id("served-model-name")).to_have_text("challenger")
    expect(result).to_contain_text(f"{MODEL} version 2")
    page.get_by_label("Send to").select_option("")
    page.get_by_role("button", name="Send Request").click()
    expect(result).to_contain_text(f"POST /serving-endpoints/{champion_challenger}/invocations")
    screenshot(page, "serving-endpoint")
    page.get_by_role("button", name="Copy the endpoint URL").click()
    expect(page.get_by_role("button", name="Copy the endpoint URL")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()").endswith(endpoint_url)

    # An error from scoring is shown as its envelope, in the page.
    body.fill('{"dataframe_split": {"columns": ["petal size"], "data": [["large"]]}}')
    page.get_by_role("button", name="Send Request").click()
    expect(result).to_contain_text("HTTP 400")
    expect(result.locator(".error-message")).to_contain_text("Model is missing inputs")

    # Back to the list, now settled.
    page.get_by_role("link", name="Serving endpoints").first.click()
    expect(row.get_by_test_id("endpoint-ready")).to_have_text("Ready")
    screenshot(page, "serving-endpoints")
