"""The columns of the inference tables, and logged requests as rows of them (in the writer's thread).

The payload table has the columns of Databricks' payload table (legacy and AI gateway forms together);
the usage table those of Databricks' `system.serving.endpoint_usage`, adapted: no account or workspace,
no token counts (rtserve serves no LLMs), and the endpoint's name, which Databricks keeps in another
system table. docs/inference-tables.md lists both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

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
    # Built a column at a time: several times faster than row dicts, and this thread shares the GIL with serving.
    return pa.Table.from_arrays(
        [
            pa.array([e.request_id for e in exchanges], pa.string()),
            pa.array([client_request_id(e.request) for e in exchanges], pa.string()),
            _days([e.timestamp_ms for e in exchanges]),
            pa.array([e.timestamp_ms for e in exchanges], pa.int64()),
            pa.array([e.status for e in exchanges], pa.int32()),
            pa.repeat(pa.scalar(1.0), len(exchanges)),
            pa.array([e.execution_ms for e in exchanges], pa.int64()),
            pa.array([e.request.decode("utf-8", "replace") for e in exchanges], pa.string()),
            pa.array([e.response.decode("utf-8", "replace") for e in exchanges], pa.string()),
            pa.array([e.served_entity for e in exchanges], pa.string()),
            pa.array([e.requester for e in exchanges], pa.string()),
            _metadata(exchanges),
            pa.array([[]] * len(exchanges), pa.list_(pa.string())),
        ],
        schema=PAYLOAD_SCHEMA,
    )


def usage_table(exchanges: Sequence[Exchange]) -> pa.Table:
    requests = [e.request.decode("utf-8", "replace") for e in exchanges]
    responses = [e.response.decode("utf-8", "replace") for e in exchanges]
    return pa.Table.from_arrays(
        [
            pa.array([e.request_id for e in exchanges], pa.string()),
            pa.array([client_request_id(e.request) for e in exchanges], pa.string()),
            pa.array([e.requester for e in exchanges], pa.string()),
            pa.array([e.status for e in exchanges], pa.int32()),
            pa.array([e.timestamp_ms for e in exchanges], pa.int64())
            .cast(pa.timestamp("ms", tz="UTC"))
            .cast(pa.timestamp("us", tz="UTC")),
            pa.array([len(text) for text in requests], pa.int64()),
            pa.array([len(text) for text in responses], pa.int64()),
            pa.repeat(pa.scalar(False), len(exchanges)),
            pa.array([e.served_entity for e in exchanges], pa.string()),
            pa.array([e.endpoint for e in exchanges], pa.string()),
        ],
        schema=USAGE_SCHEMA,
    )


def _days(timestamps_ms: list[int]) -> pa.Array:
    """UTC dates of epoch milliseconds."""
    return pa.array([ms // 86_400_000 for ms in timestamps_ms], pa.int32()).cast(pa.date32())


def _metadata(exchanges: Sequence[Exchange]) -> pa.Array:
    """`request_metadata`: endpoint_name, model_name and model_version of each request, as a map column."""
    keys = pa.array(["endpoint_name", "model_name", "model_version"] * len(exchanges), pa.string())
    values = pa.array([value for e in exchanges for value in (e.endpoint, e.model, e.version)], pa.string())
    offsets = pa.array(range(0, 3 * len(exchanges) + 1, 3), pa.int32())
    return pa.MapArray.from_arrays(offsets, keys, values)
