"""The OpenAPI document (/openapi.json): what each route really reads and answers.

Most routes take their parameters through the `Params` dependency (query string and JSON body merged,
read by hand), so FastAPI cannot see them: the schemas are written here, one `openapi_extra` per
route, referenced from the route decorators. `install` then completes the generated document: the
error envelope on every operation (the 4xx/5xx the app really sends, not FastAPI's 422), the security
schemes, and the scoring URLs, which a plain ASGI handler answers (backend/invocations_asgi.py).

Nothing here changes behaviour; tests/api/test_openapi.py keeps the document and the routes in step.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute, iter_route_contexts
from prometheus_client import CONTENT_TYPE_LATEST

from rtserve.spec import ENVIRONMENT_POLICIES, MAX_PROVISIONED_CONCURRENCY, TABLE_NAME_PART_PATTERN

Schema = dict[str, Any]

ERROR_REF = {"$ref": "#/components/schemas/Error"}
# The names serving endpoints and served entities may have (backend/control/serving_config.py).
NAME_PATTERN = "^[A-Za-z0-9_-]{1,63}$"
WORKLOAD_SIZES = ["Small", "Medium", "Large"]
PERMISSION_LEVELS = ["CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"]

_DESCRIPTIONS = {
    400: "Invalid parameter or body (INVALID_PARAMETER_VALUE, MALFORMED_REQUEST, BAD_REQUEST, INVALID_STATE)",
    401: "No token, or an unknown or revoked one (UNAUTHENTICATED)",
    403: "The token's permission is too low (PERMISSION_DENIED)",
    404: "No such model, version, endpoint or route (RESOURCE_DOES_NOT_EXIST, ENDPOINT_NOT_FOUND)",
    409: "Already exists, or an update is in progress (RESOURCE_ALREADY_EXISTS, RESOURCE_CONFLICT)",
    413: "Body larger than the limit (REQUEST_LIMIT_EXCEEDED)",
    415: "Scoring content type other than JSON or CSV (BAD_REQUEST)",
    429: "Too many requests queued, or over a rate limit (REQUEST_LIMIT_EXCEEDED)",
    500: "Unexpected error (INTERNAL_ERROR)",
    503: "The version failed to load, or its replica died (TEMPORARILY_UNAVAILABLE)",
    504: "No answer within the request timeout (DEADLINE_EXCEEDED)",
}
# What every authenticated rtserve route can answer besides its own errors.
COMMON_ERRORS = (400, 401, 403, 404, 413, 500)


def error_response(status: int) -> Schema:
    response: Schema = {"description": _DESCRIPTIONS[status], "content": {"application/json": {"schema": ERROR_REF}}}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    if status == 429:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait (rate limits only)", "schema": {"type": "string"}}
        }
    return response


_ENVIRONMENT_VARS: Schema = {
    "type": "object",
    "additionalProperties": {"type": "string"},
    "description": "variables set in the replicas before the model loads; a value {{secrets/<scope>/<key>}} is "
    "that secret's value (docs/secrets.md)",
}
# Databricks' alternative to workload_size on a served entity (both bounds or neither).
_PROVISIONED_CONCURRENCY: Schema = {
    "min_provisioned_concurrency": {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_PROVISIONED_CONCURRENCY,
        "multipleOf": 4,
        "description": "with max_provisioned_concurrency, instead of workload_size",
    },
    "max_provisioned_concurrency": {
        "type": "integer",
        "minimum": 4,
        "maximum": MAX_PROVISIONED_CONCURRENCY,
        "multipleOf": 4,
    },
}


# rtserve's own field of a served entity: where its version runs (docs/environments.md).
_ENVIRONMENT_POLICY: Schema = {
    "environment_policy": {
        "type": "string",
        "enum": list(ENVIRONMENT_POLICIES),
        "description": "rtserve's own: where the version runs; default the server's RTSERVE_ENVIRONMENT_POLICY",
    }
}


# rtserve's own field of a served entity and of a compute config: the Ray nodes its replicas run on (docs/ray.md).
_PLACEMENT: Schema = {
    "placement": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "node_labels": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "labels a node must carry (ray start --labels), each equal",
            },
            "resources": {
                "type": "object",
                "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
                "description": "custom Ray resources each replica reserves (ray start --resources)",
            },
        },
        "description": "rtserve's own, Ray engine only (a 400 on --engine local): where replicas may run",
    }
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: Schema, required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def _array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


# A required string parameter as `required_str` reads it: a non-empty string, or an integer in a JSON body.
_ID_STRING: Schema = {"type": "string", "minLength": 1}
_ID_STRING_OR_INT: Schema = {"anyOf": [_ID_STRING, {"type": "integer"}]}
# A registry version number as backend/validate.py's version_number reads it (1 to 2**63 - 1).
_VERSION_STRING: Schema = {"type": "string", "pattern": "^0{0,18}[1-9][0-9]{0,17}$", "maxLength": 19}
VERSION: Schema = {
    "anyOf": [_VERSION_STRING, {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}],
    "description": 'a model version number, like "1"',
}
_OPTIONAL_STRING_OR_INT: Schema = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}


def _query(name: str, description: str, required: bool = True, schema: Schema = _ID_STRING) -> Schema:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _json(schema: Schema, description: str = "") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def operation(
    *,
    query: list[Schema] | None = None,
    body: Schema | None = None,
    body_required: bool = True,
    ok: Schema | None = None,
    ok_description: str = "Success",
    errors: tuple[int, ...] = (),
) -> Schema:
    """An `openapi_extra` for a route: its query parameters, JSON body, 200 answer and extra error statuses."""
    extra: Schema = {}
    if query:
        extra["parameters"] = query
    if body is not None:
        extra["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": body}}}
    responses: Schema = {}
    if ok is not None:
        responses["200"] = _json(ok, ok_description)
    elif ok_description != "Success":
        responses["200"] = {"description": ok_description}
    for status in errors:
        responses[str(status)] = error_response(status)
    if responses:
        extra["responses"] = responses
    return extra


# --- components ------------------------------------------------------------------------------------

SCHEMAS: dict[str, Schema] = {
    "Error": _obj(
        {
            "error_code": {"type": "string", "examples": ["RESOURCE_DOES_NOT_EXIST"]},
            "message": {"type": "string"},
            "details": _array(
                _obj({"@type": {"type": "string"}, "request_id": {"type": "string"}}),
                description="[{'@type': 'type.googleapis.com/google.rpc.RequestInfo', request_id}]",
            ),
        },
        ("error_code", "message", "details"),
        description="The Databricks error envelope: every error leaves the backend in this shape.",
    ),
    "Empty": {"type": "object", "description": "An empty object, {}"},
    "WorkloadConfigSpec": _obj(
        {
            "workload_size_id": {"type": "string", "enum": WORKLOAD_SIZES},
            "scale_to_zero_enabled": {"type": "boolean", "default": False},
            "max_batch_size": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1024,
                "description": "rtserve extension: adaptive batching (1, the default, is off)",
            },
            "max_batch_wait_ms": {
                "type": "number",
                "minimum": 0,
                "maximum": 1000,
                "description": "rtserve extension: how long a batch waits to fill (default 5 when batching is on)",
            },
            "placement": {
                **_PLACEMENT["placement"],
                "type": ["object", "null"],
                "description": "rtserve extension, Ray engine only (a 400 on --engine local): the Ray nodes the "
                "stage's replicas may run on; omitted keeps the stage's placement, null or {} clears it",
            },
        },
        ("workload_size_id",),
        additionalProperties=False,
    ),
    "ComputeConfig": _obj(
        {
            "stage": {"type": ["string", "null"]},
            "creation_timestamp": {"type": ["integer", "null"]},
            "user_id": {"type": ["string", "null"]},
            "workload_spec": _ref("WorkloadConfigSpec"),
        }
    ),
    "EndpointStatus": _obj(
        {
            "registered_model_name": {"type": "string"},
            "state": {
                "type": "string",
                "enum": ["ENDPOINT_STATE_PENDING", "ENDPOINT_STATE_READY", "ENDPOINT_STATE_FAILED"],
            },
            "state_message": {"type": "string"},
            "compute_config": _array(_ref("ComputeConfig")),
        },
        ("registered_model_name", "state"),
    ),
    "ServiceStatus": _obj(
        {
            "state": {
                "type": "string",
                "enum": ["SERVICE_STATE_PENDING", "SERVICE_STATE_READY", "SERVICE_STATE_FAILED"],
            },
            "message": {"type": ["string", "null"]},
            "config": {"anyOf": [_ref("ComputeConfig"), {"type": "null"}]},
        }
    ),
    "EndpointVersionStatus": _obj(
        {
            "registered_model_name": {"type": "string"},
            "endpoint_version_name": {"type": "string"},
            "service_status": _ref("ServiceStatus"),
            "config_update_status": _ref("ServiceStatus"),
        },
        ("registered_model_name", "endpoint_version_name"),
    ),
    "Logs": _obj({"logs": {"type": "string"}}, ("logs",)),
    # Request bodies of the GA serving-endpoints API.
    "ServedEntityInput": _obj(
        {
            "name": {
                "type": "string",
                "pattern": NAME_PATTERN,
                "description": "default <entity_name>-<entity_version>",
            },
            "entity_name": {"type": "string", "minLength": 1, "description": "a registered model"},
            "entity_version": VERSION,
            "workload_size": {"type": "string", "enum": WORKLOAD_SIZES, "default": "Small"},
            "scale_to_zero_enabled": {"type": "boolean", "default": False},
            "workload_type": {"type": ["string", "null"], "enum": ["CPU", None]},
            **_PROVISIONED_CONCURRENCY,
            **_ENVIRONMENT_POLICY,
            "environment_vars": _ENVIRONMENT_VARS,
            **_PLACEMENT,
        },
        ("entity_name", "entity_version"),
        description="Any other field is refused with a 400 that names it.",
    ),
    "ServedModelInput": _obj(
        {
            "name": {"type": "string", "pattern": NAME_PATTERN, "description": "default <model_name>-<model_version>"},
            "model_name": {"type": "string", "minLength": 1},
            "model_version": VERSION,
            "workload_size": {"type": "string", "enum": WORKLOAD_SIZES, "default": "Small"},
            "scale_to_zero_enabled": {"type": "boolean", "default": False},
            "workload_type": {"type": ["string", "null"], "enum": ["CPU", None]},
            **_PROVISIONED_CONCURRENCY,
            **_ENVIRONMENT_POLICY,
            "environment_vars": _ENVIRONMENT_VARS,
            **_PLACEMENT,
        },
        ("model_name", "model_version"),
        description="The legacy form of a served entity.",
    ),
    "TrafficConfig": _obj(
        {
            "routes": _array(
                _obj(
                    {
                        "served_model_name": {"type": "string"},
                        "served_entity_name": {"type": "string"},
                        "traffic_percentage": {"type": "integer", "minimum": 0, "maximum": 100},
                    },
                    ("served_model_name", "traffic_percentage"),
                ),
                minItems=1,
            )
        },
        ("routes",),
        description="Each route names a served entity of the config; the percentages sum to 100.",
    ),
    "EndpointConfigInput": {
        "type": "object",
        "properties": {
            "served_entities": _array(_ref("ServedEntityInput"), minItems=1, maxItems=15),
            "served_models": _array(_ref("ServedModelInput"), minItems=1, maxItems=15),
            "traffic_config": _ref("TrafficConfig"),
            "name": {"type": "string", "description": "the endpoint's own name, if given"},
            "auto_capture_config": {"anyOf": [_ref("InferenceTableConfig"), {"type": "null"}]},
        },
        "oneOf": [{"required": ["served_entities"]}, {"required": ["served_models"]}],
        "description": "Exactly one of served_entities and served_models; traffic_config is required with "
        "several served entities.",
    },
    "EmailNotifications": _obj(
        {
            "on_update_failure": _array({"type": "string", "format": "email"}),
            "on_update_success": _array({"type": "string", "format": "email"}),
        },
        description="Who is e-mailed when a config update fails or succeeds (through the SMTP server the "
        "backend is configured with; without one, the e-mail is only recorded in the endpoint's events).",
    ),
    "InferenceTableConfig": _obj(
        {
            "catalog_name": {"type": "string", "pattern": TABLE_NAME_PART_PATTERN.pattern},
            "schema_name": {"type": "string", "pattern": TABLE_NAME_PART_PATTERN.pattern},
            "table_name_prefix": {"type": "string", "pattern": TABLE_NAME_PART_PATTERN.pattern},
            "enabled": {"type": "boolean"},
        },
        ("catalog_name", "schema_name"),
        description="Requests and responses logged to the Delta table "
        "<warehouse>/<catalog_name>/<schema_name>/<table_name_prefix>_payload (prefix: the endpoint's name).",
    ),
    "Tag": _obj({"key": {"type": "string", "minLength": 1}, "value": {"type": ["string", "null"]}}, ("key",)),
    "RateLimit": _obj(
        {
            "calls": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000},
            "key": {
                "type": ["string", "null"],
                "enum": ["endpoint", "user", "service_principal", "", None],
                "description": "absent, null or empty: endpoint",
            },
            "renewal_period": {"type": "string", "enum": ["minute"]},
            "principal": {
                "type": ["string", "null"],
                "minLength": 1,
                "description": "a token's name (key user/service_principal)",
            },
        },
        ("calls", "renewal_period"),
        # A limit naming a principal is a per-token one.
        anyOf=[
            {"not": {"required": ["principal"]}},
            {"properties": {"principal": {"type": "null"}}},
            {"required": ["key"], "properties": {"key": {"enum": ["user", "service_principal"]}}},
        ],
    ),
    "AiGatewayInput": _obj(
        {
            "rate_limits": {"anyOf": [_array(_ref("RateLimit")), {"type": "null"}]},
            "inference_table_config": {"anyOf": [_ref("InferenceTableConfig"), {"type": "null"}]},
            "usage_tracking_config": {"anyOf": [_obj({"enabled": {"type": "boolean"}}), {"type": "null"}]},
            **{
                field: {
                    "description": "not supported: only absent, empty, false or {enabled: false} is accepted",
                    "anyOf": [
                        {"type": "null"},
                        {"const": False},
                        {"type": "object", "maxProperties": 0},
                        _obj({"enabled": {"const": False}}, ("enabled",)),
                    ],
                }
                for field in ("guardrails", "fallback_config")
            },
        }
    ),
    "Grant": {
        "type": "object",
        "properties": {
            "user_name": {"type": ["string", "null"], "description": "a token's name"},
            "service_principal_name": {"type": ["string", "null"], "description": "a token's name"},
            "group_name": {"type": ["string", "null"], "enum": ["users", "", None]},
            "permission_level": {"type": "string", "enum": PERMISSION_LEVELS},
        },
        "required": ["permission_level"],
        # Exactly one principal is named (the others absent, null or "").
        "oneOf": [
            {"required": [kind], "properties": {kind: {"type": "string", "minLength": 1}}}
            for kind in ("user_name", "service_principal_name", "group_name")
        ],
    },
    # Answers of the GA API.
    "ServingEndpointState": _obj(
        {
            "ready": {"type": "string", "enum": ["READY", "NOT_READY"]},
            "config_update": {"type": "string", "enum": ["NOT_UPDATING", "IN_PROGRESS", "UPDATE_FAILED"]},
        }
    ),
    "ServingEndpoint": _obj(
        {
            "name": {"type": "string"},
            "id": {"type": "string"},
            "creator": {"type": "string"},
            "creation_timestamp": {"type": "integer"},
            "last_updated_timestamp": {"type": "integer"},
            "state": _ref("ServingEndpointState"),
            "tags": _array(_ref("Tag")),
            "task": {"type": "string"},
            "endpoint_url": {"type": "string"},
            "config": {"type": "object"},
            "pending_config": {"type": "object"},
            "ai_gateway": _obj({"rate_limits": _array(_ref("RateLimit"))}),
            "description": {"type": "string"},
            "route_optimized": {"type": "boolean"},
            "email_notifications": _ref("EmailNotifications"),
            "permission_level": {"type": "string", "enum": ["CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"]},
        },
        ("name", "id", "state"),
    ),
    "RateLimits": _obj({"rate_limits": _array(_ref("RateLimit"))}, ("rate_limits",)),
    "Permissions": _obj(
        {
            "object_id": {"type": "string"},
            "object_type": {"type": "string"},
            "access_control_list": _array({"type": "object"}),
        },
        ("object_id", "object_type", "access_control_list"),
    ),
    "Predictions": _obj(
        {"predictions": {"description": "what the model's predict returned, as MLflow's scoring server answers"}},
        ("predictions",),
    ),
}

# --- operations --------------------------------------------------------------------------------------

_MODEL = "registered_model_name"
_MODEL_DESC = "the registered model"
_VERSION_DESC = "a model version number"

ENABLE = operation(
    body=_obj({_MODEL: _ID_STRING_OR_INT}, (_MODEL,), additionalProperties=False),
    ok=_ref("Empty"),
)
DISABLE = ENABLE
UPDATE_COMPUTE_CONFIG = operation(
    body=_obj(
        {
            _MODEL: _ID_STRING_OR_INT,
            "stage": {"type": "string", "enum": ["Staging", "Production"], "description": "matched case-insensitively"},
            "desired_workload_config_spec": _ref("WorkloadConfigSpec"),
        },
        (_MODEL, "stage", "desired_workload_config_spec"),
        additionalProperties=False,
    ),
    ok=_ref("Empty"),
)
GET_STATUS = operation(
    query=[_query(_MODEL, _MODEL_DESC)], ok=_obj({"endpoint_status": _ref("EndpointStatus")}, ("endpoint_status",))
)
LIST_VERSIONS = operation(
    query=[_query(_MODEL, _MODEL_DESC)],
    ok=_obj({"endpoint_statuses": _array(_ref("EndpointVersionStatus"))}, ("endpoint_statuses",)),
)
_MODEL_AND_VERSION = [
    _query(_MODEL, _MODEL_DESC),
    _query("endpoint_version_name", _VERSION_DESC, schema=_VERSION_STRING),
]
GET_VERSION_STATUS = operation(
    query=_MODEL_AND_VERSION,
    ok=_obj({"endpoint_status": _ref("EndpointVersionStatus")}, ("endpoint_status",)),
)
LIST_VERSION_ALIASES = operation(
    query=[_query(_MODEL, _MODEL_DESC)],
    ok=_obj(
        {
            "aliases": _array(
                _obj({"alias": {"type": "string"}, "endpoint_version_name": {"type": "string"}}),
            )
        },
        ("aliases",),
    ),
)
GET_SUPPORTED_WORKLOAD_SIZES = operation(
    ok=_obj(
        {
            "workload_sizes": _array(
                _obj(
                    {
                        "key": {"type": "string"},
                        "min_concurrency": {"type": "integer"},
                        "max_concurrency": {"type": "integer"},
                    },
                    ("key", "min_concurrency", "max_concurrency"),
                )
            )
        },
        ("workload_sizes",),
    )
)
GET_VERSION_REPLICAS = operation(
    # Any version name: one that has no replicas answers an empty list.
    query=[_query(_MODEL, _MODEL_DESC), _query("endpoint_version_name", _VERSION_DESC)],
    ok=_obj(
        {
            "replicas": _array(
                _obj(
                    {
                        "replica_name": {"type": "string"},
                        "replica_id": {"type": "string"},
                        "last_known_status": {"type": "string"},
                        "message": {"type": ["string", "null"]},
                        "started_at": {"type": "integer"},
                    }
                )
            )
        },
        ("replicas",),
    ),
)
_REPLICA_DESC = "one replica's log (all replicas merged when absent)"
GET_VERSION_LOGS = operation(
    query=[*_MODEL_AND_VERSION, _query("replica_id", _REPLICA_DESC, required=False)], ok=_ref("Logs")
)
GET_VERSION_BUILD_LOGS = operation(query=_MODEL_AND_VERSION, ok=_ref("Logs"))
POST_VERSION_LOGS = operation(
    body=_obj(
        {
            _MODEL: _ID_STRING_OR_INT,
            "endpoint_version_name": VERSION,
            "replica_id": {**_OPTIONAL_STRING_OR_INT, "description": _REPLICA_DESC},
        },
        (_MODEL, "endpoint_version_name"),
    ),
    ok=_ref("Logs"),
)
GET_EVENT_HISTORY = operation(
    query=[
        _query(_MODEL, _MODEL_DESC),
        _query(
            "endpoint_version_name",
            "only this version's events (empty: all; a version that has none: none)",
            False,
            {"type": "string"},
        ),
    ],
    ok=_obj(
        {
            "events": _array(
                _obj(
                    {
                        "timestamp": {"type": "integer"},
                        "type": {"type": "string"},
                        "endpoint_version_name": {"type": ["string", "null"]},
                        "stage": {"type": ["string", "null"]},
                        "message": {"type": "string"},
                    }
                )
            )
        },
        ("events",),
    ),
)

# GA serving endpoints.
CREATE_SERVING_ENDPOINT = operation(
    body=_obj(
        {
            "name": {"type": "string", "pattern": NAME_PATTERN},
            "config": _ref("EndpointConfigInput"),
            "tags": {"anyOf": [_array(_ref("Tag")), {"type": "null"}]},
            "rate_limits": {
                "anyOf": [_array(_ref("RateLimit")), {"type": "null"}],
                "description": "the legacy form; not with ai_gateway",
            },
            "ai_gateway": {"anyOf": [_ref("AiGatewayInput"), {"type": "null"}]},
            "description": {"type": ["string", "null"]},
            "route_optimized": {"type": ["boolean", "null"], "description": "recorded and answered"},
            "email_notifications": {"anyOf": [_ref("EmailNotifications"), {"type": "null"}]},
        },
        ("name", "config"),
    ),
    ok=_ref("ServingEndpoint"),
    errors=(409,),
)
LIST_SERVING_ENDPOINTS = operation(
    ok=_obj({"endpoints": _array(_ref("ServingEndpoint"))}, ("endpoints",)),
)
GET_SERVING_ENDPOINT = operation(ok=_ref("ServingEndpoint"))
DELETE_SERVING_ENDPOINT = operation(ok=_ref("Empty"))
UPDATE_CONFIG = operation(body=_ref("EndpointConfigInput"), ok=_ref("ServingEndpoint"), errors=(409,))
PATCH_TAGS = operation(
    body=_obj(
        {
            "add_tags": {"anyOf": [_array(_ref("Tag")), {"type": "null"}]},
            "delete_tags": _array({"type": "string"}),
        }
    ),
    body_required=False,
    ok=_obj({"tags": _array(_ref("Tag"))}, ("tags",)),
)
PATCH_NOTIFICATIONS = operation(
    body=_obj({"email_notifications": {"anyOf": [_ref("EmailNotifications"), {"type": "null"}]}}),
    body_required=False,
    ok=_obj({"name": {"type": "string"}, "email_notifications": _ref("EmailNotifications")}, ("name",)),
)
PUT_RATE_LIMITS = operation(
    body=_obj({"rate_limits": {"anyOf": [_array(_ref("RateLimit")), {"type": "null"}]}}),
    body_required=False,
    ok=_ref("RateLimits"),
)
PUT_AI_GATEWAY = operation(body=_ref("AiGatewayInput"), body_required=False, ok=_ref("RateLimits"))
SERVED_MODEL_LOGS = operation(ok=_ref("Logs"))
GET_REGISTERED_MODEL_DATABRICKS = operation(
    query=[_query("name", "the registered model")],
    ok=_obj({"registered_model_databricks": {"type": "object"}}, ("registered_model_databricks",)),
)
ENDPOINT_OPENAPI = operation(ok_description="The endpoint's scoring paths as an OpenAPI 3.1 document")
PROMETHEUS = operation(ok_description="Prometheus' text exposition format")


class PrometheusText(Response):
    """For the document only (the routes build their own Response): the exposition's media type."""

    media_type = CONTENT_TYPE_LATEST


