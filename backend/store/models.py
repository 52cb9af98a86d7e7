"""ORM tables: desired state, and the little the controller must remember across restarts.

What runs (replicas, their states, which version a stage's route points to) is observed from the
engine and the registry every tick and published in the snapshot (control/snapshot.py), never
stored. The controller writes here only two things: events (`Event`, the history the UI and
`get-event-history` show) and the promotion of a serving endpoint's pending config to its config
(a `PromoteConfig` action), which must survive a restart so that traffic does not move back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Integer, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    permission: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ModelEndpoint(Base):
    """A registered model with serving enabled: a model endpoint (seed 000's "endpoint")."""

    __tablename__ = "endpoints"

    registered_model_name: Mapped[str] = mapped_column(String(256), primary_key=True)
    creator: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)


class ComputeConfig(Base):
    """The desired compute for one stage of a model endpoint; `generation` counts its updates."""

    __tablename__ = "compute_configs"

    registered_model_name: Mapped[str] = mapped_column(String(256), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    workload_size_id: Mapped[str] = mapped_column(String(16))
    scale_to_zero_enabled: Mapped[bool] = mapped_column(Boolean)
    creation_timestamp: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[str] = mapped_column(String(200))
    generation: Mapped[int] = mapped_column(Integer, default=1)
    # Adaptive batching (an rtserve extension of WorkloadConfigSpec); 1 = off.
    max_batch_size: Mapped[int] = mapped_column(Integer, default=1)
    max_batch_wait_ms: Mapped[float] = mapped_column(Float, default=0.0)
    # The Ray nodes its replicas may run on (control/placement.py), JSON; None: any node.
    placement: Mapped[str | None] = mapped_column(Text, nullable=True)


class Event(Base):
    """A change of observed state, shown as the "Model Events" list."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    registered_model_name: Mapped[str] = mapped_column(String(256), index=True)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(40))
    endpoint_version_name: Mapped[str | None] = mapped_column(String(32), nullable=True)
    stage: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str] = mapped_column(Text)


class ServingEndpoint(Base):
    """A serving endpoint of the GA API (seed 002): served entities and a traffic split.

    `config` is what serves traffic; `pending_config` is an update being rolled out, which replaces
    `config` once every served entity in it is ready. Both are JSON (see control/serving_config.py).
    """

    __tablename__ = "serving_endpoints"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    creator: Mapped[str] = mapped_column(String(200))
    creation_timestamp: Mapped[int] = mapped_column(BigInteger)
    last_updated_timestamp: Mapped[int] = mapped_column(BigInteger)
    config: Mapped[str | None] = mapped_column(Text, nullable=True)
    pending_config: Mapped[str | None] = mapped_column(Text, nullable=True)
    pending_since: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tags: Mapped[str] = mapped_column(Text, default="[]")
    # Grants of the permissions API (control/endpoint_permissions.py), JSON.
    access_control: Mapped[str] = mapped_column(Text, default="[]")
    # Its rate limits (control/rate_limits.py), JSON.
    rate_limits: Mapped[str] = mapped_column(Text, default="[]")
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    route_optimized: Mapped[bool] = mapped_column(Boolean, default=False)
    # Who is e-mailed when a config update finishes (control/email_notifications.py), JSON.
    email_notifications: Mapped[str] = mapped_column(Text, default="{}")
    # The Delta tables its requests are logged to (control/inference_tables.py), JSON.
    inference_tables: Mapped[str] = mapped_column(Text, default="{}")


class BackendInstance(Base):
    """One running backend sharing this database: its heartbeat, and the traffic its gateway sees.

    Every instance rewrites its row at each controller tick; the leader adds up the traffic of the
    rows seen recently, so autoscaling and scale to zero count every instance's requests.
    """

    __tablename__ = "backend_instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[int] = mapped_column(BigInteger)
    seen_at: Mapped[int] = mapped_column(BigInteger, index=True)
    # JSON: [[model, version, in flight, last request at (epoch s)], ...]
    traffic: Mapped[str] = mapped_column(Text, default="[]")


class DeploymentKey(Base):
    """A secret every instance of the deployment must share (e.g. the key sealing Ray actors' identities)."""

    __tablename__ = "deployment_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RateBucket(Base):
    """A rate limit's token bucket, shared by the instances on one database (control/rate_limits.py)."""

    __tablename__ = "rate_buckets"

    endpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(1024), primary_key=True)  # the limit and the caller, JSON
    level: Mapped[float] = mapped_column(Float)  # requests left
    since: Mapped[float] = mapped_column(Float)  # when it was last refilled (epoch seconds)


class SecretScope(Base):
    """A named group of secrets (Databricks' secret scope); environment_vars refer to `{{secrets/<scope>/<key>}}`."""

    __tablename__ = "secret_scopes"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Secret(Base):
    """One secret, encrypted with the key kept outside the database (control/secret_store.py)."""

    __tablename__ = "secrets"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)  # a Fernet token: never the value
    last_updated_timestamp: Mapped[int] = mapped_column(BigInteger)


class UiSessionRow(Base):
    """A browser session of the UI, for instances sharing one database (store/ui_sessions.py).

    Neither the session id nor the token is kept clear: the row is found by the id's hash, and the
    token is re-verified by its hash, as the tokens table keeps it."""

    __tablename__ = "ui_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)  # epoch seconds
    last_seen: Mapped[float] = mapped_column(Float, index=True)
    flashes: Mapped[str] = mapped_column(Text, default="[]")  # JSON [[level, message], ...] shown once


class ReplicaSlotRow(Base):
    """A replica slot claimed by the replica started in it (store/replica_slots.py), when instances share
    a database: a second claim of the slot fails, so two leaders for a moment cannot start it twice."""

    __tablename__ = "replica_slots"

    slot: Mapped[str] = mapped_column(String(700), primary_key=True)  # <model>/<version>/<settings digest>/<index>
    replica_id: Mapped[str] = mapped_column(String(300), unique=True, index=True)
    holder: Mapped[str] = mapped_column(String(200))  # the instance that claimed it (host:pid), for operators
    # The database's clock, not an instance's: a claim's age is compared across machines.
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
