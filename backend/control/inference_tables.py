"""A serving endpoint's inference tables: which Delta tables its requests are logged to.

Databricks has two forms of the payload table: the legacy `config.auto_capture_config` and the AI
gateway's `ai_gateway.inference_table_config`, both {catalog_name, schema_name, table_name_prefix,
enabled}; and `ai_gateway.usage_tracking_config` ({enabled}) for the usage table. An endpoint uses one
payload table at most. Here catalog and schema are directories under the warehouse directory, and the
payload table is `<warehouse>/<catalog>/<schema>/<prefix>_payload` (docs/inference-tables.md).

Pure: no I/O. The writing is in `rtserve.server.tables`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtserve import spec
from rtserve.server.errors import invalid
from rtserve.server.validate import checked, known_fields

TABLE_FIELDS = ("catalog_name", "schema_name", "table_name_prefix", "enabled")
# Databricks' usage table, one for every endpoint: system.serving.endpoint_usage.
USAGE_TABLE = ("system", "serving", "endpoint_usage")


@dataclass(frozen=True)
class PayloadTable:
    catalog_name: str
    schema_name: str
    table_name_prefix: str
    enabled: bool = True

    @property
    def name(self) -> str:
        """Its three-part name, as Databricks answers it (`catalog.schema.prefix_payload`)."""
        return f"{self.catalog_name}.{self.schema_name}.{self.table_name_prefix}_payload"

    def path(self, warehouse: Path) -> Path:
        return warehouse / self.catalog_name / self.schema_name / f"{self.table_name_prefix}_payload"

    def to_stored(self) -> dict[str, Any]:
        return {
            "catalog_name": self.catalog_name,
            "schema_name": self.schema_name,
            "table_name_prefix": self.table_name_prefix,
            "enabled": self.enabled,
        }

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> PayloadTable:
        return cls(stored["catalog_name"], stored["schema_name"], stored["table_name_prefix"], stored["enabled"])


@dataclass(frozen=True)
class InferenceTables:
    auto_capture: PayloadTable | None = None  # config.auto_capture_config (legacy)
    inference_table: PayloadTable | None = None  # ai_gateway.inference_table_config
    usage_tracking: bool = False  # ai_gateway.usage_tracking_config.enabled

    @property
    def payload(self) -> PayloadTable | None:
        """The payload table requests are logged to now, if any."""
        for table in (self.inference_table, self.auto_capture):
            if table is not None and table.enabled:
                return table
        return None

    @property
    def logging(self) -> bool:
        return self.usage_tracking or self.payload is not None

    def to_stored(self) -> dict[str, Any]:
        stored: dict[str, Any] = {}
        if self.auto_capture is not None:
            stored["auto_capture_config"] = self.auto_capture.to_stored()
        if self.inference_table is not None:
            stored["inference_table_config"] = self.inference_table.to_stored()
        if self.usage_tracking:
            stored["usage_tracking_config"] = {"enabled": True}
        return stored

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> InferenceTables:
        auto, gateway = stored.get("auto_capture_config"), stored.get("inference_table_config")
        return cls(
            auto_capture=PayloadTable.from_stored(auto) if auto else None,
            inference_table=PayloadTable.from_stored(gateway) if gateway else None,
            usage_tracking=bool(stored.get("usage_tracking_config", {}).get("enabled")),
        )

    def with_auto_capture(self, table: PayloadTable | None) -> InferenceTables:
        return _checked(InferenceTables(table, self.inference_table, self.usage_tracking))

    def with_gateway(self, table: PayloadTable | None, usage_tracking: bool) -> InferenceTables:
        return _checked(InferenceTables(self.auto_capture, table, usage_tracking))


def _checked(tables: InferenceTables) -> InferenceTables:
    if all(table is not None and table.enabled for table in (tables.auto_capture, tables.inference_table)):
        raise invalid(
            "An endpoint logs to one payload table: 'config.auto_capture_config' (legacy) or "
            "'ai_gateway.inference_table_config', not both. Disable one (enabled: false) first."
        )
    return tables


def parse_payload_table(value: Any, where: str, endpoint: str) -> PayloadTable | None:
    """`auto_capture_config` or `inference_table_config` from a request (None: absent)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"'{where}' must be an object {{{', '.join(TABLE_FIELDS)}}}; got {type(value).__name__}.")
    known_fields(value, where, TABLE_FIELDS)
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise invalid(f"'{where}.enabled' must be true or false; got {enabled!r}.")
    parts = []
    for field in ("catalog_name", "schema_name"):
        if value.get(field) is None:
            raise invalid(f"'{where}.{field}' is required: the payload table is <{field.split('_')[0]}>.<schema>....")
        parts.append(checked(spec.check_table_name_part, value[field], f"{where}.{field}"))
    prefix = checked(spec.check_table_name_part, value.get("table_name_prefix", endpoint), f"{where}.table_name_prefix")
    return PayloadTable(parts[0], parts[1], prefix, enabled)


def parse_usage_tracking(value: Any, where: str = "ai_gateway.usage_tracking_config") -> bool:
    if value is None:
        return False
    if not isinstance(value, dict):
        raise invalid(f"'{where}' must be an object {{enabled}}; got {type(value).__name__}.")
    known_fields(value, where, ("enabled",))
    enabled = value.get("enabled", False)
    if not isinstance(enabled, bool):
        raise invalid(f"'{where}.enabled' must be true or false; got {enabled!r}.")
    return enabled


def parse_gateway_tables(gateway: Any, endpoint: str) -> tuple[PayloadTable | None, bool]:
    """The table settings of an `ai_gateway` object (its other fields are read in control/rate_limits.py)."""
    if not isinstance(gateway, dict):
        return None, False
    table = parse_payload_table(gateway.get("inference_table_config"), "ai_gateway.inference_table_config", endpoint)
    return table, parse_usage_tracking(gateway.get("usage_tracking_config"))


def auto_capture_output(table: PayloadTable) -> dict[str, Any]:
    """`config.auto_capture_config` as Databricks answers it: the settings and the payload table's state."""
    status = "ACTIVE" if table.enabled else "DISABLED"
    return {**table.to_stored(), "state": {"payload_table": {"name": table.name, "status": status}}}


def gateway_output(tables: InferenceTables) -> dict[str, Any]:
    """The table settings of the answered `ai_gateway`."""
    output: dict[str, Any] = {}
    if tables.inference_table is not None:
        output["inference_table_config"] = tables.inference_table.to_stored()
    if tables.usage_tracking:
        output["usage_tracking_config"] = {"enabled": True}
    return output