# Permissions API.
GET_PERMISSIONS = operation(ok=_ref("Permissions"))
GET_PERMISSION_LEVELS = operation(
    ok=_obj(
        {
            "permission_levels": _array(
                _obj(
                    {
                        "permission_level": {"type": "string", "enum": PERMISSION_LEVELS},
                        "description": {"type": "string"},
                    }
                )
            )
        },
        ("permission_levels",),
    )
)
CHANGE_PERMISSIONS = operation(
    body=_obj({"access_control_list": _array(_ref("Grant"))}),
    body_required=False,
    ok=_ref("Permissions"),
)

# Registry.
TRANSITION_STAGE = operation(
    body=_obj(
        {
            "name": _ID_STRING_OR_INT,
            "version": VERSION,
            "stage": {
                "type": "string",
                "enum": ["None", "Staging", "Production", "Archived"],
                "description": "matched case-insensitively",
            },
            "archive_existing_versions": {
                "anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["true", "false"]}],
                "default": False,
            },
            "comment": _OPTIONAL_STRING_OR_INT,
        },
        ("name", "version", "stage"),
    ),
    ok=_obj({"model_version_databricks": {"type": "object"}}, ("model_version_databricks",)),
)

# Public routes (no token).
PUBLIC_TEXT: Schema = {
    "security": [],
    "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}},
}
# /health, /ping, /version: GET and HEAD (probes use both), plain text, no token.
PUBLIC_TEXT_ROUTE: dict[str, Any] = {"response_class": PlainTextResponse, "openapi_extra": PUBLIC_TEXT}
HOST_METADATA: Schema = {"security": [], **operation(ok=_ref("Empty"))}

