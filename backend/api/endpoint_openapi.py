"""A serving endpoint's own OpenAPI document (GET /api/2.0/serving-endpoints/{name}/openapi), as Databricks
gives it: its scoring paths, with request schemas built from each served model's signature and its input
example. Pure: the signatures and examples are read by the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# MLflow column types (mlflow.types.DataType) as JSON Schema.
_JSON_TYPES = {
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "string": {"type": "string"},
    "binary": {"type": "string", "contentEncoding": "base64"},
    "datetime": {"type": "string", "format": "date-time"},
}
_ERROR = {
    "type": "object",
    "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
}


@dataclass(frozen=True)
class ServedModelDoc:
    served_name: str
    model: str
    version: str
    columns: list[dict[str, Any]] | None  # the signature's column specs, or None without one
    example: dict[str, Any] | None  # the input example as a request body


def document(endpoint: str, base_url: str, served: list[ServedModelDoc]) -> dict[str, Any]:
    base = f"{base_url.rstrip('/')}/serving-endpoints/{endpoint}"
    paths = {"/invocations": _path(f"Score {endpoint} through its traffic split", served)}
    for entity in served:
        paths[f"/served-models/{entity.served_name}/invocations"] = _path(
            f"Score {entity.served_name} ({entity.model} version {entity.version})", [entity]
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": endpoint, "version": "2"},
        "servers": [{"url": base}],
        "paths": paths,
    }


def _path(summary: str, served: list[ServedModelDoc]) -> dict[str, Any]:
    schemas = [_request_schema(entity.columns) for entity in served]
    distinct = [schema for i, schema in enumerate(schemas) if schema not in schemas[:i]]
    body: dict[str, Any] = {"schema": distinct[0] if len(distinct) == 1 else {"anyOf": distinct}}
    example = next((entity.example for entity in served if entity.example is not None), None)
    if example is not None:
        body["example"] = example
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": body}},
            "responses": {
                "200": {
                    "description": "The model's predictions",
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "properties": {"predictions": {}}, "required": ["predictions"]}
                        }
                    },
                },
                **{
                    status: {"description": meaning, "content": {"application/json": {"schema": _ERROR}}}
                    for status, meaning in (
                        ("400", "The input does not fit the model"),
                        ("403", "The token may not query this endpoint"),
                        ("429", "Over a rate limit or the queue's limit"),
                    )
                },
            },
        }
    }


def _request_schema(columns: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The four JSON input formats; with a column signature, `dataframe_split` and `dataframe_records` typed."""
    if not columns or any("name" not in column for column in columns):
        row: dict[str, Any] = {"type": "array"}
        record: dict[str, Any] = {"type": "object"}
        names: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    else:
        types = [_JSON_TYPES.get(column.get("type", ""), {}) for column in columns]
        row = {"type": "array", "prefixItems": types, "minItems": len(types), "maxItems": len(types)}
        record = {
            "type": "object",
            "properties": {column["name"]: kind for column, kind in zip(columns, types, strict=True)},
            "required": [column["name"] for column in columns if column.get("required", True)],
        }
        names = {"type": "array", "items": {"type": "string"}, "const": [column["name"] for column in columns]}
    return {
        "oneOf": [
            _wrapped(
                "dataframe_split",
                {
                    "type": "object",
                    "required": ["columns", "data"],
                    "properties": {"columns": names, "data": {"type": "array", "items": row}},
                },
            ),
            _wrapped("dataframe_records", {"type": "array", "items": record}),
            _wrapped("instances", {"type": "array"}),
            _wrapped("inputs", {}),
        ]
    }


def _wrapped(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {key: schema}}
