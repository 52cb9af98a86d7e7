"""The UI's sign-in, sessions, CSRF refusal and permission checks, over HTTP against a live backend."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator

import httpx
import pytest

from rtserve.server.client import BackendClient, BackendError
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN, mlflow_pointing_at
from tests.registry_helpers import params_signature, register_code_model
from tests.tokens import create_token, revoke_token
from tests.ui.helpers import UiClient

pytestmark = pytest.mark.api
UNREGISTERED = "ui-no-such-model"


@pytest.fixture(scope="module")
def ui_endpoint(admin: BackendClient, backend: BackendProcess) -> Iterator[str]:
    """A registered model with serving enabled and no version in a stage (so no replica runs)."""
    name = "ui-endpoint"
    with mlflow_pointing_at(backend.url, ADMIN_TOKEN):
        register_code_model(name, "params_model.py", params_signature())
    admin.enable(name)
    yield name
    admin.disable(name)


@pytest.fixture
def ui(backend: BackendProcess) -> Iterator[UiClient]:
    client = UiClient(backend)
    yield client
    client.close()


@pytest.fixture
def admin_ui(ui: UiClient) -> UiClient:
    assert ui.sign_in(ADMIN_TOKEN).status_code == 303
    return ui


def is_html(response: httpx.Response) -> bool:
    return response.headers["content-type"].startswith("text/html")


def text(response: httpx.Response) -> str:
    """The page's text as a reader sees it (entities such as &#39; decoded)."""
    return html.unescape(response.text)


def test_the_root_and_bare_ui_paths_lead_into_the_ui(backend: BackendProcess):
    for path in ("/", "/ui"):
        response = httpx.get(f"{backend.url}{path}")
        assert response.status_code == 307 and response.headers["location"] == "/ui/"


@pytest.mark.parametrize("path", ["/ui/", "/ui/models/x/serving?version=2", "/ui/models/x/events"])
def test_a_signed_out_browser_is_sent_to_the_sign_in_page_and_back(ui: UiClient, path: str):
    response = ui.http.get(path)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/ui/login?next=")
    assert httpx.URL(location).params["next"] == path


def test_an_htmx_request_without_a_session_asks_htmx_to_redirect(ui: UiClient):
    response = ui.http.get(
        "/ui/models/x/serving/live",
        headers={"HX-Request": "true", "HX-Current-URL": f"{ui.http.base_url}/ui/models/x/serving"},
    )
    assert response.status_code == 200
    assert httpx.URL(response.headers["hx-redirect"]).params["next"] == "/ui/models/x/serving"


def test_sign_in_sets_an_httponly_samesite_strict_session_cookie_for_ui_paths_only(ui: UiClient):
    response = ui.sign_in(ADMIN_TOKEN, next_url="/ui/models/x")
    assert response.status_code == 303 and response.headers["location"] == "/ui/models/x"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("rtserve_session="))
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path=/ui", "samesite=strict"} <= attributes
    assert ADMIN_TOKEN not in cookie
    assert ui.http.get("/ui/").status_code == 200


def test_an_invalid_token_is_refused_with_a_message_saying_what_to_do(ui: UiClient):
    response = ui.sign_in("rtsv-not-a-token")
    assert response.status_code == 401 and is_html(response)
    assert "not valid (unknown or revoked)" in response.text and "rtserve tokens create" in response.text
    assert "rtserve_session" not in response.headers.get("set-cookie", "")


def test_a_sign_in_form_from_another_site_is_refused(ui: UiClient):
    response = ui.http.post("/ui/login", data={"token": ADMIN_TOKEN, "login_csrf": "forged"})
    assert response.status_code == 403
    assert "rtserve_session" not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("target", ["https://evil.example/ui/", "//evil.example/ui/", "/api/2.0/x", "/ui\\evil"])
def test_sign_in_never_redirects_off_the_ui(ui: UiClient, target: str):
    assert ui.sign_in(ADMIN_TOKEN, next_url=target).headers["location"] == "/ui/"


def test_a_change_without_the_csrf_token_is_refused_and_changes_nothing(
    admin_ui: UiClient, admin: BackendClient, iris_model: str
):
    was_enabled = _enabled(admin, iris_model)
    for csrf_value in (None, "forged-token"):
        fields = {} if csrf_value is None else {"csrf_token": csrf_value}
        path = f"/ui/models/{iris_model}/disable" if was_enabled else f"/ui/models/{iris_model}/enable"
        response = admin_ui.post(path, fields, csrf=False)
        assert response.status_code == 403 and is_html(response)
        assert "CSRF" in response.text and "Reload the page" in response.text
    assert _enabled(admin, iris_model) == was_enabled
    # The same request with the page's token goes through the check (to the registry's 404 here).
    passed = admin_ui.post(f"/ui/models/{UNREGISTERED}/enable")
    assert passed.status_code == 404 and f"Registered model '{UNREGISTERED}' does not exist" in text(passed)


