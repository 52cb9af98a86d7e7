"""`rtserve_model_serving`: serving enabled for one registered model, with a compute config per stage.

Create enables serving and applies each `compute_config` block; update changes compute; delete
disables serving (or, with `disable_on_destroy = false`, only resets the declared stages' compute).
With `wait_for_ready` (the default) create and update return only once the endpoint is
ENDPOINT_STATE_READY and every served version is READY with its compute config applied, and fail
with the backend's message as soon as anything is FAILED.

Drift: serving disabled out of band makes read return None (Terraform plans a re-create); compute
changed out of band shows as a diff. Only the stages that have a block are managed: the backend
gives every stage a default config when serving is enabled, and an undeclared stage is left alone.
"""

from __future__ import annotations

from typing import Any

from tf.iface import (
    Config,
    CreateContext,
    DeleteContext,
    ImportContext,
    PlanContext,
    ReadContext,
    Resource,
    State,
    UpdateContext,
)
from tf.schema import Attribute, Block, Schema
from tf.types import Bool, Map, String, Unknown
from tf.utils import Diagnostics

from provider.base import ProviderBound, guarded, report_api_error
from provider.blocks import DEFAULT_TIMEOUT, ListNestedBlock, timeouts_block
from provider.client import SERVING_STAGES, ApiError, RtserveClient
from provider.waiter import Progress, WaitFailed, WaitTimeout, parse_duration

DEFAULT_WORKLOAD_SIZE = "Small"
DEFAULT_SCALE_TO_ZERO = False
READY = "ENDPOINT_STATE_READY"
FAILED = "ENDPOINT_STATE_FAILED"

COMPUTE_CONFIG = ListNestedBlock(
    "compute_config",
    Block(
        description="Compute for the versions in one stage. One block per stage; at most two.",
        attributes=[
            Attribute(
                "stage",
                String(),
                description="`Staging` or `Production`.",
                required=True,
            ),
            Attribute(
                "workload_size",
                String(),
                description=f"`Small` (4 concurrent requests), `Medium` (8-16) or `Large` (16-64). "
                f'Default: `"{DEFAULT_WORKLOAD_SIZE}"`, as the backend.',
                optional=True,
                computed=True,
            ),
            Attribute(
                "scale_to_zero_enabled",
                Bool(),
                description="Release every replica after an idle period; the next request waits for a cold start. "
                "Default: `false`, as the backend.",
                optional=True,
                computed=True,
            ),
        ],
    ),
    max_items=len(SERVING_STAGES),
)

TIMEOUTS = timeouts_block()


def _block_key(block: dict) -> str:
    stage = block.get("stage")
    return stage.lower() if isinstance(stage, str) else ""


def _spec(block: dict) -> tuple[Any, Any]:
    return block.get("workload_size"), block.get("scale_to_zero_enabled")


def serving_progress(status: dict, versions: list[dict]) -> Progress:
    """Done when the endpoint is READY and every served version is READY with its config applied."""
    state = status.get("state", "")
    message = status.get("state_message", "")
    if state == FAILED:
        return Progress(failure=message or "the endpoint is ENDPOINT_STATE_FAILED")
    pending = []
    for version in versions:
        name = version.get("endpoint_version_name", "?")
        service = version.get("service_status") or {}
        update = version.get("config_update_status") or {}
        for label, part in (("", service), ("compute config of ", update)):
            if part.get("state") == "SERVICE_STATE_FAILED":
                return Progress(failure=f"{label}version {name} failed: {part.get('message', '')}")
            if part.get("state") != "SERVICE_STATE_READY":
                pending.append(f"{label}version {name}: {part.get('state', '?')} {part.get('message', '')}".strip())
    done = state == READY and not pending
    return Progress(done=done, message="; ".join([f"{state} {message}".strip(), *pending]))


