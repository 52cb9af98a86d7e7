"""`rtserve demo`: the quick start's main job, end to end, on embedded defaults."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rtserve.server.client import BackendClient
from rtserve.server.demo_model import DEMO_MODEL, iris_frame, register_demo_model
from rtserve.server.process import BackendProcess

PROJECT = Path(__file__).resolve().parent.parent  # the repository: cdktf.json and main.py
CANARY = f"{DEMO_MODEL}-canary"  # main.py's serving endpoint: version 1 takes 90% of the traffic, version 2 10%
CANARY_REQUESTS = 200


CANARY_RATE_LIMITS = [{"calls": 600, "key": "user", "renewal_period": "minute"}]
CANARY_ACCESS = [{"group_name": "users", "permission_level": "CAN_QUERY"}]


def canary_config(versions: list[str]) -> dict:
    """The serving endpoint main.py declares, for installs without the repository.

    Its rate limits and access control list are CANARY_RATE_LIMITS and CANARY_ACCESS.
    """
    return {
        "served_entities": [
            {"name": "current", "entity_name": DEMO_MODEL, "entity_version": versions[0]},
            {"name": "candidate", "entity_name": DEMO_MODEL, "entity_version": versions[1]},
        ],
        "traffic_config": {
            "routes": [
                {"served_model_name": "current", "traffic_percentage": 90},
                {"served_model_name": "candidate", "traffic_percentage": 10},
            ]
        },
    }


def describe_access(client: BackendClient) -> str:
    """The canary's rate limits and grants, as the API reports them."""
    detail = client.serving_endpoint(CANARY)
    limits = detail.get("ai_gateway", {}).get("rate_limits", [])
    acl = client.call("GET", f"/api/2.0/permissions/serving-endpoints/{detail['id']}")["access_control_list"]
    grants = [
        f"{entry['display_name']} {grant['permission_level']}"
        for entry in acl
        for grant in entry["all_permissions"]
        if not grant["inherited"]
    ]
    per = "; ".join(f"{limit['calls']} calls per {limit['renewal_period']} per {limit['key']}" for limit in limits)
    return f"  rate limits: {per or 'none'}; grants: {', '.join(grants) or 'none'}"


# Rows the demo scores: a setosa, a virginica, and between them a versicolor (row 52) on which the two
# demo versions disagree, so the output tells Production (version 1) and Staging (version 2) apart.
DEMO_ROWS = (0, 52, 100)


def request_bodies(rows_at: tuple[int, ...] = (0, 100)) -> dict[str, tuple[str, bytes | str | dict]]:
    """One request per input format, each scoring the same iris rows (by default two)."""
    features, _ = iris_frame()
    rows = features.iloc[list(rows_at)]
    return {
        "dataframe_split": ("application/json", {"dataframe_split": json.loads(rows.to_json(orient="split"))}),
        "dataframe_records": ("application/json", {"dataframe_records": rows.to_dict(orient="records")}),
        "instances": ("application/json", {"instances": rows.to_dict(orient="records")}),
        "inputs": ("application/json", {"inputs": {c: rows[c].tolist() for c in rows.columns}}),
        "csv": ("text/csv", rows.to_csv(index=False)),
    }


def deploy_example_stacks(host: str, token: str, data_dir: Path, console: Console) -> None:
    """`rtserve deploy` of main.py: the staging and production stacks, applied with the embedded Terraform."""
    from rtserve.server.deploy import print_outcomes, run_stacks, synthesize

    os.environ.update(RTSERVE_HOST=host, RTSERVE_TOKEN=token, RTSERVE_MODEL=DEMO_MODEL, RTSERVE_STATE_DIR=str(data_dir))
    console.print(
        "Deploying main.py's stacks (staging: version 2 in Staging; production: version 1 in Production, "
        f"and the serving endpoint {CANARY} sending 10% of its traffic to version 2)"
    )
    stacks = synthesize(PROJECT, console, outdir=data_dir / "cdktf.out")
    print_outcomes(run_stacks(stacks, "deploy", console), console)


