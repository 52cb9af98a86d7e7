"""Backend settings: command-line options and RTSERVE_* environment variables, resolved once.

`Settings` is the one place the backend reads its `RTSERVE_*` variables (docs/configuration.md lists
them). Values passed to the constructor (the `rtserve server` options) win over the environment,
which wins over the defaults; an empty variable counts as unset. The object is immutable. An invalid
value raises `SettingsError`, whose message names the variable (or option) and the value.

Some fields have no environment variable: `host` and `port` (`RTSERVE_HOST` is the clients' backend
URL, read by the provider and the constructs, so it cannot also be the interface the server binds),
`mlflow_tracking_uri` (an option only), and the internal tuning knobs below it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from rtserve.server.replica_logs import DEFAULT_MAX_BYTES
from rtserve.server.worker.limits import DEFAULT_MAX_INPUT_COLUMNS
from rtserve.server.worker.replica import DEFAULT_DRAIN_TIMEOUT

ENV_PREFIX = "RTSERVE_"

# Fields set only by the constructor (`rtserve server` options or code), never from the environment.
NOT_FROM_ENV = frozenset(
    {
        "host",
        "port",
        "mlflow_tracking_uri",
        "max_request_bytes",
        "reconcile_interval_seconds",
        "registry_poll_seconds",
        "replica_concurrency",
    }
)

# Fields whose values are never shown (repr, errors, logs).
SECRET_FIELDS = frozenset({"admin_token", "smtp_password"})

# The `rtserve server` option of a field, where it has one (named in errors and in docs/configuration.md).
CLI_FLAGS = {
    "host": "--host",
    "port": "--port",
    "data_dir": "--data-dir",
    "database_url": "--database-url",
    "mlflow_tracking_uri": "--mlflow-tracking-uri",
    "max_connections": "--max-connections",
    "header_timeout_seconds": "--header-timeout",
    "engine": "--engine",
    "ray_address": "--ray-address",
}


class SettingsError(ValueError):
    """An invalid setting; the message names the variable or option and the value, one line each."""


class _Environment(EnvSettingsSource):
    """RTSERVE_<FIELD> for the fields that have a variable; nothing for those in NOT_FROM_ENV."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in NOT_FROM_ENV:
            return None, field_name, False
        return super().get_field_value(field, field_name)