class ModelServingResource(ProviderBound, Resource):
    @classmethod
    def get_name(cls) -> str:
        return "model_serving"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="Serving of one registered MLflow model: every version in Staging or Production is served, "
            "each stage with its own compute.",
            attributes=[
                Attribute("id", String(), description="The registered model's name.", computed=True),
                Attribute(
                    "registered_model_name",
                    String(),
                    description="Registered model to serve. Changing it serves another model (replace).",
                    required=True,
                    requires_replace=True,
                ),
                Attribute(
                    "wait_for_ready",
                    Bool(),
                    description="Wait, on create and update, until the endpoint and every served version are READY. "
                    "Default: `true`.",
                    optional=True,
                    computed=True,
                    default=True,
                ),
                Attribute(
                    "disable_on_destroy",
                    Bool(),
                    description="Destroy disables serving (every stage). Set `false` when several configurations "
                    "share the model's endpoint (e.g. one per stage): destroy then only returns the declared stages' "
                    "compute to the backend's default and leaves serving enabled. Default: `true`.",
                    optional=True,
                    computed=True,
                    default=True,
                ),
                Attribute("state", String(), description="ENDPOINT_STATE_PENDING, _READY or _FAILED.", computed=True),
                Attribute(
                    "state_message", String(), description="The backend's explanation of `state`.", computed=True
                ),
                Attribute(
                    "invocation_urls",
                    Map(String()),
                    description="Scoring URL per stage: `Staging` and `Production` -> "
                    "`<host>/model-endpoint/<model>/<stage>/invocations`.",
                    computed=True,
                ),
                Attribute(
                    "version_invocation_urls",
                    Map(String()),
                    description="Scoring URL per served version: "
                    "`<version>` -> `<host>/model/<model>/<version>/invocations`.",
                    computed=True,
                ),
            ],
            block_types=[COMPUTE_CONFIG, TIMEOUTS],
        )

    # -- validation and plan ---------------------------------------------------------------------
    def validate(self, diags: Diagnostics, type_name: str, config: Config) -> None:
        super().validate(diags, type_name, config)
        blocks = config.get("compute_config")
        if isinstance(blocks, list):
            seen: set[str] = set()
            for index, block in enumerate(blocks):
                key = _block_key(block) if isinstance(block, dict) else ""
                if key and key in seen:
                    diags.add_error(
                        "Duplicate compute_config stage",
                        f"Stage {block['stage']!r} has more than one compute_config block; give each stage one block.",
                        ["compute_config", (index,), "stage"],
                    )
                seen.add(key)
        timeouts = config.get("timeouts")
        if isinstance(timeouts, dict):
            for op in ("create", "update"):
                value = timeouts.get(op)
                if isinstance(value, str):
                    try:
                        parse_duration(value)
                    except ValueError as error:
                        diags.add_error("Invalid timeout", str(error), ["timeouts", op])

    def plan(self, ctx: PlanContext, current: State | None, planned: State) -> State:
        # Without the configuration (a bare PlanContext) unset values look like null planned values.
        config = getattr(ctx, "config", None)
        planned["compute_config"] = _with_defaults(
            planned.get("compute_config"), (config or planned).get("compute_config")
        )
        for flag in ("wait_for_ready", "disable_on_destroy"):
            if (config or planned).get(flag) is None:
                planned[flag] = True
        name = planned.get("registered_model_name")
        client = self.provider.client
        if isinstance(name, str):
            planned["id"] = name
            if client is not None:
                planned["invocation_urls"] = _stage_urls(client, name)
        if current is None or _compute_changed(current.get("compute_config"), planned["compute_config"]):
            for key in ("state", "state_message", "version_invocation_urls"):
                planned[key] = Unknown
        return planned

    # -- CRUD ------------------------------------------------------------------------------------
    @guarded("Could not create rtserve_model_serving")
    def create(self, ctx: CreateContext, planned: State) -> State | None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return None
        name = planned["registered_model_name"]
        try:
            client.enable(name)
        except ApiError as error:
            report_api_error(
                ctx.diagnostics, f"Could not enable serving for {name!r}", error, ["registered_model_name"]
            )
            return None
        # From here on serving is enabled: on error, return what exists so Terraform records it (tainted).
        try:
            for block in planned.get("compute_config") or []:
                client.update_compute_config(name, block["stage"], *_spec(block))
        except ApiError as error:
            report_api_error(
                ctx.diagnostics, f"Could not set the compute config of {name!r}", error, ["compute_config"]
            )
            return self._observe(ctx.diagnostics, client, planned)
        if planned.get("wait_for_ready"):
            self._wait(ctx.diagnostics, client, name, _timeout(planned, "create"))
        return self._observe(ctx.diagnostics, client, planned)

    @guarded("Could not read rtserve_model_serving", fallback=lambda args: args[0])
    def read(self, ctx: ReadContext, current: State) -> State | None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return current
        return self._read(ctx.diagnostics, client, current, current["registered_model_name"])

    @guarded("Could not update rtserve_model_serving", fallback=lambda args: args[0])
    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return current
        name = planned["registered_model_name"]
        before = {_block_key(b): b for b in current.get("compute_config") or []}
        after = {_block_key(b): b for b in planned.get("compute_config") or []}
        changes = [(b["stage"], *_spec(b)) for key, b in after.items() if _spec(b) != _spec(before.get(key, {}))]
        # A stage whose block was removed goes back to the backend's default.
        default = (DEFAULT_WORKLOAD_SIZE, DEFAULT_SCALE_TO_ZERO)
        changes += [(b["stage"], *default) for key, b in before.items() if key not in after and _spec(b) != default]
        try:
            for stage, size, scale_to_zero in changes:
                client.update_compute_config(name, stage, size, scale_to_zero)
        except ApiError as error:
            report_api_error(
                ctx.diagnostics, f"Could not change the compute config of {name!r}", error, ["compute_config"]
            )
            return self._observe(ctx.diagnostics, client, planned)
        if changes and planned.get("wait_for_ready"):
            self._wait(ctx.diagnostics, client, name, _timeout(planned, "update"))
        return self._observe(ctx.diagnostics, client, planned)

    @guarded("Could not delete rtserve_model_serving")
    def delete(self, ctx: DeleteContext, current: State) -> None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return None
        name = current["registered_model_name"]
        try:
            if current.get("disable_on_destroy") is False:
                default = (DEFAULT_WORKLOAD_SIZE, DEFAULT_SCALE_TO_ZERO)
                for block in current.get("compute_config") or []:
                    if _spec(block) != default:
                        client.update_compute_config(name, block["stage"], *default)
            else:
                client.disable(name)
        except ApiError as error:
            if not error.not_found:  # serving already disabled: the goal is reached
                report_api_error(ctx.diagnostics, f"Could not release serving of {name!r}", error)
        return None

    @guarded("Could not import rtserve_model_serving")
    def import_(self, ctx: ImportContext, id: str) -> State | None:  # noqa: A002 - the framework's name
        client = self.client(ctx.diagnostics)
        if client is None:
            return None
        name = id.strip()
        base: State = {
            "registered_model_name": name,
            "wait_for_ready": True,
            "disable_on_destroy": True,
            "timeouts": None,
            "compute_config": None,
        }
        try:
            status = client.get_status(name)
            versions = client.list_versions(name)
        except ApiError as error:
            report_api_error(ctx.diagnostics, f"Cannot import serving of {name!r}", error)
            return None
        return _state(client, base, status, versions)

    # -- helpers ---------------------------------------------------------------------------------
    def _read(self, diags: Diagnostics, client: RtserveClient, base: State, name: str) -> State | None:
        try:
            status = client.get_status(name)
            versions = client.list_versions(name)
        except ApiError as error:
            if error.not_found:
                return None  # serving was disabled out of band: Terraform plans a re-create
            report_api_error(diags, f"Could not read serving of {name!r}", error)
            return base
        return _state(client, base, status, versions)

    def _observe(self, diags: Diagnostics, client: RtserveClient, planned: State) -> State:
        """The state after a create or update: planned inputs, observed outputs."""
        observed = self._read(diags, client, planned, planned["registered_model_name"])
        if observed is None:
            diags.add_error(
                "Serving disappeared while being applied",
                f"Serving of {planned['registered_model_name']!r} was disabled by someone else during this apply.",
            )
            return {**planned, **{k: None for k in ("state", "state_message", "version_invocation_urls")}}
        return observed

    def _wait(self, diags: Diagnostics, client: RtserveClient, name: str, timeout: float) -> None:
        def check() -> Progress:
            return serving_progress(client.get_status(name), client.list_versions(name))

        try:
            self.waiter.wait(check, timeout)
        except WaitFailed as failure:
            diags.add_error(f"Serving of {name!r} failed: ENDPOINT_STATE_FAILED", failure.message)
        except WaitTimeout as timeout_error:
            diags.add_error(
                f"Serving of {name!r} not ready after {timeout_error.timeout:g} s",
                f"Last status: {timeout_error.last}\nRaise `timeouts` or set `wait_for_ready = false` "
                "to return before the endpoint is ready.",
            )
        except ApiError as error:
            report_api_error(diags, f"Could not follow serving of {name!r}", error)


