"""`rtserve_version_aliases`: which version each serving route (Staging, Production, aliases) answers from now."""

from __future__ import annotations

from tf.iface import Config, DataSource, ReadDataContext, State
from tf.schema import Attribute, Schema
from tf.types import Map, String

from rtserve.provider.base import ProviderBound, guarded, report_api_error
from rtserve.provider.client import ApiError


class VersionAliasesDataSource(ProviderBound, DataSource):
    @classmethod
    def get_name(cls) -> str:
        return "version_aliases"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="Where each stage URL of a served model points now (observed, not desired: during a "
            "promotion the stage keeps its old version until the new one is ready).",
            attributes=[
                Attribute("registered_model_name", String(), description="Registered model.", required=True),
                Attribute("id", String(), description="The registered model's name.", computed=True),
                Attribute(
                    "aliases",
                    Map(String()),
                    description='Route -> version, e.g. `{ Staging = "2", Production = "1" }`.',
                    computed=True,
                ),
            ],
        )

    @guarded("Could not read rtserve_version_aliases")
    def read(self, ctx: ReadDataContext, config: Config) -> State | None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return None
        name = config["registered_model_name"]
        try:
            aliases = client.list_version_aliases(name)
        except ApiError as error:
            report_api_error(
                ctx.diagnostics, f"Could not read the version aliases of {name!r}", error, ["registered_model_name"]
            )
            return None
        return {"registered_model_name": name, "id": name, "aliases": aliases}