# --- the scoring URLs --------------------------------------------------------------------------------

_SCORING_FORMATS: list[Schema] = [
    _obj({"dataframe_split": _obj({"columns": _array({}), "data": _array({})}, ("data",))}, ("dataframe_split",)),
    _obj({"dataframe_records": _array({"type": "object"})}, ("dataframe_records",)),
    _obj({"instances": {}}, ("instances",)),
    _obj({"inputs": {}}, ("inputs",)),
]
SCORING_BODY: Schema = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "description": "exactly one of dataframe_split, dataframe_records, instances, inputs; "
                "optional params. Other keys (client_request_id, usage_context) are ignored.",
                "oneOf": [
                    {**fmt, "properties": {**fmt["properties"], "params": {"type": "object"}}}
                    for fmt in _SCORING_FORMATS
                ],
            }
        },
        "text/csv": {"schema": {"type": "string", "description": "a header row, then one row per record"}},
    },
}


def _scoring(summary: str, params: list[tuple[str, str]], answered_by: str) -> Schema:
    return {
        "post": {
            "tags": ["scoring"],
            "summary": summary,
            "operationId": "score_" + "_".join(name for name, _ in params) + ("_served" if "served" in summary else ""),
            "parameters": [
                {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}
                for name, description in params
            ],
            "requestBody": SCORING_BODY,
            "responses": {
                "200": {
                    "description": "The model's predictions",
                    "headers": {"served-model-name": {"description": answered_by, "schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": _ref("Predictions")}},
                },
                **{
                    str(status): error_response(status) for status in (400, 401, 403, 404, 413, 415, 429, 500, 503, 504)
                },
            },
        }
    }


