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

from tf.iface import Config, PlanContext, State
from tf.schema import Attribute, Block, Schema
from tf.types import Bool, Map, String, Unknown
from tf.utils import Diagnostics

from rtserve.provider.base import report_api_error
from rtserve.provider.blocks import ListNestedBlock, timeout_seconds, timeouts_block, validate_timeouts
from rtserve.provider.client import ApiError, RtserveClient
from rtserve.provider.resources.compute import (
    compute_attributes,
    fill_blocks,
    placement_attributes,
    placement_body,
    placement_from_answer,
    with_compute_defaults,
)
from rtserve.provider.resources.crud import RtserveResource, WaitReport
from rtserve.provider.waiter import Progress
from rtserve.spec import DEFAULT_SCALE_TO_ZERO, DEFAULT_WORKLOAD_SIZE, SERVING_STAGES

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
                description=" or ".join(f"`{stage}`" for stage in SERVING_STAGES) + ".",
                required=True,
            ),
            *compute_attributes(),
            *placement_attributes(),
        ],
    ),
    max_items=len(SERVING_STAGES),
)

TIMEOUTS = timeouts_block()


def _block_key(block: dict) -> str:
    stage = block.get("stage")
    return stage.lower() if isinstance(stage, str) else ""


def _spec(block: dict) -> tuple[Any, Any, dict]:
    """What the backend is sent for a block: size, scale to zero and placement (always: {} clears one set out of
    band, as the block manages the stage)."""
    return block.get("workload_size"), block.get("scale_to_zero_enabled"), placement_body(block)


# A stage whose block is removed (or released on destroy) goes back to the backend's default: anywhere.
DEFAULT_SPEC: tuple[str, bool, dict] = (DEFAULT_WORKLOAD_SIZE, DEFAULT_SCALE_TO_ZERO, {})


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