def _with_defaults(blocks: Any, configured: Any) -> Any:
    """Fill each block's unset workload_size / scale_to_zero_enabled with the backend's default."""
    if not isinstance(blocks, list):
        return blocks
    configured = configured if isinstance(configured, list) else []
    result = []
    for index, block in enumerate(blocks):
        source = configured[index] if index < len(configured) and isinstance(configured[index], dict) else block
        filled = dict(block)
        if source.get("workload_size") is None:
            filled["workload_size"] = DEFAULT_WORKLOAD_SIZE
        if source.get("scale_to_zero_enabled") is None:
            filled["scale_to_zero_enabled"] = DEFAULT_SCALE_TO_ZERO
        result.append(filled)
    return result


def _compute_changed(before: Any, after: Any) -> bool:
    if not isinstance(before, list) or not isinstance(after, list):
        return before != after
    return {_block_key(b): _spec(b) for b in before} != {_block_key(b): _spec(b) for b in after}


def _timeout(planned: State, op: str) -> float:
    timeouts = planned.get("timeouts") or {}
    return parse_duration(timeouts.get(op) or DEFAULT_TIMEOUT)


def _stage_urls(client: RtserveClient, name: str) -> dict[str, str]:
    return {stage: client.stage_url(name, stage) for stage in SERVING_STAGES}


