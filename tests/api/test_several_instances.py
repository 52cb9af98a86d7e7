"""Two backend instances on one PostgreSQL database and one two-node Ray cluster, an external MLflow registry.

The module shares the database, the cluster, the registry and the two instances across its tests
(they run in order): one leads, both serve; a config rolls out under load through both; a rate limit
holds across both; traffic behind the follower keeps a version up; the leader is killed during a
rollout and the other finishes it; a third instance on the local engine is refused; a UI session signed in
on one instance acts, with its CSRF token, on the other.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.process import BackendProcess

pytest.importorskip("ray", reason="the Ray engine's tests need the 'ray' extra: pip install -e '.[test,ray]'")

from tests.deployment import Deployment, running_deployment  # noqa: E402 - only with the extra

pytestmark = [pytest.mark.api, pytest.mark.ray, pytest.mark.postgres]
TOKEN = "rtsv-several-instances"
MODEL = "iris-shared"
ENDPOINT = "shared-ga"
BODY = request_bodies()["dataframe_split"][1]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("instances")
    with running_deployment(root, TOKEN, MODEL, env={"RTSERVE_SCALE_TO_ZERO_IDLE_SECONDS": "6"}) as shared:
        yield shared


def leader_flag(instance: BackendProcess) -> int:
    text = httpx.get(f"{instance.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    found = re.search(r"^rtserve_leader (\S+)$", text, re.MULTILINE)
    assert found, text[-2000:]
    return int(float(found.group(1)))


def leader_of(instances: list[BackendProcess], timeout: float = 15.0) -> BackendProcess:
    """The one instance that leads; fails if there is none, or more than one, for `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        flags = [leader_flag(instance) for instance in instances]
        if sum(flags) == 1:
            return instances[flags.index(1)]
        assert time.monotonic() < deadline, f"leaders: {flags}"
        time.sleep(0.2)


def roles(deployment: Deployment) -> tuple[BackendProcess, BackendProcess]:
    """(leader, follower) of the two instances."""
    a, b = deployment.instances
    leader = leader_of([a, b])
    return leader, b if leader is a else a


def deployments(detail: dict) -> list[str]:
    return [entity["state"]["deployment"] for entity in detail["config"]["served_entities"]]


def entity(version: int) -> dict:
    return {"name": f"v{version}", "entity_name": MODEL, "entity_version": str(version), "workload_size": "Small"}


class Load:
    """Steady scoring through every given instance in turn, from a few threads; counts the answers."""

    def __init__(self, instances: list[BackendProcess], threads: int = 4) -> None:
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(
                target=self._run, args=(instances[i % len(instances) :] + instances[: i % len(instances)],)
            )
            for i in range(threads)
        ]

    def _run(self, instances: list[BackendProcess]) -> None:
        clients = [BackendClient(instance.url, TOKEN) for instance in instances]
        turn = 0
        while not self._stop.is_set():
            client = clients[turn % len(clients)]
            turn += 1
            try:
                response = client.score_serving(ENDPOINT, BODY)
                outcome, detail = response.status_code, response.text[:200]
            except httpx.HTTPError as exc:
                outcome, detail = 0, repr(exc)
            with self._lock:
                self.statuses[outcome] += 1
                if outcome != 200:
                    self.failures.append(f"{client.host}: {outcome} {detail}")
        for client in clients:
            client.close()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def started_replicas(client: BackendClient) -> Counter[str]:
    """How many times each replica id was reported started, in the model's events."""
    started = (re.match(r"Replica (\S+) started", event["message"]) for event in client.events(MODEL))
    return Counter(match.group(1) for match in started if match)


def test_one_instance_leads_and_a_promotion_under_load_through_both_fails_no_request(deployment: Deployment):
    a, b = deployment.instances
    leader, follower = roles(deployment)
    admin = BackendClient(follower.url, TOKEN)  # a change through the follower is acted on by the leader
    other = BackendClient(leader.url, TOKEN)
    try:
        admin.create_serving_endpoint(ENDPOINT, {"served_entities": [entity(1)]})
        admin.wait_serving_settled(ENDPOINT, timeout=120)
        other.wait_serving_settled(ENDPOINT, timeout=30)
        assert other.score_serving(ENDPOINT, BODY).status_code == 200
        with Load([a, b]) as load:
            time.sleep(2.0)
            admin.update_serving_config(ENDPOINT, {"served_entities": [entity(2)]})
            admin.wait_serving_settled(ENDPOINT, timeout=120)
            other.wait_serving_settled(ENDPOINT, timeout=30)
            time.sleep(3.0)  # the old version's replicas drain and stop under load
        served = [other.serving_endpoint(ENDPOINT), admin.serving_endpoint(ENDPOINT)]
        events = started_replicas(other)
    finally:
        admin.close()
        other.close()
    assert load.failures == [], load.failures[:5]
    assert load.statuses[200] > 20
    assert [[e["entity_version"] for e in s["config"]["served_entities"]] for s in served] == [["2"], ["2"]]
    assert events and set(events.values()) == {1}, events  # every replica started once, its event written once
    assert leader_of([a, b]) is leader  # nothing moved the lead


def test_a_rate_limit_of_n_per_minute_admits_n_in_all_through_both_instances(deployment: Deployment):
    a, b = deployment.instances
    clients = [BackendClient(instance.url, TOKEN) for instance in (a, b)]
    limit = {"calls": 10, "key": "endpoint", "renewal_period": "minute"}
    try:
        clients[0].call("PUT", f"/api/2.0/serving-endpoints/{ENDPOINT}/rate-limits", json={"rate_limits": [limit]})
        time.sleep(1.0)  # the other instance reads the change at its next tick
        statuses = Counter(clients[i % 2].score_serving(ENDPOINT, BODY).status_code for i in range(20))
    finally:
        clients[1].call("PUT", f"/api/2.0/serving-endpoints/{ENDPOINT}/rate-limits", json={"rate_limits": []})
        for client in clients:
            client.close()
    assert statuses == {200: 10, 429: 10}


def test_a_version_busy_only_behind_the_follower_is_not_scaled_to_zero(deployment: Deployment):
    _, follower = roles(deployment)
    client = BackendClient(follower.url, TOKEN)
    try:
        client.update_serving_config(ENDPOINT, {"served_entities": [{**entity(2), "scale_to_zero_enabled": True}]})
        client.wait_serving_settled(ENDPOINT, timeout=120)
        with Load([follower], threads=2) as load:
            time.sleep(10.0)  # longer than the idle period (6 s): only the follower's traffic keeps it up
        detail = client.serving_endpoint(ENDPOINT)
        scaled = [e["message"] for e in client.events(MODEL) if "scaled to zero" in e["message"]]
    finally:
        client.close()
    assert load.failures == [], load.failures[:5]
    assert deployments(detail) == ["DEPLOYMENT_READY"]
    assert scaled == []


def test_a_ui_session_signed_in_on_one_instance_acts_with_its_csrf_token_on_the_other(deployment: Deployment):
    from tests.ui.helpers import UiClient

    first, second = deployment.instances
    ui = UiClient(first)
    other = httpx.Client(base_url=second.url, follow_redirects=False, timeout=30)
    try:
        assert ui.sign_in(TOKEN).status_code == 303
        other.cookies = ui.http.cookies  # the browser's cookie, sent to the other instance behind the balancer
        page = other.get(f"/ui/models/{MODEL}")
        forged = other.post(f"/ui/models/{MODEL}/enable", data={"csrf_token": "forged"})
        acted = other.post(f"/ui/models/{MODEL}/enable", data={"csrf_token": ui.csrf})
        flashed = ui.http.get(acted.headers.get("location", "/ui/"))  # the redirect's page, on the first instance
        signed_out = other.post("/ui/logout", data={"csrf_token": ui.csrf})
        after = ui.http.get(f"/ui/models/{MODEL}")
    finally:
        ui.close()
        other.close()

    assert page.status_code == 200 and ui.csrf in page.text  # the same session, and the same CSRF token
    assert forged.status_code == 403
    assert acted.status_code == 303, acted.text
    assert "Serving enabled." in flashed.text  # the message left by one instance is shown by the other
    assert signed_out.status_code == 303
    assert after.status_code == 303 and after.headers["location"].startswith("/ui/login")  # signed out everywhere


def test_killing_the_leader_during_a_rollout_the_other_instance_finishes_it(deployment: Deployment):
    leader, survivor = roles(deployment)
    client = BackendClient(survivor.url, TOKEN)
    try:
        client.update_serving_config(ENDPOINT, {"served_entities": [entity(1)]})
        time.sleep(1.0)  # the leader starts the new replica, then dies
        leader.kill()
        assert leader_of([survivor], timeout=10) is survivor
        detail = client.wait_serving_settled(ENDPOINT, timeout=120)
        scored = client.score_serving(ENDPOINT, BODY)
    finally:
        client.close()
    assert [e["entity_version"] for e in detail["config"]["served_entities"]] == ["1"]
    assert scored.status_code == 200, scored.text
    assert deployments(detail) == ["DEPLOYMENT_READY"]
    deployment.instances.remove(leader)


def test_a_second_instance_on_the_local_engine_is_refused(deployment: Deployment):
    local = BackendProcess(
        deployment.root / "local" / "data",
        admin_token=TOKEN,
        extra_args=["--database-url", deployment.database_url, "--mlflow-tracking-uri", deployment.registry_url],
    )
    with pytest.raises(RuntimeError, match="backend exited"):
        local.start(timeout=60)
    assert "Another rtserve backend already uses this database" in local.tail(200)
