"""Recording intent for the preview API: enable, disable and compute changes. Returns at once;
the controller does the work. The store is read and written in a worker thread, never on the event
loop that the scoring path shares."""

from __future__ import annotations

import asyncio
import time

from mlflow.entities.model_registry import ModelVersion
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from rtserve.server.control import events
from rtserve.server.control.controller import Controller
from rtserve.server.control.placement import Placement, parse_placement, require_ray
from rtserve.server.control.snapshot import Snapshot
from rtserve.server.control.stages import canonical_stage
from rtserve.server.control.workloads import DEFAULT_WORKLOAD_SIZE, SERVING_STAGES, WORKLOAD_SIZES, Compute
from rtserve.server.errors import ApiError, invalid, not_found
from rtserve.server.registry import Registry
from rtserve.server.store import repo
from rtserve.server.store.models import ComputeConfig, ModelEndpoint
from rtserve.server.validate import known_fields, one_of, version_number

# How long a change waits for the controller to see it before answering (one tick, normally milliseconds):
# a client that scores right after enabling or transitioning finds the routes in place, not a 404.
SETTLE_SECONDS = 2.0
SPEC = "desired_workload_config_spec"
# Databricks' WorkloadConfigSpec, then rtserve's extensions: adaptive batching and placement (Ray engine only).
SPEC_FIELDS = ("workload_size_id", "scale_to_zero_enabled", "max_batch_size", "max_batch_wait_ms", "placement")


def _now_ms() -> int:
    return int(time.time() * 1000)