def _state(client: RtserveClient, base: State, status: dict, versions: list[dict]) -> State:
    """`base` (the inputs) completed with what the backend reports.

    compute_config keeps the blocks of `base`, in their order and spelling, with the backend's
    values; when `base` has none (an import), every stage the backend reports.
    """
    name = base["registered_model_name"]
    reported = {}
    for item in status.get("compute_config") or []:
        spec = item.get("workload_spec") or {}
        reported[str(item.get("stage", "")).lower()] = (
            str(item.get("stage")),
            spec.get("workload_size_id", DEFAULT_WORKLOAD_SIZE),
            bool(spec.get("scale_to_zero_enabled", DEFAULT_SCALE_TO_ZERO)),
        )
    prior = base.get("compute_config")
    if prior is None:
        order = [s.lower() for s in SERVING_STAGES if s.lower() in reported]
        order += [key for key in reported if key not in order]
        spelled = {key: reported[key][0] for key in order}
    else:
        order = [_block_key(b) for b in prior if _block_key(b) in reported]
        spelled = {_block_key(b): b["stage"] for b in prior}
    blocks = [
        {"stage": spelled[key], "workload_size": reported[key][1], "scale_to_zero_enabled": reported[key][2]}
        for key in order
    ]
    return {
        **base,
        "id": name,
        "registered_model_name": name,
        "compute_config": blocks,
        "state": status.get("state"),
        "state_message": status.get("state_message"),
        "invocation_urls": _stage_urls(client, name),
        "version_invocation_urls": {
            str(v["endpoint_version_name"]): client.version_url(name, str(v["endpoint_version_name"]))
            for v in versions
            if v.get("endpoint_version_name") is not None
        },
    }
