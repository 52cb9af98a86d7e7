"""`rtserve_endpoint_status`: the observed status of one model's serving (get-status and list-versions)."""

from __future__ import annotations

from tf.iface import Config, DataSource, ReadDataContext, State
from tf.schema import Attribute, Schema
from tf.types import Bool, List, Map, Number, String

from rtserve.provider.base import ProviderBound, guarded, report_api_error
from rtserve.provider.blocks import Object
from rtserve.provider.client import ApiError
from rtserve.spec import SERVING_STAGES

COMPUTE_CONFIG = Object(
    {
        "stage": String(),
        "workload_size": String(),
        "scale_to_zero_enabled": Bool(),
        "creation_timestamp": Number(),
        "user_id": String(),
    }
)
VERSION = Object(
    {
        "version": String(),
        "service_state": String(),
        "service_message": String(),
        "config_update_state": String(),
        "config_update_message": String(),
        "workload_size": String(),
        "scale_to_zero_enabled": Bool(),
    }
)


class EndpointStatusDataSource(ProviderBound, DataSource):
    @classmethod
    def get_name(cls) -> str:
        return "endpoint_status"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="What the backend observes about one model's serving. A model whose serving is not "
            "enabled reads as `enabled = false` (not an error).",
            attributes=[
                Attribute("registered_model_name", String(), description="Registered model.", required=True),
                Attribute("id", String(), description="The registered model's name.", computed=True),
                Attribute("enabled", Bool(), description="Whether serving is enabled for the model.", computed=True),
                Attribute(
                    "state",
                    String(),
                    description="ENDPOINT_STATE_PENDING, _READY or _FAILED; null when serving is not enabled.",
                    computed=True,
                ),
                Attribute(
                    "state_message", String(), description="The backend's explanation of `state`.", computed=True
                ),
                Attribute(
                    "compute_config",
                    List(COMPUTE_CONFIG),
                    description="Compute per stage: `stage`, "
                    "`workload_size`, `scale_to_zero_enabled`, `creation_timestamp` (ms), `user_id`.",
                    computed=True,
                ),
                Attribute(
                    "versions",
                    List(VERSION),
                    description="Served versions: `version`, `service_state`, "
                    "`service_message`, `config_update_state`, `config_update_message`, `workload_size`, "
                    "`scale_to_zero_enabled`.",
                    computed=True,
                ),
                Attribute("invocation_urls", Map(String()), description="Scoring URL per stage.", computed=True),
            ],
        )

    @guarded("Could not read rtserve_endpoint_status")
    def read(self, ctx: ReadDataContext, config: Config) -> State | None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return None
        name = config["registered_model_name"]
        state: State = {
            "registered_model_name": name,
            "id": name,
            "enabled": False,
            "state": None,
            "state_message": None,
            "compute_config": [],
            "versions": [],
            "invocation_urls": {stage: client.stage_url(name, stage) for stage in SERVING_STAGES},
        }
        try:
            status = client.get_status(name)
            versions = client.list_versions(name)
        except ApiError as error:
            if error.not_found:
                return {**state, "state_message": error.message}
            report_api_error(ctx.diagnostics, f"Could not read the serving status of {name!r}", error)
            return None
        state.update(
            enabled=True,
            state=status.get("state"),
            state_message=status.get("state_message"),
            compute_config=[
                COMPUTE_CONFIG.encode(
                    {
                        "stage": c.get("stage"),
                        "workload_size": (c.get("workload_spec") or {}).get("workload_size_id"),
                        "scale_to_zero_enabled": (c.get("workload_spec") or {}).get("scale_to_zero_enabled"),
                        "creation_timestamp": c.get("creation_timestamp"),
                        "user_id": c.get("user_id"),
                    }
                )
                for c in status.get("compute_config") or []
            ],
            versions=[VERSION.encode(_version(v)) for v in versions],
        )
        return state


def _version(item: dict) -> dict:
    service = item.get("service_status") or {}
    update = item.get("config_update_status") or {}
    spec = ((service.get("config") or update.get("config") or {}).get("workload_spec")) or {}
    return {
        "version": str(item.get("endpoint_version_name")),
        "service_state": service.get("state"),
        "service_message": service.get("message"),
        "config_update_state": update.get("state"),
        "config_update_message": update.get("message"),
        "workload_size": spec.get("workload_size_id"),
        "scale_to_zero_enabled": spec.get("scale_to_zero_enabled"),
    }
