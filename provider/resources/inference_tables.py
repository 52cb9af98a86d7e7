"""The inference table blocks of `rtserve_serving_endpoint`: `auto_capture_config` (the legacy form, part of
the config), `inference_table_config` and `usage_tracking_config` (the AI gateway's): schema, declared
defaults, the request bodies and the blocks read back from an endpoint's detail. No I/O.

Wire form: `config.auto_capture_config` and `ai_gateway.{inference_table_config, usage_tracking_config}`,
each table `{catalog_name, schema_name, table_name_prefix, enabled}` (docs/inference-tables.md). The
backend's defaults (prefix: the endpoint's name; enabled: true) are filled in at plan time, so a
configuration that leaves them out never differs from what is read back. Names are checked by the
backend (its 400 names the field) and reach the plan as a diagnostic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tf.schema import Attribute, Block
from tf.types import Bool, String

from rtserve.provider.blocks import SingleNestedBlock

TABLE_FIELDS = ("catalog_name", "schema_name", "table_name_prefix", "enabled")
TABLE_BLOCKS = ("auto_capture_config", "inference_table_config")
GATEWAY_BLOCKS = ("inference_table_config", "usage_tracking_config")


def _table_block(name: str, description: str) -> SingleNestedBlock:
    return SingleNestedBlock(
        name,
        Block(
            description=description,
            attributes=[
                Attribute("catalog_name", String(), description="The table's catalog: a directory.", required=True),
                Attribute("schema_name", String(), description="The table's schema: a directory.", required=True),
                Attribute(
                    "table_name_prefix",
                    String(),
                    description="The table is `<prefix>_payload`. Default: the endpoint's name, as the backend.",
                    optional=True,
                    computed=True,
                ),
                Attribute(
                    "enabled",
                    Bool(),
                    description="Whether requests are logged. Default: `true`.",
                    optional=True,
                    computed=True,
                ),
            ],
        ),
    )


AUTO_CAPTURE_CONFIG = _table_block(
    "auto_capture_config",
    "Databricks' legacy inference table: each answered request logged to the Delta table "
    "`<warehouse>/<catalog_name>/<schema_name>/<table_name_prefix>_payload`. Part of the config: changing it "
    "is a config update.",
)
INFERENCE_TABLE_CONFIG = _table_block(
    "inference_table_config",
    "The AI gateway's inference table (the same table as `auto_capture_config`, not both): changed in place "
    "with the rate limits (PUT .../ai-gateway), nothing rolls out.",
)
USAGE_TRACKING_CONFIG = SingleNestedBlock(
    "usage_tracking_config",
    Block(
        description="One usage row per request in `<warehouse>/system/serving/endpoint_usage`; changed in place.",
        attributes=[Attribute("enabled", Bool(), description="Whether usage rows are written.", required=True)],
    ),
)
BLOCKS = (AUTO_CAPTURE_CONFIG, INFERENCE_TABLE_CONFIG, USAGE_TRACKING_CONFIG)


# -- plan: declared defaults -----------------------------------------------------------------------
def table_with_defaults(configured: Any, endpoint: Any) -> Any:
    """A configured table block with the backend's defaults for an unset prefix and `enabled`."""
    if not isinstance(configured, dict):
        return configured
    defaults = {"table_name_prefix": endpoint, "enabled": True}
    return {**configured, **{key: value for key, value in defaults.items() if configured.get(key) is None}}


def gateway_tables_of(state: Mapping[str, Any]) -> tuple[Any, bool]:
    """What PUT .../ai-gateway sets besides the rate limits: the table (or None) and usage tracking."""
    usage = state.get("usage_tracking_config")
    return state.get("inference_table_config"), bool(isinstance(usage, dict) and usage.get("enabled"))


# -- the request and the state read back -----------------------------------------------------------
def request_table(block: Any) -> dict[str, Any] | None:
    if not isinstance(block, dict):
        return None
    return {field: block[field] for field in TABLE_FIELDS if block.get(field) is not None}


def request_gateway_tables(state: Mapping[str, Any]) -> dict[str, Any]:
    """The table fields of a create's `ai_gateway` or of PUT .../ai-gateway (absent: off)."""
    table, usage = gateway_tables_of(state)
    body: dict[str, Any] = {}
    if (request := request_table(table)) is not None:
        body["inference_table_config"] = request
    if usage:
        body["usage_tracking_config"] = {"enabled": True}
    return body


def tables_from_detail(base: Mapping[str, Any], detail: Mapping[str, Any]) -> dict[str, Any]:
    """The three blocks as the backend reports them; `usage_tracking_config` keeps `base`'s spelling when it
    means the same (no block and `enabled = false`), so a configuration never differs from its own result."""
    config = detail.get("config") or detail.get("pending_config") or {}
    gateway = detail.get("ai_gateway") or {}
    capture = config.get("auto_capture_config")
    if capture and not capture.get("enabled") and base.get("auto_capture_config") is None:
        capture = None  # removed from the configuration: the backend keeps it, switched off
    usage = bool((gateway.get("usage_tracking_config") or {}).get("enabled"))
    prior_usage = base.get("usage_tracking_config")
    if usage == bool(isinstance(prior_usage, dict) and prior_usage.get("enabled")):
        usage_block = prior_usage
    else:
        usage_block = {"enabled": True} if usage else None
    return {
        "auto_capture_config": {field: capture.get(field) for field in TABLE_FIELDS} if capture else None,
        "inference_table_config": _table(gateway.get("inference_table_config")),
        "usage_tracking_config": usage_block,
    }


def _table(reported: Any) -> dict[str, Any] | None:
    return {field: reported.get(field) for field in TABLE_FIELDS} if isinstance(reported, dict) else None
