"""`rtserve_model_versions`: a registered model's versions, per stage, and the latest one (the registry API)."""

from __future__ import annotations

from tf.iface import Config, DataSource, ReadDataContext, State
from tf.schema import Attribute, Schema
from tf.types import List, Map, Number, String

from rtserve.provider.base import ProviderBound, guarded, report_api_error
from rtserve.provider.blocks import Object
from rtserve.provider.client import ApiError
from rtserve.spec import NO_STAGE

VERSION = Object(
    {
        "version": String(),
        "current_stage": String(),
        "status": String(),
        "run_id": String(),
        "source": String(),
        "creation_timestamp": Number(),
        "aliases": List(String()),
    }
)


def _number(version: object) -> int:
    return int(version) if isinstance(version, str) and version.isdigit() else -1


class ModelVersionsDataSource(ProviderBound, DataSource):
    @classmethod
    def get_name(cls) -> str:
        return "model_versions"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="The versions of a registered model, as the registry reports them.",
            attributes=[
                Attribute("name", String(), description="Registered model name.", required=True),
                Attribute("id", String(), description="The registered model's name.", computed=True),
                Attribute(
                    "latest_version",
                    String(),
                    description="Highest version number; null without versions.",
                    computed=True,
                ),
                Attribute(
                    "latest_by_stage",
                    Map(String()),
                    description="Stage -> its highest version number, for "
                    "each stage that holds a version (`None`, `Staging`, `Production`, `Archived`).",
                    computed=True,
                ),
                Attribute(
                    "versions_by_stage",
                    Map(List(String())),
                    description="Stage -> its versions, newest first.",
                    computed=True,
                ),
                Attribute(
                    "versions",
                    List(VERSION),
                    description="Every version, oldest first: `version`, "
                    "`current_stage`, `status`, `run_id`, `source`, `creation_timestamp` (ms), `aliases`.",
                    computed=True,
                ),
            ],
        )

    @guarded("Could not read rtserve_model_versions")
    def read(self, ctx: ReadDataContext, config: Config) -> State | None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return None
        name = config["name"]
        try:
            client.get_registered_model(name)  # an unknown model is an error, not an empty list
            found = client.search_model_versions(name)
        except ApiError as error:
            report_api_error(ctx.diagnostics, f"Could not list the versions of {name!r}", error, ["name"])
            return None
        versions = sorted(
            (
                {
                    "version": str(v.get("version")),
                    "current_stage": v.get("current_stage") or NO_STAGE,
                    "status": v.get("status"),
                    "run_id": v.get("run_id"),
                    "source": v.get("source"),
                    "creation_timestamp": v.get("creation_timestamp"),
                    "aliases": [str(a) for a in v.get("aliases") or []],
                }
                for v in found
                if v.get("name", name) == name
            ),
            key=lambda v: _number(v["version"]),
        )
        by_stage: dict[str, list[str]] = {}
        for item in reversed(versions):
            by_stage.setdefault(item["current_stage"], []).append(item["version"])
        return {
            "name": name,
            "id": name,
            "latest_version": versions[-1]["version"] if versions else None,
            "latest_by_stage": {stage: items[0] for stage, items in by_stage.items()},
            "versions_by_stage": by_stage,
            "versions": [VERSION.encode(v) for v in versions],
        }