class ModelEndpointService:
    def __init__(self, sessions: sessionmaker[Session], registry: Registry, controller: Controller) -> None:
        self.sessions = sessions
        self.registry = registry
        self.controller = controller

    async def require_enabled(self, model: str) -> list[ComputeConfig]:
        """The endpoint's compute configs; 404 if serving is not enabled for the model."""
        return await asyncio.to_thread(self._compute_configs, model)

    def _compute_configs(self, model: str) -> list[ComputeConfig]:
        with self.sessions() as session:
            if repo.get_model_endpoint(session=session, model_name=model) is None:
                raise not_found(f"Serving is not enabled for registered model '{model}'. Enable it first.")
            return repo.compute_configs(session=session, model_name=model)

    async def enable(self, model: str, user: str) -> None:
        await asyncio.to_thread(self.registry.require_model, model)
        if not await asyncio.to_thread(self._add_endpoint, model, user):
            return  # enabling twice is harmless, as in Databricks
        await self._event(model, f"Serving enabled by {user}")
        self.controller.wake(model)
        await self.controller.observe(lambda seen: _read(seen, model), SETTLE_SECONDS)

    def _add_endpoint(self, model: str, user: str) -> bool:
        """True if this call enabled serving; False if it was enabled already, also by a concurrent call
        (two stacks that serve one model enable it at the same moment)."""
        try:
            return self._insert_endpoint(model, user)
        except IntegrityError:
            return False

    def _insert_endpoint(self, model: str, user: str) -> bool:
        now = _now_ms()
        with self.sessions.begin() as session:
            if repo.get_model_endpoint(session=session, model_name=model) is not None:
                return False
            repo.add_model_endpoint(
                session=session, endpoint=ModelEndpoint(registered_model_name=model, creator=user, created_at=now)
            )
            for stage in SERVING_STAGES:
                repo.add_compute_config(
                    session=session,
                    config=ComputeConfig(
                        registered_model_name=model,
                        stage=stage,
                        workload_size_id=DEFAULT_WORKLOAD_SIZE,
                        scale_to_zero_enabled=False,
                        creation_timestamp=now,
                        user_id=user,
                        generation=1,
                    ),
                )
        return True

    async def disable(self, model: str, user: str) -> None:
        await asyncio.to_thread(self._delete_endpoint, model)
        await self._event(model, f"Serving disabled by {user}")
        self.controller.wake(model)
        await self.controller.observe(lambda seen: seen.model_endpoint(model) is None, SETTLE_SECONDS)

    def _delete_endpoint(self, model: str) -> None:
        with self.sessions.begin() as session:
            if repo.get_model_endpoint(session=session, model_name=model) is None:
                raise not_found(f"Serving is not enabled for registered model '{model}'.")
            repo.delete_model_endpoint(session=session, model_name=model)

    async def update_compute_config(self, model: str, stage: str, spec: dict, user: str) -> None:
        """Store a stage's compute: Databricks' fields as given (scale to zero off when omitted); rtserve's
        extensions, batching and placement, keep their value when omitted, as Databricks' clients omit them."""
        known_fields(spec, SPEC, SPEC_FIELDS)
        stage = one_of(canonical_stage(stage) or stage, SERVING_STAGES, "stage")
        size = one_of(spec.get("workload_size_id"), WORKLOAD_SIZES, "workload_size_id")
        scale_to_zero = spec.get("scale_to_zero_enabled", False)
        if not isinstance(scale_to_zero, bool):
            raise invalid(f"scale_to_zero_enabled must be true or false; got {scale_to_zero!r}.")
        placement = parse_placement(spec.get("placement"), f"{SPEC}.placement")  # null or {}: anywhere
        if placement is not None:
            require_ray(self.controller.settings.engine, f"{SPEC}.placement")
        compute = await asyncio.to_thread(self._store_compute, model, stage, size, scale_to_zero, spec, placement, user)
        if compute is None:
            return  # no update to wait for
        batch_size, batch_wait = compute.batching
        await self._event(
            model,
            f"Compute config for {stage} updated by {user}: {size}, scale to zero {'on' if scale_to_zero else 'off'}"
            + (f", batching up to {batch_size} requests within {batch_wait:g} ms" if batch_size > 1 else "")
            + (f", placed on nodes with {compute.placement.describe()}" if compute.placement else ""),
            stage=stage,
        )
        self.controller.wake(model)

    def _store_compute(
        self,
        model: str,
        stage: str,
        size: str,
        scale_to_zero: bool,
        spec: dict,
        placement: Placement | None,
        user: str,
    ) -> Compute | None:
        """Write the stage's compute config; what it now is, or None if nothing changed."""
        with self.sessions.begin() as session:
            if repo.get_model_endpoint(session=session, model_name=model) is None:
                raise not_found(f"Serving is not enabled for registered model '{model}'. Enable it first.")
            row = repo.get_compute_config(session=session, model_name=model, stage=stage)
            if row is None:
                raise ApiError("INVALID_STATE", f"Endpoint '{model}' has no compute config for {stage}.")
            # Databricks' spec has no batching or placement: a client that omits them keeps what is set.
            batch_size, batch_wait = _batching(spec, row.max_batch_size, row.max_batch_wait_ms)
            stored_placement = row.placement
            if "placement" in spec:  # an explicit null or {} clears it
                stored_placement = placement.to_json() if placement else None
            wanted = (size, scale_to_zero, batch_size, batch_wait, stored_placement)
            if wanted == (
                row.workload_size_id,
                row.scale_to_zero_enabled,
                row.max_batch_size,
                row.max_batch_wait_ms,
                row.placement,
            ):
                return None
            row.workload_size_id = size
            row.scale_to_zero_enabled = scale_to_zero
            row.max_batch_size = batch_size
            row.max_batch_wait_ms = batch_wait
            row.placement = stored_placement
            row.creation_timestamp = _now_ms()
            row.user_id = user
            row.generation += 1
            return Compute.of_stage(row)

    async def transition(
        self, name: str, version: str, stage: str, archive_existing_versions: bool, comment: str | None, user: str
    ) -> ModelVersion:
        """Move a version to a stage in the registry; serving follows (stage URLs move once it is READY)."""
        version = version_number(version)  # the registry itself fails (and is retried) on a 20-digit number
        model_version = await asyncio.to_thread(
            self.registry.transition, name, version, stage, archive_existing_versions
        )
        archived = " (existing versions archived)" if archive_existing_versions else ""
        note = f": {comment}" if comment else ""
        await events.record(
            self.sessions,
            name,
            events.MODEL_SERVICE_EVENT,
            f"Version {version} moved to {stage} by {user}{archived}{note}",
            version,
            stage,
            time.time(),
        )
        self.controller.wake(name)
        await self.controller.observe(lambda seen: _read(seen, name), SETTLE_SECONDS)
        return model_version

    async def _event(self, model: str, message: str, stage: str | None = None) -> None:
        await events.record(self.sessions, model, events.MODEL_SERVICE_EVENT, message, None, stage, time.time())


def _read(snapshot: Snapshot, model: str) -> bool:
    """Serving is enabled for the model and its versions were read since its last change: its routes are known."""
    return snapshot.model_endpoint(model) is not None and not snapshot.is_stale(model)


MAX_BATCH_SIZE = 1024
MAX_BATCH_WAIT_MS = 1000.0


def _batching(spec: dict, current_size: int, current_wait: float) -> tuple[int, float]:
    """Adaptive batching, an rtserve extension of WorkloadConfigSpec: off unless max_batch_size > 1."""
    size = spec.get("max_batch_size", current_size)
    default_wait = current_wait if size == current_size and current_size > 1 else 5.0
    wait = spec.get("max_batch_wait_ms", default_wait if size != 1 else 0.0)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
        raise invalid(f"max_batch_size must be an integer from 1 (no batching) to {MAX_BATCH_SIZE}; got {size!r}.")
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= MAX_BATCH_WAIT_MS:
        raise invalid(f"max_batch_wait_ms must be a number from 0 to {MAX_BATCH_WAIT_MS:g}; got {wait!r}.")
    return size, float(wait) if size > 1 else 0.0