def _ports(value: str) -> tuple[int, int]:
    """`FIRST-LAST` (already matched by its pattern) as numbers."""
    first, last = value.split("-")
    return int(first), int(last)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,  # RTSERVE_ADMIN_TOKEN= means unset, as it always has
        frozen=True,
        extra="forbid",
        validate_default=True,
    )

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on.")
    data_dir: Path = Field(
        Path(".rtserve"), description="Where rtserve keeps its state: database, registry, artifacts, logs, sockets."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of rtserve's own state; unset: SQLite (WAL) `rtserve.db` in the data dir."
    )
    secrets_key_file: Path | None = Field(
        None,
        description="The Fernet key sealing secrets (`rtserve secrets`), kept apart from the database; unset: "
        "`<data-dir>/secrets.key`, made (mode 0600) at first use. Instances sharing one database share this file.",
    )
    mlflow_tracking_uri: str | None = Field(
        None, description="An external MLflow tracking server; unset: MLflow's own server is embedded."
    )
    admin_token: str | None = Field(
        None,
        repr=False,
        description="The admin token created at the first start of a data dir; unset: one is generated into "
        "`<data-dir>/admin-token` (mode 0600). `rtserve server` removes it from its environment once read.",
    )
    # Largest scoring or control request body accepted, in bytes (Databricks allows 16 MB).
    max_request_bytes: int = Field(16 * 1024 * 1024, ge=1)
    request_timeout_seconds: float = Field(
        60.0, gt=0, description="Per-request scoring timeout; past it, 504 `DEADLINE_EXCEEDED`."
    )
    reconcile_interval_seconds: float = Field(0.5, gt=0)
    # How often the registry is re-read for stage changes made outside rtserve's own routes.
    registry_poll_seconds: float = Field(2.0, gt=0)
    # Requests one replica serves concurrently; maps workload concurrency to replica counts.
    replica_concurrency: int = Field(4, ge=1)
    scale_to_zero_idle_seconds: float = Field(
        1800.0, ge=0, description="A scale-to-zero version with no request for this long stops all its replicas."
    )
    upscale_delay_seconds: float = Field(
        1.0, ge=0, description="How long a scale-up decision must hold before it applies."
    )
    downscale_delay_seconds: float = Field(
        30.0, ge=0, description="How long a scale-down decision must hold before it applies."
    )
    max_queued_requests: int = Field(
        256, ge=0, description="Requests a version may queue beyond its replicas' concurrency; past it, 429."
    )
    header_timeout_seconds: float = Field(
        5.0, gt=0, description="Time a connection has to send each request head; past it, the connection is closed."
    )
    max_connections: int = Field(
        1000, ge=1, description="Open HTTP connections at once; past it, 503 `TEMPORARILY_UNAVAILABLE`."
    )
    # Read by the replicas and the local engine (backend/worker, backend/engines); resolved here too, so a bad
    # value stops the server at start rather than a replica later.
    max_input_columns: int = Field(
        DEFAULT_MAX_INPUT_COLUMNS,
        ge=1,
        description="Most input columns a scoring request may have, unless the signature has more.",
    )
    replica_log_max_bytes: int = Field(
        DEFAULT_MAX_BYTES, ge=1024, description="Size at which a replica's log rotates to `<log>.1`."
    )
    replica_drain_timeout_seconds: float = Field(
        DEFAULT_DRAIN_TIMEOUT,
        ge=0,
        description="How long a stopping replica may finish its requests before it is killed.",
    )
    engine: Literal["local", "ray"] = Field(
        "local", description="Where replicas run: `local` processes, or `ray` actors on a Ray cluster."
    )
    environment_policy: Literal["auto", "local", "isolated"] = Field(
        "auto",
        description="Where a model version runs (local engine): `auto` in the server's environment when it satisfies "
        "the model's logged requirements, else in one built with uv; `local` always the server's; `isolated` always "
        "its own.",
    )
    environment_build_timeout_seconds: float = Field(
        600.0, gt=0, description="How long each uv step of an environment build may take before the build fails."
    )
    ray_address: str | None = Field(
        None, description="With the ray engine: the cluster's address (HOST:PORT of its head); unset: `auto`."
    )
    leader_heartbeat_seconds: float = Field(
        1.0,
        gt=0,
        description="With several instances on one PostgreSQL database: how often each checks or tries to take "
        "the reconciler's leadership; a dead leader is replaced within about this long (twice at most).",
    )
    ray_namespace: str = Field(
        "rtserve", min_length=1, description="With the ray engine: the Ray namespace of this deployment's replicas."
    )
    ray_warm_actors_per_node: int = Field(
        1,
        ge=0,
        le=64,
        description="With the ray engine: idle actors kept per node, MLflow already imported, for replicas to start "
        "from in well under a second; 0 turns the warm pool off.",
    )
    ray_replica_ports: str | None = Field(
        None,
        pattern=r"^[0-9]{1,5}-[0-9]{1,5}$",
        description="With the ray engine: the TCP ports `FIRST-LAST` a replica actor may listen on for requests, "
        "at its node's IP; unset: any free port.",
    )
    # The SMTP server serving endpoints' e-mail notifications go through (backend/mailer.py).
    smtp_host: str | None = Field(
        None, description="SMTP server for e-mail notifications; unset: they are only recorded as events."
    )
    smtp_port: int = Field(25, ge=1, le=65535, description="The SMTP server's port.")
    smtp_username: str | None = Field(None, description="Log in to the SMTP server as this user; unset: no login.")
    smtp_password: str | None = Field(None, repr=False, description="The SMTP user's password; never shown.")
    smtp_from: str = Field("rtserve@localhost", min_length=3, description="The notifications' From address.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS before logging in.")
    smtp_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of each SMTP connection and command.")

    # Inference tables (backend/tables/): where the Delta tables are, and how requests are logged to them.
    warehouse_dir: Path | None = Field(
        None, description="The inference tables' directory (<catalog>/<schema>/<table>); unset: <data-dir>/warehouse."
    )
    inference_table_flush_seconds: float = Field(
        5.0, gt=0, description="Logged requests are written at least this often; a crash loses at most this much."
    )
    inference_table_flush_rows: int = Field(
        10_000, ge=1, description="Logged requests are written as soon as this many wait, before the flush interval."
    )
    inference_table_buffer_rows: int = Field(
        100_000, ge=1, description="Logged requests held at most; past it, requests are not logged (and are counted)."
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_describe(exc, values)) from None

    @field_validator("ray_replica_ports")
    @classmethod
    def _port_range(cls, value: str | None) -> str | None:
        if value is not None:
            first, last = _ports(value)
            if not 1 <= first <= last <= 65535:
                raise ValueError("must be FIRST-LAST with 1 <= FIRST <= LAST <= 65535")
        return value

    @property
    def ray_replica_port_range(self) -> tuple[int, int] | None:
        return None if self.ray_replica_ports is None else _ports(self.ray_replica_ports)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Constructor arguments, then RTSERVE_* variables; no .env file, no secrets directory.
        return init_settings, _Environment(settings_cls)

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name -> its environment variable, for every field that has one."""
        return {name: env_name(name) for name in cls.model_fields if name not in NOT_FROM_ENV}

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def warehouse(self) -> Path:
        return self.warehouse_dir or self.data_dir / "warehouse"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'rtserve.db').resolve()}"

    @property
    def secrets_key_path(self) -> Path:
        return self.secrets_key_file or self.data_dir / "secrets.key"

    @property
    def embedded_mlflow(self) -> bool:
        return self.mlflow_tracking_uri is None

    def ensure_dirs(self) -> None:
        """Create the data dir and its subdirectories private to this user, and tighten existing ones.

        The data dir holds token hashes, the registry, model artifacts, logs and the replicas' sockets:
        directories are 0700 and the database files 0600 (an existing data dir created under a looser
        umask is tightened at every start). `rtserve server` also sets its umask to 0o077, so the files
        it creates later are 0600 too.
        """
        import logging

        def make_private(path: Path, mode: int) -> None:
            try:
                if path.stat().st_mode & 0o777 & ~mode:
                    os.chmod(path, mode)
            except OSError as exc:  # not its owner: say so rather than refuse to start
                logging.getLogger(__name__).warning("Could not make %s private (mode %o): %s", path, mode, exc)

        for sub in ("", "models", "logs", "run", "mlartifacts"):
            path = self.data_dir / sub
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            make_private(path, 0o700)
        for name in ("rtserve.db", "mlflow.db", "admin-token", "secrets.key"):
            for suffix in ("", "-wal", "-shm", "-journal"):
                path = self.data_dir / f"{name}{suffix}"
                if path.is_file():
                    make_private(path, 0o600)


def env_name(field_name: str) -> str:
    return f"{ENV_PREFIX}{field_name.upper()}"


def doc_default(value: Any) -> str:
    """A default as docs/configuration.md writes it: `60` for 60.0, `.rtserve` for a path; None is 'unset'."""
    if value is None:
        return "unset"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def _describe(exc: ValidationError, given: dict[str, Any]) -> str:
    """One line per invalid value: where it came from (option, argument or variable), the value, what is wrong."""
    lines = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        value = error.get("input")
        if field in given:
            where = CLI_FLAGS.get(field, field)
        elif field in Settings.model_fields and field not in NOT_FROM_ENV:
            where = env_name(field)
        else:
            where = field or "settings"
        shown = "(hidden)" if field in SECRET_FIELDS else repr(value)
        lines.append(f"{where}={shown}: {error['msg']}")
    return "Invalid setting" + ("s" if len(lines) > 1 else "") + ":\n  " + "\n  ".join(lines)