class ModelServingResource(RtserveResource):
    OUTPUTS = ("state", "state_message", "version_invocation_urls")

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
        validate_timeouts(diags, config)

    def plan(self, ctx: PlanContext, current: State | None, planned: State) -> State:
        # Without the configuration (a bare PlanContext) unset values look like null planned values.
        config = getattr(ctx, "config", None)
        planned["compute_config"] = fill_blocks(
            planned.get("compute_config"), (config or planned).get("compute_config"), with_compute_defaults
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
            for key in self.OUTPUTS:
                planned[key] = Unknown
        return planned

    # -- CRUD ------------------------------------------------------------------------------------
    def create_with(self, diags: Diagnostics, client: RtserveClient, planned: State) -> State | None:
        name = planned["registered_model_name"]
        try:
            client.enable(name)
        except ApiError as error:
            report_api_error(diags, f"Could not enable serving for {name!r}", error, ["registered_model_name"])
            return None
        # From here on serving is enabled: on error, return what exists so Terraform records it (tainted).
        try:
            for block in planned.get("compute_config") or []:
                client.update_compute_config(name, block["stage"], *_spec(block))
        except ApiError as error:
            report_api_error(diags, f"Could not set the compute config of {name!r}", error, ["compute_config"])
            return self.observe(diags, client, planned)
        if planned.get("wait_for_ready"):
            self._wait(diags, client, name, timeout_seconds(planned, "create"))
        return self.observe(diags, client, planned)

    def read_with(self, diags: Diagnostics, client: RtserveClient, current: State) -> State | None:
        name = current["registered_model_name"]
        try:
            status = client.get_status(name)
            versions = client.list_versions(name)
        except ApiError as error:
            if error.not_found:
                return None  # serving was disabled out of band: Terraform plans a re-create
            report_api_error(diags, f"Could not read serving of {name!r}", error)
            return current
        return _state(client, current, status, versions)

    def update_with(self, diags: Diagnostics, client: RtserveClient, current: State, planned: State) -> State | None:
        name = planned["registered_model_name"]
        before = {_block_key(b): b for b in current.get("compute_config") or []}
        after = {_block_key(b): b for b in planned.get("compute_config") or []}
        changes = [(b["stage"], *_spec(b)) for key, b in after.items() if _spec(b) != _spec(before.get(key, {}))]
        changes += [
            (b["stage"], *DEFAULT_SPEC) for key, b in before.items() if key not in after and _spec(b) != DEFAULT_SPEC
        ]
        try:
            for stage, size, scale_to_zero, placement in changes:
                client.update_compute_config(name, stage, size, scale_to_zero, placement)
        except ApiError as error:
            report_api_error(diags, f"Could not change the compute config of {name!r}", error, ["compute_config"])
            return self.observe(diags, client, planned)
        if changes and planned.get("wait_for_ready"):
            self._wait(diags, client, name, timeout_seconds(planned, "update"))
        return self.observe(diags, client, planned)

    def delete_with(self, diags: Diagnostics, client: RtserveClient, current: State) -> None:
        name = current["registered_model_name"]
        try:
            if current.get("disable_on_destroy") is False:
                for block in current.get("compute_config") or []:
                    if _spec(block) != DEFAULT_SPEC:
                        client.update_compute_config(name, block["stage"], *DEFAULT_SPEC)
            else:
                client.disable(name)
        except ApiError as error:
            if not error.not_found:  # serving already disabled: the goal is reached
                report_api_error(diags, f"Could not release serving of {name!r}", error)

    def import_with(self, diags: Diagnostics, client: RtserveClient, id: str) -> State | None:  # noqa: A002
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
            report_api_error(diags, f"Cannot import serving of {name!r}", error)
            return None
        return _state(client, base, status, versions)

    # -- helpers ---------------------------------------------------------------------------------
    def vanished(self, planned: State) -> tuple[str, str]:
        return (
            "Serving disappeared while being applied",
            f"Serving of {planned['registered_model_name']!r} was disabled by someone else during this apply.",
        )

    def _wait(self, diags: Diagnostics, client: RtserveClient, name: str, timeout: float) -> None:
        def check() -> Progress:
            return serving_progress(client.get_status(name), client.list_versions(name))

        report = WaitReport(
            subject=f"serving of {name!r}",
            failed=f"Serving of {name!r} failed: ENDPOINT_STATE_FAILED",
            late=f"Serving of {name!r} not ready",
            late_hint="Raise `timeouts` or set `wait_for_ready = false` to return before the endpoint is ready.",
        )
        self.wait_for(diags, check, timeout, report)


def _compute_changed(before: Any, after: Any) -> bool:
    if not isinstance(before, list) or not isinstance(after, list):
        return before != after
    return {_block_key(b): _spec(b) for b in before} != {_block_key(b): _spec(b) for b in after}


def _stage_urls(client: RtserveClient, name: str) -> dict[str, str]:
    return {stage: client.stage_url(name, stage) for stage in SERVING_STAGES}


def _state(client: RtserveClient, base: State, status: dict, versions: list[dict]) -> State:
    """`base` (the inputs) completed with what the backend reports.

    compute_config keeps the blocks of `base`, in their order and spelling, with the backend's
    values; when `base` has none (an import), every stage the backend reports.
    """
    name = base["registered_model_name"]
    reported = {str(item.get("stage", "")).lower(): item for item in status.get("compute_config") or []}
    prior = base.get("compute_config")
    if prior is None:
        order = [s.lower() for s in SERVING_STAGES if s.lower() in reported]
        order += [key for key in reported if key not in order]
        before: dict[str, dict] = {}
    else:
        order = [_block_key(b) for b in prior if _block_key(b) in reported]
        before = {_block_key(b): b for b in prior}
    blocks = []
    for key in order:
        spec = reported[key].get("workload_spec") or {}
        blocks.append(
            {
                "stage": before[key]["stage"] if key in before else str(reported[key].get("stage")),
                "workload_size": spec.get("workload_size_id", DEFAULT_WORKLOAD_SIZE),
                "scale_to_zero_enabled": bool(spec.get("scale_to_zero_enabled", DEFAULT_SCALE_TO_ZERO)),
                **placement_from_answer(spec, before.get(key)),
            }
        )
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