def _enabled(admin: BackendClient, model: str) -> bool:
    try:
        admin.status(model)
    except BackendError as exc:
        assert exc.status == 404
        return False
    return True


def test_htmx_requests_may_carry_the_csrf_token_in_a_header(admin_ui: UiClient):
    headers = {"HX-Request": "true", "X-CSRF-Token": admin_ui.csrf}
    response = admin_ui.http.post(
        f"/ui/models/{UNREGISTERED}/query", data={"target": "1", "body": "{}"}, headers=headers
    )
    assert response.status_code == 200  # the fragment shows the scoring error, below
    # The model is not registered at all, and the error says so (not "serving is not enabled").
    assert "RESOURCE_DOES_NOT_EXIST" in response.text and "does not exist" in response.text
    refused = admin_ui.http.post(
        f"/ui/models/{UNREGISTERED}/query", data={"target": "1", "body": "{}"}, headers={"HX-Request": "true"}
    )
    assert refused.status_code == 403


def test_the_api_never_accepts_the_session_cookie(admin_ui: UiClient, backend: BackendProcess):
    cookie = f"rtserve_session={admin_ui.http.cookies['rtserve_session']}"
    sizes = "/api/2.0/preview/mlflow/endpoints-v2/get-supported-workload-sizes"
    response = httpx.get(f"{backend.url}{sizes}", headers={"Cookie": cookie})
    assert response.status_code == 401 and response.json()["error_code"] == "UNAUTHENTICATED"


