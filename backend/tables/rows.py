"""The columns of the inference tables, and logged requests as rows of them (in the writer's thread).

The payload table has the columns of Databricks' payload table (legacy and AI gateway forms together);
the usage table those of Databricks' `system.serving.endpoint_usage`, adapted: no account or workspace,
no token counts (rtserve serves no LLMs), and the endpoint's name, which Databricks keeps in another
system table. docs/inference-tables.md lists both.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from rtserve.server.control.inference_tables import InferenceTables

PAYLOAD_SCHEMA = pa.schema(
    [
        ("databricks_request_id", pa.string()),
        ("client_request_id", pa.string()),
        ("date", pa.date32()),
        ("timestamp_ms", pa.int64()),
        ("status_code", pa.int32()),
        ("sampling_fraction", pa.float64()),
        ("execution_time_ms", pa.int64()),
        ("request", pa.string()),
        ("response", pa.string()),
        ("served_entity_id", pa.string()),
        ("requester", pa.string()),
        ("request_metadata", pa.map_(pa.string(), pa.string())),
        ("logging_error_codes", pa.list_(pa.string())),
    ]
)
USAGE_SCHEMA = pa.schema(
    [
        ("databricks_request_id", pa.string()),
        ("client_request_id", pa.string()),
        ("requester", pa.string()),
        ("status_code", pa.int32()),
        ("request_time", pa.timestamp("us", tz="UTC")),
        ("input_character_count", pa.int64()),
        ("output_character_count", pa.int64()),
        ("request_streaming", pa.bool_()),
        ("served_entity_id", pa.string()),
        ("endpoint_name", pa.string()),
    ]
)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One answered request, as the scoring path hands it over: bytes and scalars, nothing decoded."""

    endpoint: str
    tables: InferenceTables  # the endpoint's settings when it was answered
    request_id: str
    requester: str
    served_entity: str
    model: str
    version: str
    timestamp_ms: int
    execution_ms: int
    status: int
    request: bytes
    response: bytes


def client_request_id(body: bytes) -> str | None:
    """The `client_request_id` a client may put in its request body (Databricks' convention)."""
    if b'"client_request_id"' not in body:  # almost always: skip the parse
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    value = parsed.get("client_request_id") if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else None


def payload_table(exchanges: Sequence[Exchange]) -> pa.Table:
    rows: list[dict[str, Any]] = [
        {
            "databricks_request_id": e.request_id,
            "client_request_id": client_request_id(e.request),
            "date": datetime.datetime.fromtimestamp(e.timestamp_ms / 1000, datetime.UTC).date(),
            "timestamp_ms": e.timestamp_ms,
            "status_code": e.status,
            "sampling_fraction": 1.0,
            "execution_time_ms": e.execution_ms,
            "request": e.request.decode("utf-8", "replace"),
            "response": e.response.decode("utf-8", "replace"),
            "served_entity_id": e.served_entity,
            "requester": e.requester,
            "request_metadata": [
                ("endpoint_name", e.endpoint),
                ("model_name", e.model),
                ("model_version", e.version),
            ],
            "logging_error_codes": [],
        }
        for e in exchanges
    ]
    return pa.Table.from_pylist(rows, schema=PAYLOAD_SCHEMA)


def usage_table(exchanges: Sequence[Exchange]) -> pa.Table:
    rows: list[dict[str, Any]] = [
        {
            "databricks_request_id": e.request_id,
            "client_request_id": client_request_id(e.request),
            "requester": e.requester,
            "status_code": e.status,
            "request_time": datetime.datetime.fromtimestamp(e.timestamp_ms / 1000, datetime.UTC),
            "input_character_count": len(e.request.decode("utf-8", "replace")),
            "output_character_count": len(e.response.decode("utf-8", "replace")),
            "request_streaming": False,
            "served_entity_id": e.served_entity,
            "endpoint_name": e.endpoint,
        }
        for e in exchanges
    ]
    return pa.Table.from_pylist(rows, schema=USAGE_SCHEMA)
