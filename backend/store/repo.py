"""Repository functions: the only place that builds queries. All arguments are keyword-only."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from rtserve.server.store.models import (
    ApiToken,
    BackendInstance,
    ComputeConfig,
    DeploymentKey,
    Event,
    ModelEndpoint,
    RateBucket,
    Secret,
    SecretScope,
    ServingEndpoint,
)


def find_token_by_hash(*, session: Session, token_hash: str) -> ApiToken | None:
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None)))


def list_tokens(*, session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at)))


def list_active_tokens(*, session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.revoked_at.is_(None)).order_by(ApiToken.created_at)))


def list_active_tokens_named(*, session: Session, name: str) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
    return list(session.scalars(query.order_by(ApiToken.created_at)))


def add_token(*, session: Session, token: ApiToken) -> None:
    session.add(token)


def get_token(*, session: Session, token_id: str) -> ApiToken | None:
    return session.get(ApiToken, token_id)


def get_model_endpoint(*, session: Session, model_name: str) -> ModelEndpoint | None:
    return session.get(ModelEndpoint, model_name)


def list_model_endpoints(*, session: Session) -> list[ModelEndpoint]:
    return list(session.scalars(select(ModelEndpoint).order_by(ModelEndpoint.registered_model_name)))


def add_model_endpoint(*, session: Session, endpoint: ModelEndpoint) -> None:
    session.add(endpoint)


def delete_model_endpoint(*, session: Session, model_name: str) -> None:
    session.execute(delete(ComputeConfig).where(ComputeConfig.registered_model_name == model_name))
    session.execute(delete(ModelEndpoint).where(ModelEndpoint.registered_model_name == model_name))


def compute_configs(*, session: Session, model_name: str) -> list[ComputeConfig]:
    query = select(ComputeConfig).where(ComputeConfig.registered_model_name == model_name)
    return list(session.scalars(query.order_by(ComputeConfig.stage)))


def all_compute_configs(*, session: Session) -> list[ComputeConfig]:
    return list(session.scalars(select(ComputeConfig)))


def get_compute_config(*, session: Session, model_name: str, stage: str) -> ComputeConfig | None:
    return session.get(ComputeConfig, (model_name, stage))


def add_compute_config(*, session: Session, config: ComputeConfig) -> None:
    session.add(config)


def add_event(*, session: Session, event: Event) -> None:
    session.add(event)


def list_events(*, session: Session, model_name: str, limit: int = 500) -> list[Event]:
    query = select(Event).where(Event.registered_model_name == model_name)
    return list(session.scalars(query.order_by(Event.timestamp.desc(), Event.id.desc()).limit(limit)))


def list_serving_endpoints(*, session: Session) -> list[ServingEndpoint]:
    return list(session.scalars(select(ServingEndpoint).order_by(ServingEndpoint.name)))


def get_serving_endpoint(*, session: Session, name: str, for_update: bool = False) -> ServingEndpoint | None:
    """The endpoint's row; `for_update` locks it until the transaction ends (PostgreSQL), so that two
    instances deciding the same change one after the other see each other's write."""
    return session.get(ServingEndpoint, name, with_for_update=for_update)


def get_serving_endpoint_by_id(*, session: Session, endpoint_id: str) -> ServingEndpoint | None:
    return session.scalar(select(ServingEndpoint).where(ServingEndpoint.id == endpoint_id))


def add_serving_endpoint(*, session: Session, endpoint: ServingEndpoint) -> None:
    session.add(endpoint)


def delete_serving_endpoint(*, session: Session, name: str) -> None:
    session.execute(delete(ServingEndpoint).where(ServingEndpoint.name == name))


def save_instance(*, session: Session, instance: BackendInstance) -> None:
    session.merge(instance)


def list_instances_seen_since(*, session: Session, seen_at: int) -> list[BackendInstance]:
    query = select(BackendInstance).where(BackendInstance.seen_at >= seen_at).order_by(BackendInstance.started_at)
    return list(session.scalars(query))


def delete_instance(*, session: Session, instance_id: str) -> None:
    session.execute(delete(BackendInstance).where(BackendInstance.id == instance_id))


def get_deployment_key(*, session: Session, name: str) -> DeploymentKey | None:
    return session.get(DeploymentKey, name)


def add_deployment_key(*, session: Session, key: DeploymentKey) -> None:
    session.add(key)


def lock_rate_buckets(*, session: Session, endpoint: str, buckets: list[str]) -> list[RateBucket]:
    """The endpoint's named buckets, locked until the transaction ends (PostgreSQL only)."""
    query = select(RateBucket).where(RateBucket.endpoint == endpoint, RateBucket.bucket.in_(buckets))
    return list(session.scalars(query.with_for_update()))


def create_rate_buckets(*, session: Session, endpoint: str, buckets: list[str], level: float) -> None:
    """Create the buckets that do not exist yet, at `level`; those that do (another instance's) are left alone."""
    rows = [{"endpoint": endpoint, "bucket": name, "level": level, "since": 0.0} for name in buckets]
    session.execute(pg_insert(RateBucket).values(rows).on_conflict_do_nothing())


def delete_rate_buckets(*, session: Session, endpoint: str) -> None:
    session.execute(delete(RateBucket).where(RateBucket.endpoint == endpoint))


def get_secret_scope(*, session: Session, name: str) -> SecretScope | None:
    return session.get(SecretScope, name)


def list_secret_scopes(*, session: Session) -> list[SecretScope]:
    return list(session.scalars(select(SecretScope).order_by(SecretScope.name)))


def add_secret_scope(*, session: Session, scope: SecretScope) -> None:
    session.add(scope)


def delete_secret_scope(*, session: Session, name: str) -> None:
    session.execute(delete(Secret).where(Secret.scope == name))
    session.execute(delete(SecretScope).where(SecretScope.name == name))


def get_secret(*, session: Session, scope: str, key: str) -> Secret | None:
    return session.get(Secret, (scope, key))


def list_secrets(*, session: Session, scope: str) -> list[Secret]:
    return list(session.scalars(select(Secret).where(Secret.scope == scope).order_by(Secret.key)))


def put_secret(*, session: Session, secret: Secret) -> None:
    session.merge(secret)


def delete_secret(*, session: Session, scope: str, key: str) -> None:
    session.execute(delete(Secret).where(Secret.scope == scope, Secret.key == key))