def test_a_token_header_does_not_open_the_ui(ui: UiClient):
    assert ui.http.get("/ui/", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 303
    assert ui.http.get("/ui/", auth=("token", ADMIN_TOKEN)).status_code == 303


def test_a_view_token_sees_every_page_but_cannot_change_or_query(
    ui: UiClient, backend: BackendProcess, iris_model: str
):
    token, _ = create_token(backend, "CAN_VIEW")
    ui.sign_in(token)
    for tab in ("", "/serving", "/compute", "/events"):
        page = ui.http.get(f"/ui/models/{iris_model}{tab}")
        assert page.status_code == 200, page.text
        assert "Read-only: your token has CAN_VIEW" in page.text
    models = ui.http.get("/ui/")
    assert models.status_code == 200 and iris_model in models.text
    refusals = {
        "enable": ("enabling serving needs CAN_MANAGE", {}),
        "disable": ("disabling serving needs CAN_MANAGE", {}),
        "compute": ("changing compute settings needs CAN_MANAGE", {"stage": "Staging", "workload_size_id": "Large"}),
        "versions/1/transition": ("transitioning a version's stage needs CAN_MANAGE", {"stage": "Production"}),
        "query": ("sending a request to the model needs CAN_QUERY", {"target": "1", "body": "{}"}),
    }
    for action, (message, fields) in refusals.items():
        response = ui.post(f"/ui/models/{iris_model}/{action}", fields)
        assert response.status_code == 403, (action, response.text)
        assert message in text(response) and "has CAN_VIEW" in text(response)


def test_a_query_token_can_send_requests_but_not_manage(ui: UiClient, backend: BackendProcess):
    token, _ = create_token(backend, "CAN_QUERY")
    ui.sign_in(token)
    query = ui.post(f"/ui/models/{UNREGISTERED}/query", {"target": "Production", "body": "{}"})
    assert query.status_code == 200 and f"Registered model &#39;{UNREGISTERED}&#39; does not exist" in query.text
    denied = ui.post(f"/ui/models/{UNREGISTERED}/enable")
    assert denied.status_code == 403 and "has CAN_QUERY; enabling serving needs CAN_MANAGE" in denied.text


def test_revoking_the_token_ends_the_sessions_signed_in_with_it(ui: UiClient, backend: BackendProcess):
    token, token_id = create_token(backend, "CAN_MANAGE")
    ui.sign_in(token)
    assert ui.http.get("/ui/").status_code == 200
    revoke_token(backend, token_id)
    deadline = time.monotonic() + 10  # the verifier caches a token for 5 s
    while (response := ui.http.get("/ui/")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert response.status_code == 303 and "reason=expired" in response.headers["location"]


def test_sign_out_ends_the_session(admin_ui: UiClient):
    session_cookie = admin_ui.http.cookies["rtserve_session"]
    assert admin_ui.post("/ui/logout", csrf=False).status_code == 403  # signing out is a change too
    response = admin_ui.post("/ui/logout")
    assert response.status_code == 303 and response.headers["location"] == "/ui/login?reason=signedout"
    replay = httpx.get(f"{admin_ui.http.base_url}/ui/", cookies={"rtserve_session": session_cookie})
    assert replay.status_code == 303


def test_unknown_models_and_pages_are_readable_html_not_json(admin_ui: UiClient):
    for path, expected in (
        (f"/ui/models/{UNREGISTERED}", f"There is no registered model named '{UNREGISTERED}'"),
        (f"/ui/models/{UNREGISTERED}/serving", "Check the name on the Models page"),
        ("/ui/no/such/page", "There is no UI page at /ui/no/such/page"),
    ):
        response = admin_ui.http.get(path)
        assert response.status_code == 404 and is_html(response), path
        assert expected in text(response)


def test_an_invalid_form_value_is_a_readable_400(admin_ui: UiClient, iris_model: str):
    response = admin_ui.post(f"/ui/models/{iris_model}/versions/1/transition", {"stage": "Canary"})
    assert response.status_code == 400 and is_html(response)
    assert "Pick a stage among None, Staging, Production, Archived" in response.text


def test_pages_forbid_framing_and_inline_scripts(admin_ui: UiClient):
    response = admin_ui.http.get("/ui/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def test_static_files_need_no_session(ui: UiClient):
    for name in ("htmx.min.js", "app.js", "app.css"):
        assert ui.http.get(f"/ui/static/{name}").status_code == 200
    assert ui.http.get("/ui/static/../session.py").status_code in (303, 404)
    assert ui.http.get("/ui/static/nope.js").status_code == 404


def test_a_version_that_cannot_load_shows_failed_with_the_loaders_message(
    admin_ui: UiClient, admin: BackendClient, backend: BackendProcess
):
    name = "ui-failing-load"
    with mlflow_pointing_at(backend.url, ADMIN_TOKEN):
        version = register_code_model(name, "failing_load.py")
    admin.enable(name)
    admin.transition(name, version, "Production")
    deadline = time.monotonic() + 60
    while admin.status(name)["state"] != "ENDPOINT_STATE_FAILED" and time.monotonic() < deadline:
        time.sleep(0.3)
    try:
        page = admin_ui.http.get(f"/ui/models/{name}/serving")
        assert page.status_code == 200
        assert 'data-state="ENDPOINT_STATE_FAILED"' in page.text and ">Failed<" in page.text
        assert "cannot load: the weights file weights.bin is missing" in text(page)
        assert 'data-state="SERVICE_STATE_FAILED"' in page.text
    finally:
        admin.disable(name)


def test_saving_compute_settings_keeps_the_batching_set_through_the_api(
    admin_ui: UiClient, admin: BackendClient, ui_endpoint: str
):
    batching = {"max_batch_size": 8, "max_batch_wait_ms": 3.0}
    admin.call(
        "PUT",
        "/api/2.0/preview/mlflow/endpoints-v2/update-compute-config",
        json={
            "registered_model_name": ui_endpoint,
            "stage": "Staging",
            "desired_workload_config_spec": {"workload_size_id": "Small", "scale_to_zero_enabled": False, **batching},
        },
    )
    assert "Batching: up to 8 requests within 3.0 ms" in admin_ui.http.get(f"/ui/models/{ui_endpoint}/compute").text
    saved = admin_ui.post(
        f"/ui/models/{ui_endpoint}/compute",
        {"stage": "Staging", "workload_size_id": "Medium", "scale_to_zero_enabled": "true"},
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"/ui/models/{ui_endpoint}/compute"
    specs = {c["stage"]: c["workload_spec"] for c in admin.status(ui_endpoint)["compute_config"]}
    assert specs["Staging"] == {"workload_size_id": "Medium", "scale_to_zero_enabled": True, **batching}
    assert specs["Production"] == {"workload_size_id": "Small", "scale_to_zero_enabled": False}
    page = admin_ui.http.get(f"/ui/models/{ui_endpoint}/compute")
    assert "Saved Staging: Medium, scale to zero on." in page.text
