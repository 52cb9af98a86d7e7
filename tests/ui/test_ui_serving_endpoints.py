"""The Serving endpoints pages (seed 002's named endpoints) over HTTP against a live backend.

The endpoints are created through the GA API, as a user would with curl, Terraform or CDKTF; the
UI lists them, shows one, and queries it through its traffic split or one served model.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN, mlflow_pointing_at
from tests.registry_helpers import register_code_model
from tests.tokens import create_token
from tests.ui.helpers import SERVING_ENDPOINTS_API, UiClient, settled, wait_serving_endpoint

pytestmark = pytest.mark.api
MODEL = "iris-ui-ga"  # registered only by these tests
SPLIT = "ui-ga-split"  # blue: version 1 with 75% of the traffic, green: version 2 with 25%
IRIS = request_bodies()["dataframe_split"][1]
HX = {"HX-Request": "true"}


@pytest.fixture(scope="module")
def ga_model(backend: BackendProcess) -> str:
    with mlflow_pointing_at(backend.url, ADMIN_TOKEN):
        register_demo_model(backend.url, name=MODEL, versions=2)
    return MODEL


def served(version: str, name: str) -> dict:
    return {"name": name, "entity_name": MODEL, "entity_version": version, "workload_size": "Small"}


@pytest.fixture(scope="module")
def split_endpoint(admin: BackendClient, ga_model: str) -> Iterator[str]:
    config = {
        "served_entities": [served("1", "blue"), {**served("2", "green"), "scale_to_zero_enabled": True}],
        "traffic_config": {
            "routes": [
                {"served_model_name": "blue", "traffic_percentage": 75},
                {"served_model_name": "green", "traffic_percentage": 25},
            ]
        },
    }
    tags = [{"key": "team", "value": "fraud-detection"}]
    admin.call("POST", SERVING_ENDPOINTS_API, json={"name": SPLIT, "config": config, "tags": tags})
    wait_serving_endpoint(admin, SPLIT, settled)
    yield SPLIT
    admin.call("DELETE", f"{SERVING_ENDPOINTS_API}/{SPLIT}")


@pytest.fixture(scope="module")
def admin_ui(backend: BackendProcess) -> Iterator[UiClient]:
    client = UiClient(backend)
    assert client.sign_in(ADMIN_TOKEN).status_code == 303
    yield client
    client.close()


def text(response: httpx.Response) -> str:
    return html.unescape(response.text)


def query(ui: UiClient, endpoint: str, body: object, target: str = "") -> httpx.Response:
    content = body if isinstance(body, str) else httpx.Request("POST", "/", json=body).content.decode()
    return ui.post(f"/ui/serving-endpoints/{endpoint}/query", {"served": target, "body": content}, headers=HX)


def test_the_list_without_endpoints_says_how_to_create_one(admin_ui: UiClient, admin: BackendClient):
    # First in this module, before its endpoints exist; other modules' endpoints may share the backend.
    if admin.call("GET", SERVING_ENDPOINTS_API).get("endpoints"):
        pytest.skip("other tests' serving endpoints exist on this backend")
    page = text(admin_ui.http.get("/ui/serving-endpoints/"))  # the trailing slash works too
    assert "No serving endpoints yet." in page and "POST" in page and "/api/2.0/serving-endpoints" in page


def test_the_list_shows_each_endpoint_with_its_state_served_models_and_traffic(admin_ui: UiClient, split_endpoint: str):
    response = admin_ui.http.get("/ui/serving-endpoints")

    assert response.status_code == 200
    row = re.search(rf'<tr data-endpoint="{split_endpoint}">(.*?)</tr>', response.text, re.S)
    assert row, response.text
    cells = text(httpx.Response(200, text=row.group(1)))
    assert f'href="/ui/serving-endpoints/{split_endpoint}"' in cells
    assert 'data-state="READY"' in cells and ">Ready<" in cells
    assert f'href="/ui/models/{MODEL}"' in cells and "Version 1" in cells and "Version 2" in cells
    assert re.search(r"blue <strong>75%</strong>.*green <strong>25%</strong>", cells, re.S)
    assert "admin" in cells  # the creator: the admin token's name
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", cells)
    nav = admin_ui.http.get("/ui/").text
    assert '<a href="/ui/serving-endpoints">Serving endpoints</a>' in nav


def test_the_endpoint_page_shows_state_url_config_traffic_and_tags(
    admin_ui: UiClient, split_endpoint: str, backend: BackendProcess
):
    response = admin_ui.http.get(f"/ui/serving-endpoints/{split_endpoint}")

    assert response.status_code == 200
    page = text(response)
    assert 'data-testid="endpoint-ready" data-state="READY"' in page
    assert 'data-testid="endpoint-config-update" data-state="NOT_UPDATING"' in page
    assert "Serving config version 1." in page
    url = f"{backend.url}/serving-endpoints/{split_endpoint}/invocations"
    assert f'data-copy="{url}"' in page
    assert f"{backend.url}/serving-endpoints/{split_endpoint}/served-models/green/invocations" in page
    active = re.search(r'<table[^>]*id="active-config-table"(.*?)</table>', page, re.S)
    assert active and "pending-config-table" not in page
    blue = re.search(r'<tr data-served="blue">(.*?)</tr>', active.group(1), re.S).group(1)
    assert f'<a href="/ui/models/{MODEL}">{MODEL}</a>' in blue
    assert "Version 1" in blue and "Small" in blue and ">Off<" in blue and ">75%<" in blue
    assert 'data-state="DEPLOYMENT_READY"' in blue
    green = re.search(r'<tr data-served="green">(.*?)</tr>', active.group(1), re.S).group(1)
    assert "Version 2" in green and ">On<" in green and ">25%<" in green
    assert "<code>team</code></td><td>fraud-detection" in page
    # Settled: the page polls slowly; the query panel offers the split and each served model.
    assert 'hx-trigger="every 3s"' in page
    assert '<option value="" selected>Endpoint (traffic split)</option>' in page
    assert f'<option value="green">Served model green ({MODEL} version 2)</option>' in page


def test_the_live_refresh_redraws_the_dropdown_only_when_the_served_models_change(
    admin_ui: UiClient, split_endpoint: str
):
    live = f"/ui/serving-endpoints/{split_endpoint}/live"

    unchanged = admin_ui.http.get(live, params={"targets": ",blue,green", "served": "green"}, headers=HX)
    changed = admin_ui.http.get(live, params={"targets": ",blue", "served": "green"}, headers=HX)

    assert unchanged.status_code == 200 and 'id="endpoint-status"' in unchanged.text
    assert 'hx-swap-oob="true"' in unchanged.text and 'id="query-target"' not in unchanged.text
    assert 'id="query-target-wrap" hx-swap-oob="true"' in changed.text
    assert '<option value="green" selected>' in changed.text  # the user's choice is kept


def test_show_example_loads_the_input_example_of_the_served_model_with_most_traffic(
    admin_ui: UiClient, split_endpoint: str
):
    example = f"/ui/serving-endpoints/{split_endpoint}/example"

    heaviest = text(admin_ui.http.get(example, headers=HX))
    chosen = text(admin_ui.http.get(example, params={"served": "green"}, headers=HX))
    gone = text(admin_ui.http.get(example, params={"served": "red", "body": '{"inputs": [1]}'}, headers=HX))

    assert f"{MODEL} version 1, served model 'blue', 75% of the traffic" in heaviest
    assert "serving_input_example.json" in heaviest and '"dataframe_split"' in heaviest
    assert "sepal length (cm)" in heaviest
    assert f"{MODEL} version 2, served model 'green'" in chosen
    assert "has no served model 'red'" in gone and '{"inputs": [1]}' in gone  # the body is kept


def test_send_request_scores_through_the_traffic_split_and_names_the_served_model(
    admin_ui: UiClient, split_endpoint: str
):
    answered = set()
    for _ in range(30):  # 75/25: both answer within 30 requests but with odds of 0.75**30 + 0.25**30
        response = query(admin_ui, split_endpoint, IRIS)
        assert response.status_code == 200
        page = text(response)
        assert "HTTP 200" in page and 'id="predictions-table"' in page and re.search(r"Latency \d+ ms", page)
        assert f"POST /serving-endpoints/{split_endpoint}/invocations" in page
        answered.add(re.search(r'data-testid="served-model-name">(\w+)<', page).group(1))
        if answered == {"blue", "green"}:
            break
    assert answered == {"blue", "green"}


def test_send_request_to_one_served_model_goes_to_that_model_only(admin_ui: UiClient, split_endpoint: str):
    for _ in range(5):
        page = text(query(admin_ui, split_endpoint, IRIS, target="green"))
        assert 'data-testid="served-model-name">green<' in page and f"({MODEL} version 2)" in page
        assert f"POST /serving-endpoints/{split_endpoint}/served-models/green/invocations" in page


@pytest.mark.parametrize(
    ("body", "target", "status", "expected"),
    [
        ("{not json", "", 400, "MALFORMED_REQUEST"),
        ('{"dataframe_split": {"columns": ["petal size"], "data": [["large"]]}}', "", 400, "Model is missing inputs"),
        ("{}", "red", 404, "has no served model 'red'. Served: blue, green."),
    ],
)
def test_scoring_errors_are_shown_as_the_error_envelope(
    admin_ui: UiClient, split_endpoint: str, body: str, target: str, status: int, expected: str
):
    response = query(admin_ui, split_endpoint, body, target)

    assert response.status_code == 200  # the fragment, which shows the scoring error
    page = text(response)
    assert f"HTTP {status}" in page and 'class="result result-error"' in page
    assert expected in page


def test_an_unknown_endpoint_is_a_readable_404_page_and_a_404_envelope_when_queried(admin_ui: UiClient):
    response = admin_ui.http.get("/ui/serving-endpoints/ui-ga-nowhere")

    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
    page = text(response)
    assert "There is no serving endpoint named 'ui-ga-nowhere'" in page
    assert "Check the name on the Serving endpoints page" in page
    assert '<a href="/ui/serving-endpoints">Back to the serving endpoints</a>' in page
    scored = text(query(admin_ui, "ui-ga-nowhere", IRIS))
    assert "HTTP 404" in scored and "RESOURCE_DOES_NOT_EXIST" in scored and "does not exist" in scored
    live = admin_ui.http.get("/ui/serving-endpoints/ui-ga-nowhere/live", headers=HX)
    assert live.headers["hx-refresh"] == "true"  # deleted while open: reload into the 404 page


def test_a_view_token_gets_no_query_button_until_the_endpoint_grants_it_query(
    backend: BackendProcess, admin: BackendClient, split_endpoint: str
):
    name = f"ui-consumer-{uuid.uuid4().hex[:6]}"
    token, _ = create_token(backend, "CAN_VIEW", name=name)
    ui = UiClient(backend)
    try:
        ui.sign_in(token)
        page = text(ui.http.get(f"/ui/serving-endpoints/{split_endpoint}"))
        assert "Read-only: your token has CAN_VIEW on this endpoint. Querying it needs CAN_QUERY." in page
        assert "Send Request" not in page and 'href="#query-panel"' not in page
        assert "Sending requests needs CAN_QUERY; your token has CAN_VIEW on this endpoint." in page
        assert "Show Example" in page
        refused = query(ui, split_endpoint, IRIS)
        assert refused.status_code == 403
        assert "sending a request to it needs CAN_QUERY" in text(refused)

        endpoint_id = admin.serving_endpoint(split_endpoint)["id"]
        acl = [{"user_name": name, "permission_level": "CAN_QUERY"}]
        admin.call("PATCH", f"/api/2.0/permissions/serving-endpoints/{endpoint_id}", json={"access_control_list": acl})

        page = text(ui.http.get(f"/ui/serving-endpoints/{split_endpoint}"))
        assert "Send Request" in page and "Read-only" not in page
        assert f"<td><code>{name}</code></td><td>user</td><td>CAN_QUERY</td>" in page  # the Permissions table
        assert query(ui, split_endpoint, IRIS).status_code == 200
        assert "None: requests are limited only by the replicas' queues." in page
    finally:
        ui.close()


def test_the_endpoint_page_shows_its_rate_limits_and_send_request_obeys_them(
    admin: BackendClient, admin_ui: UiClient, split_endpoint: str
):
    limits = {"rate_limits": [{"calls": 1, "key": "user", "renewal_period": "minute"}]}
    admin.call("PUT", f"/api/2.0/serving-endpoints/{split_endpoint}/ai-gateway", json=limits)
    try:
        page = text(admin_ui.http.get(f"/ui/serving-endpoints/{split_endpoint}"))
        assert "<li>1 call per minute for each token</li>" in page
        assert query(admin_ui, split_endpoint, IRIS).status_code == 200
        refused = query(admin_ui, split_endpoint, IRIS)
        assert refused.status_code == 429 and "REQUEST_LIMIT_EXCEEDED" in text(refused)
    finally:
        admin.call("PUT", f"/api/2.0/serving-endpoints/{split_endpoint}/ai-gateway", json={"rate_limits": []})


def test_a_query_token_can_query_and_the_csrf_token_is_required(backend: BackendProcess, split_endpoint: str):
    token, _ = create_token(backend, "CAN_QUERY")
    ui = UiClient(backend)
    try:
        ui.sign_in(token)
        page = text(ui.http.get(f"/ui/serving-endpoints/{split_endpoint}"))
        assert "Send Request" in page and "Read-only" not in page
        assert "HTTP 200" in text(query(ui, split_endpoint, IRIS))
        forged = ui.http.post(f"/ui/serving-endpoints/{split_endpoint}/query", data={"body": "{}"}, headers=HX)
        assert forged.status_code == 403 and "CSRF" in forged.text
    finally:
        ui.close()


def test_a_pending_config_is_shown_next_to_the_active_one_and_a_failed_update_says_why(
    admin_ui: UiClient, admin: BackendClient, backend: BackendProcess, ga_model: str
):
    name = "ui-ga-update"
    with mlflow_pointing_at(backend.url, ADMIN_TOKEN):
        slow = register_code_model("ui-ga-slow-load", "slow_load.py")  # loads for 4 s
        failing = register_code_model("ui-ga-failing-load", "failing_load.py")
    admin.call("POST", SERVING_ENDPOINTS_API, json={"name": name, "config": {"served_entities": [served("1", "v1")]}})
    try:
        wait_serving_endpoint(admin, name, settled)
        slow_entity = {"name": "slow", "entity_name": "ui-ga-slow-load", "entity_version": slow}
        admin.call("PUT", f"{SERVING_ENDPOINTS_API}/{name}/config", json={"served_entities": [slow_entity]})

        updating = text(admin_ui.http.get(f"/ui/serving-endpoints/{name}"))

        assert 'data-testid="endpoint-config-update" data-state="IN_PROGRESS"' in updating
        assert "Updating to config version 2: traffic stays on config version 1" in updating
        assert 'id="active-config-table" data-config-version="1"' in updating
        assert 'id="pending-config-table" data-config-version="2"' in updating
        assert 'data-state="DEPLOYMENT_CREATING"' in updating and 'hx-trigger="every 1s"' in updating
        assert "Served model slow (ui-ga-slow-load version 1, pending config)" in updating
        wait_serving_endpoint(admin, name, settled)

        failing_entity = {"name": "broken", "entity_name": "ui-ga-failing-load", "entity_version": failing}
        admin.call("PUT", f"{SERVING_ENDPOINTS_API}/{name}/config", json={"served_entities": [failing_entity]})
        wait_serving_endpoint(admin, name, lambda d: d["state"]["config_update"] == "UPDATE_FAILED")

        failed = text(admin_ui.http.get(f"/ui/serving-endpoints/{name}"))

        assert 'data-state="UPDATE_FAILED"' in failed and ">Update failed<" in failed
        assert "The update to config version 3 failed (broken: " in failed
        assert "weights file weights.bin is missing" in failed
        assert "Config version 2 keeps serving" in failed
        assert 'data-testid="endpoint-ready" data-state="READY"' in failed
        assert 'data-state="DEPLOYMENT_FAILED"' in failed
    finally:
        admin.call("DELETE", f"{SERVING_ENDPOINTS_API}/{name}")


def test_a_new_endpoint_is_not_ready_while_its_first_config_starts(
    admin_ui: UiClient, admin: BackendClient, backend: BackendProcess
):
    name = "ui-ga-creating"
    with mlflow_pointing_at(backend.url, ADMIN_TOKEN):
        slow = register_code_model("ui-ga-slow-create", "slow_load.py")
    entity = {"name": "slow", "entity_name": "ui-ga-slow-create", "entity_version": slow}
    admin.call("POST", SERVING_ENDPOINTS_API, json={"name": name, "config": {"served_entities": [entity]}})
    try:
        page = text(admin_ui.http.get(f"/ui/serving-endpoints/{name}"))
        listed = text(admin_ui.http.get("/ui/serving-endpoints"))
    finally:
        admin.call("DELETE", f"{SERVING_ENDPOINTS_API}/{name}")

    assert 'data-testid="endpoint-ready" data-state="NOT_READY"' in page and ">Not ready<" in page
    assert "Creating: config version 1 is starting" in page
    assert "None yet: the first config is starting" in page
    assert 'id="pending-config-table" data-config-version="1"' in page
    row = re.search(rf'<tr data-endpoint="{name}">(.*?)</tr>', listed, re.S).group(1)
    assert ">Not ready<" in row and ">Updating<" in row and "ui-ga-slow-create" in row