def run_demo(data_dir: Path, console: Console, admin_token: str | None = None, *, keep: bool = False) -> int:
    """The demo; `admin_token` (RTSERVE_ADMIN_TOKEN, read by the caller's Settings) or a fixed demo token.

    `keep`: leave the backend running at the end (after a successful run) and say how to use and stop it.
    """
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    token = admin_token or "rtsv-demo-admin-token"
    backend = BackendProcess(data_dir / "state", admin_token=token, log_path=data_dir / "backend.log")
    with console.status("Starting the backend on embedded defaults..."):
        backend.start()
    console.print(f"[green]✓[/] backend at {backend.url} (log: {backend.log_path})")
    client = BackendClient(backend.url, token)
    kept = False  # the backend is left running only after a run that reached its end
    try:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
        with console.status("Training and registering the demo model (two versions)..."):
            versions = register_demo_model(backend.url)
        console.print(f"[green]✓[/] registered {DEMO_MODEL} versions {', '.join(versions)}")

        started = time.monotonic()
        if (PROJECT / "cdktf.json").exists():
            deploy_example_stacks(backend.url, token, data_dir, console)
        else:  # installed without the repository: the same result through the API
            client.enable(DEMO_MODEL)
            client.transition(DEMO_MODEL, versions[0], "Production", comment="demo: version 1 serves production")
            client.transition(DEMO_MODEL, versions[1], "Staging", comment="demo: version 2 on staging")
            canary = client.create_serving_endpoint(CANARY, canary_config(versions))
            client.call(
                "PUT", f"/api/2.0/serving-endpoints/{CANARY}/ai-gateway", json={"rate_limits": CANARY_RATE_LIMITS}
            )
            client.call(
                "PUT",
                f"/api/2.0/permissions/serving-endpoints/{canary['id']}",
                json={"access_control_list": CANARY_ACCESS},
            )
        with console.status("Waiting until both versions and the serving endpoint are READY..."):
            status = client.wait_ready(DEMO_MODEL, versions)
            client.wait_serving_settled(CANARY)
        console.print(f"[green]✓[/] {status['state']} in {time.monotonic() - started:.1f} s: {status['state_message']}")

        table = Table("stage or version", "format", "status", "predictions")
        failures = 0
        targets = ["Production", "Staging", versions[0]]
        for target in targets:
            for fmt, (content_type, body) in request_bodies(DEMO_ROWS).items():
                response = client.score(DEMO_MODEL, target, body, content_type)
                failures += response.status_code != 200
                shown = response.json().get("predictions", response.text) if response.content else ""
                table.add_row(target, fmt, str(response.status_code), json.dumps(shown))
        console.print(table)
        answered_by: Counter[str] = Counter()
        body = request_bodies()["dataframe_split"][1]
        for _ in range(CANARY_REQUESTS):
            response = client.score_serving(CANARY, body)
            failures += response.status_code != 200
            answered_by[response.headers.get("served-model-name", f"HTTP {response.status_code}")] += 1
        shares = ", ".join(f"{name} {count}" for name, count in answered_by.most_common())
        console.print(
            f"Serving endpoint {CANARY} (current 90%, candidate 10%): {CANARY_REQUESTS} requests, answered by {shares}"
        )
        console.print(describe_access(client))
        console.print("Model URLs:")
        for target in targets:
            console.print(f"  {backend.url}/model-endpoint/{DEMO_MODEL}/{target}/invocations")
        console.print(f"  {backend.url}/serving-endpoints/{CANARY}/invocations")
        if failures:
            console.print(f"[red]{failures} scoring requests failed[/]; see {backend.log_path}")
            return 1
        console.print("[green]✓[/] every request scored")
        if keep:
            kept = True
            _print_kept(backend, token, console)
        return 0
    finally:
        client.close()
        if not kept:
            with console.status("Stopping the backend..."):
                backend.stop()


def _print_kept(backend: BackendProcess, token: str, console: Console) -> None:
    pid = backend.process.pid if backend.process else "?"
    console.print(f"The backend keeps running (pid {pid}):")
    console.print(f"  UI:    {backend.url}/ui/   (sign in with the token below)")
    console.print(f"  token: {token}")
    console.print(f"  log:   {backend.log_path}")
    console.print(f"  stop:  kill {pid}")
