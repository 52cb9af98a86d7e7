"""The one query panel helper (a model's Serving tab, a serving endpoint's page): admitted and scored
through the same admission and gateway as the scoring URLs, and shown readably."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from rtserve.server import gateway
from rtserve.server.auth import Principal
from rtserve.server.control.endpoint import EndpointKind
from rtserve.server.errors import ApiError
from rtserve.server.services import Services
from rtserve.server.ui.render import ERROR_HINTS

MAX_TABLE_ROWS = 100
MAX_TABLE_COLUMNS = 20


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    truncated: bool = False


@dataclass
class QueryResult:
    status_code: int
    latency_ms: int = 0
    served_version: str | None = None
    target_label: str = ""
    error: dict | None = None  # {error_code, message}
    hint: str = ""
    table: Table | None = None
    raw: str = ""
    sent: bool = True  # False when the UI refused the body before it reached the model
    queue_ms: int = 0  # of the latency, the time spent waiting for a replica (a cold start)
    served_model_name: str | None = None  # a serving endpoint's answer: its `served-model-name` header


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else str(value)


def prediction_table(predictions: Any) -> Table | None:
    """Predictions as rows: a list of values, of records, of rows, or a dict of columns; None otherwise."""
    if isinstance(predictions, dict) and predictions and all(isinstance(v, list) for v in predictions.values()):
        columns = list(predictions)[:MAX_TABLE_COLUMNS]
        length = max(len(v) for v in predictions.values())
        records = [{c: predictions[c][i] if i < len(predictions[c]) else None for c in columns} for i in range(length)]
        predictions = records
    if not isinstance(predictions, list) or not predictions:
        return None
    shown = predictions[:MAX_TABLE_ROWS]
    truncated = len(predictions) > MAX_TABLE_ROWS
    if all(isinstance(p, dict) for p in shown):
        keys: list[str] = []
        for record in shown:
            keys.extend(k for k in record if k not in keys)
        keys = keys[:MAX_TABLE_COLUMNS]
        rows = [[i, *(_cell(record.get(k)) for k in keys)] for i, record in enumerate(shown)]
        return Table(["#", *keys], rows, truncated)
    if all(isinstance(p, list) for p in shown):
        width = min(MAX_TABLE_COLUMNS, max(len(p) for p in shown))
        rows = [[i, *(_cell(p[j]) if j < len(p) else "" for j in range(width))] for i, p in enumerate(shown)]
        return Table(["#", *(str(j) for j in range(width))], rows, truncated)
    return Table(["#", "prediction"], [[i, _cell(p)] for i, p in enumerate(shown)], truncated)


def _error(status: int, error_code: str, message: str) -> tuple[dict, str]:
    hint = ERROR_HINTS.get(status, "")
    if status == 400:
        hint = "Fix the request body (Show Example loads one the model takes) and send it again."
    return {"error_code": error_code, "message": message}, hint


def invalid_body(body: str) -> QueryResult | None:
    """A readable refusal of a body that is not a JSON object, before it reaches a replica."""
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError as exc:
        message = f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
    except RecursionError:
        message = "The request body is nested too deeply to parse."
    except ValueError as exc:  # integers past Python's digit limit
        message = f"The request body is not valid JSON: {exc}"
    else:
        if isinstance(parsed, dict):
            return None
        formats = "dataframe_split, dataframe_records, instances or inputs"
        message = f"The request body must be a JSON object with one of {formats}."
    error, hint = _error(400, "MALFORMED_REQUEST", message)
    return QueryResult(400, 0, None, "Not sent to the model", error, hint, sent=False)


async def send(
    services: Services, principal: Principal, kind: EndpointKind, name: str, route: str, body: str
) -> QueryResult:
    """Score `body` on an endpoint's route exactly as its scoring URL would: admitted (permission, grants,
    rate limits), scored through the gateway and counted alike. `route` is a stage, alias or version of a
    model endpoint, or a served model of a serving endpoint (TRAFFIC_SPLIT for its traffic split)."""
    action = "sending a request to the model" if kind is EndpointKind.MODEL else "sending a request to it"
    await services.admission.admit(services.controller.snapshot, kind, name, principal, action)
    if len(body.encode()) > services.settings.max_request_bytes:
        raise ApiError("REQUEST_LIMIT_EXCEEDED", "The request body is larger than the scoring limit.", 413)
    label = f"POST {_scoring_path(kind, name, route)}"
    refused = invalid_body(body)
    if refused is not None:
        return refused
    started = time.perf_counter()
    try:
        scored = await gateway.score(services, kind, name, route, body.encode(), "application/json")
    except ApiError as exc:
        return _refused(exc, started, label)
    destination = scored.destination
    if kind is EndpointKind.MODEL:
        return _answered(scored, started, label, served_version=destination.version)
    answered_by = f"{destination.model} version {destination.version}"
    return _answered(scored, started, label, served_version=answered_by, served_model_name=destination.served_name)


def _scoring_path(kind: EndpointKind, name: str, route: str) -> str:
    if kind is EndpointKind.MODEL:
        return f"/model-endpoint/{name}/{route}/invocations"
    return f"/serving-endpoints/{name}" + (f"/served-models/{route}" if route else "") + "/invocations"


def _refused(exc: ApiError, started: float, label: str) -> QueryResult:
    """The gateway refused the request (unknown target, not ready, timeout...): its envelope, readably."""
    latency = (time.perf_counter() - started) * 1000
    error, hint = _error(exc.status, exc.error_code, exc.message)
    return QueryResult(exc.status, round(latency), None, label, error, hint, raw=_raw_envelope(exc))


def _answered(scored: gateway.Scored, started: float, label: str, **answered_by: Any) -> QueryResult:
    """A replica answered: its predictions as a table, or the error envelope the model's server sent."""
    latency = (time.perf_counter() - started) * 1000
    result = scored.result
    text = result.body.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        payload = None
    raw = json.dumps(payload, indent=2) if payload is not None else text
    common = {"latency_ms": round(latency), "queue_ms": round(scored.queue_ms), "raw": raw, **answered_by}
    if result.status >= 400:
        if isinstance(payload, dict) and "error_code" in payload:
            error, hint = _error(result.status, str(payload["error_code"]), str(payload.get("message", "")))
        else:
            error, hint = _error(result.status, "BAD_REQUEST", text[:2000])
        return QueryResult(result.status, target_label=label, error=error, hint=hint, **common)
    table = prediction_table(payload.get("predictions")) if isinstance(payload, dict) else None
    return QueryResult(result.status, target_label=label, table=table, **common)


def _raw_envelope(exc: ApiError) -> str:
    return json.dumps({"error_code": exc.error_code, "message": exc.message}, indent=2)
