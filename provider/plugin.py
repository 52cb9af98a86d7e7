"""The `rtserve` provider: configuration (host, token) and the list of resources and data sources."""

from __future__ import annotations

import os
import threading
from typing import Any

from tf.iface import Config, DataSource, Provider, Resource
from tf.schema import Attribute, Schema
from tf.types import String, Unknown
from tf.utils import Diagnostics

from rtserve.provider import ADDRESS
from rtserve.provider.client import RtserveClient
from rtserve.provider.data_sources.endpoint_status import EndpointStatusDataSource
from rtserve.provider.data_sources.model_versions import ModelVersionsDataSource
from rtserve.provider.data_sources.version_aliases import VersionAliasesDataSource
from rtserve.provider.resources.model_serving import ModelServingResource
from rtserve.provider.resources.model_version_stage import ModelVersionStageResource
from rtserve.provider.resources.permissions import PermissionsResource
from rtserve.provider.resources.serving_endpoint import ServingEndpointResource
from rtserve.provider.waiter import Waiter

HOST_ENV = "RTSERVE_HOST"
TOKEN_ENV = "RTSERVE_TOKEN"


class RtserveProvider(Provider):
    """Holds the one shared client; Terraform configures the provider once per run, before any operation."""

    def __init__(self, environ: dict[str, str] | None = None, waiter: Waiter | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self.client: RtserveClient | None = None
        self.waiter = waiter or Waiter()
        self._lock = threading.Lock()

    def get_model_prefix(self) -> str:
        return "rtserve_"

    def full_name(self) -> str:
        return ADDRESS

    def get_provider_schema(self, diags: Diagnostics) -> Schema:
        return Schema(
            version=0,
            attributes=[
                Attribute(
                    "host",
                    String(),
                    description=f"Base URL of the rtserve backend, e.g. `http://127.0.0.1:8080`. Default: ${HOST_ENV}.",
                    optional=True,
                ),
                Attribute(
                    "token",
                    String(),
                    description=f"API token sent as `Authorization: Bearer <token>`. Default: ${TOKEN_ENV}. "
                    "Prefer the environment variable: a token in the configuration ends up in plan files.",
                    optional=True,
                    sensitive=True,
                ),
            ],
        )

    def validate_config(self, diags: Diagnostics, config: Config) -> None:
        host = (config or {}).get("host")
        if isinstance(host, str) and not host.startswith(("http://", "https://")):
            diags.add_error(
                "Invalid rtserve host", f"host must start with http:// or https://; got {host!r}.", ["host"]
            )

    def configure_provider(self, diags: Diagnostics, config: Config) -> None:
        config = config or {}
        host = self._setting(diags, config, "host", HOST_ENV)
        token = self._setting(diags, config, "token", TOKEN_ENV)
        if diags.has_errors():
            return
        if not host:
            diags.add_error(
                "Missing rtserve host",
                f'Set `host` in the provider "rtserve" block or the {HOST_ENV} environment variable '
                "to the backend's base URL, e.g. http://127.0.0.1:8080.",
                ["host"],
            )
            return
        if not host.startswith(("http://", "https://")):
            diags.add_error("Invalid rtserve host", f"host must start with http:// or https://; got {host!r}.")
            return
        with self._lock:
            if self.client is not None:
                self.client.close()
            self.client = RtserveClient(host, token)

    def _setting(self, diags: Diagnostics, config: Config, name: str, env: str) -> Any:
        value = config.get(name)
        if value is Unknown:
            diags.add_error(
                f"rtserve provider `{name}` is unknown at plan time",
                f"`{name}` must be known when Terraform configures the provider; use a variable, "
                f"a literal or the {env} environment variable rather than another resource's attribute.",
                [name],
            )
            return None
        return value if value else (self.environ.get(env) or None)

    def get_data_sources(self) -> list[type[DataSource]]:
        return [EndpointStatusDataSource, ModelVersionsDataSource, VersionAliasesDataSource]

    def get_resources(self) -> list[type[Resource]]:
        return [ModelServingResource, ModelVersionStageResource, ServingEndpointResource, PermissionsResource]