_MODEL_TARGET = [
    ("model", "the registered model"),
    ("target", "Staging, Production, a registry alias or a version number"),
]
SCORING_PATHS: dict[str, Schema] = {
    "/model-endpoint/{model}/{target}/invocations": _scoring(
        "Score a model's stage, alias or version", _MODEL_TARGET, "<model>-<version>"
    ),
    "/model/{model}/{target}/invocations": _scoring(
        "Score a model's stage, alias or version (short URL)", _MODEL_TARGET, "<model>-<version>"
    ),
    "/serving-endpoints/{name}/invocations": _scoring(
        "Score a serving endpoint (its traffic split)", [("name", "the serving endpoint")], "the served entity"
    ),
    "/serving-endpoints/{name}/served-models/{served}/invocations": _scoring(
        "Score one served model of a serving endpoint",
        [("name", "the serving endpoint"), ("served", "a served entity's name")],
        "the served entity",
    ),
}

# --- assembling the document ---------------------------------------------------------------------------


def _complete(schema: Schema) -> Schema:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    # FastAPI documents a 422 for routes with path parameters; the app answers a 400 envelope instead.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(SCHEMAS)
    components["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": "an rtserve token"},
        "basicAuth": {"type": "http", "scheme": "basic", "description": "user `token`, the token as password"},
    }
    schema["security"] = [{"bearerAuth": []}, {"basicAuth": []}]
    for path_item in schema.get("paths", {}).values():
        for method, op in path_item.items():
            if method not in ("get", "put", "post", "delete", "patch", "head", "options"):
                continue
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            if op.get("security") == []:
                continue
            for status in COMMON_ERRORS:
                responses.setdefault(str(status), error_response(status))
    schema.setdefault("paths", {}).update(SCORING_PATHS)
    schema.setdefault("tags", []).append(
        {"name": "scoring", "description": "Answered by the scoring gateway; 405 with Allow: POST for other methods."}
    )
    return schema


def install(api: FastAPI) -> None:
    """Make `api.openapi()` (and so /openapi.json) return the completed document."""
    generate = api.openapi

    def openapi() -> Schema:
        if api.openapi_schema is None:
            api.openapi_schema = _complete(generate())
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def routes_reading_params(api: FastAPI) -> list[tuple[str, set[str]]]:
    """(path, methods) of the documented routes whose parameters come through `Params`: for the tests."""
    from rtserve.server.api.deps import request_params

    def uses(dependant: Any) -> bool:
        return any(dep.call is request_params or uses(dep) for dep in dependant.dependencies)

    found = []
    for context in iter_route_contexts(api.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema and uses(route.dependant):
            found.append((str(context.path), set(context.methods or ())))
    return found
