"""`rtserve_model_version_stage`: one model version held in one registry stage.

A promotion is a reviewed change of one number: changing `version` moves the stage to the new
version in place. The new version is transitioned first; once it serves the stage (with
`wait_for_ready`), the old version is archived if it is still in the stage. The backend keeps the
old version answering the stage URL until the new one is ready, so scoring never stops.

Read re-creates the resource when the version has left the stage (or no longer exists). Delete
moves the version to Archived, but only if it is still in the stage this resource put it in.
"""

from __future__ import annotations

from tf.iface import Config, PlanContext, State
from tf.schema import Attribute, Schema
from tf.types import Bool, String
from tf.utils import Diagnostics

from rtserve import spec
from rtserve.provider.base import report_api_error
from rtserve.provider.blocks import timeout_seconds, timeouts_block, validate_timeouts
from rtserve.provider.client import ApiError, RtserveClient
from rtserve.provider.resources.crud import RtserveResource, WaitReport
from rtserve.provider.waiter import Progress
from rtserve.spec import ALL_STAGES, ARCHIVED, NO_STAGE, SERVING_STAGES

DESTROY_STAGE = ARCHIVED
DESTROY_COMMENT = "rtserve: removed from the Terraform configuration"

TIMEOUTS = timeouts_block()


def canonical_stage(stage: str) -> str:
    """MLflow matches stage names case-insensitively; "production" -> "Production" (a non-stage as it is)."""
    return spec.canonical_stage(stage) or stage


def _stages_text() -> str:
    """ "`Staging`, `Production`, `Archived` or `None`."."""
    named = [f"`{stage}`" for stage in (*ALL_STAGES[1:], ALL_STAGES[0])]
    return f"{', '.join(named[:-1])} or {named[-1]}."


def _number(version: str | None) -> int:
    return int(version) if version and version.isdigit() else -1


def promotion_progress(stage: str, version: str, aliases: dict[str, str], versions: list[dict]) -> Progress:
    """Done when the stage URL answers from `version` (or from a newer version sharing the stage) and that
    version is READY. The backend points a stage at its newest version at once when no version of the
    stage is ready yet, so the alias alone does not mean the version serves."""
    services = {str(v.get("endpoint_version_name")): v.get("service_status") or {} for v in versions}
    ours = services.get(version, {})
    if ours.get("state") == "SERVICE_STATE_FAILED":
        return Progress(failure=f"version {version} failed: {ours.get('message', '')}")
    target = aliases.get(stage)
    serving = services.get(target or "", {})
    done = (target == version or _number(target) > _number(version)) and serving.get("state") == "SERVICE_STATE_READY"
    shown = f"version {version}: {ours.get('state', 'not served yet')} {ours.get('message', '')}".strip()
    return Progress(done=done, message=f"{stage} serves version {target or '(none)'}; {shown}")


class ModelVersionStageResource(RtserveResource):
    @classmethod
    def get_name(cls) -> str:
        return "model_version_stage"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="Puts one version of a registered model in a registry stage (a promotion).",
            attributes=[
                Attribute("id", String(), description="`<name>/<version>`.", computed=True),
                Attribute("name", String(), description="Registered model name.", required=True, requires_replace=True),
                Attribute(
                    "version",
                    String(),
                    description="Model version (a number, as a string). Changing it moves the stage to that "
                    "version in place; the previous version is archived once the new one serves the stage.",
                    required=True,
                ),
                Attribute("stage", String(), description=_stages_text(), required=True),
                Attribute(
                    "archive_existing_versions",
                    Bool(),
                    description="Archive the other versions in the target stage during the transition. "
                    "Default: `false`, as Databricks: several versions may share a stage, all are served and the "
                    "stage URL points to the newest ready one.",
                    optional=True,
                    computed=True,
                    default=False,
                ),
                Attribute(
                    "comment",
                    String(),
                    description="Recorded with the transition in the model's events. "
                    "Changing it re-runs the transition (a no-op for serving) to record the new comment.",
                    optional=True,
                ),
                Attribute(
                    "wait_for_ready",
                    Bool(),
                    description="When serving is enabled for the model and the stage is Staging or Production, "
                    "wait until the stage URL answers from this version (or a newer one in the same stage). "
                    "Default: `true`.",
                    optional=True,
                    computed=True,
                    default=True,
                ),
                Attribute(
                    "invocation_url",
                    String(),
                    description="`<host>/model/<name>/<version>/invocations`.",
                    computed=True,
                ),
                Attribute(
                    "stage_invocation_url",
                    String(),
                    description="`<host>/model-endpoint/<name>/<stage>/invocations` for Staging and Production; "
                    "null for the other stages.",
                    computed=True,
                ),
            ],
            block_types=[TIMEOUTS],
        )

    def validate(self, diags: Diagnostics, type_name: str, config: Config) -> None:
        super().validate(diags, type_name, config)
        validate_timeouts(diags, config)

    def plan(self, ctx: PlanContext, current: State | None, planned: State) -> State:
        config = getattr(ctx, "config", None) or planned
        if config.get("archive_existing_versions") is None:
            planned["archive_existing_versions"] = False
        if config.get("wait_for_ready") is None:
            planned["wait_for_ready"] = True
        name, version, stage = planned.get("name"), planned.get("version"), planned.get("stage")
        if isinstance(name, str) and isinstance(version, str):
            planned["id"] = f"{name}/{version}"
        client = self.provider.client
        if client is not None and isinstance(name, str) and isinstance(version, str) and isinstance(stage, str):
            planned.update(_urls(client, name, version, stage))
        return planned

    # -- CRUD ------------------------------------------------------------------------------------
    def create_with(self, diags: Diagnostics, client: RtserveClient, planned: State) -> State | None:
        if not self._transition(diags, client, planned):
            return None
        state = _complete(client, planned)
        if planned.get("wait_for_ready"):
            self._wait(diags, client, planned, timeout_seconds(planned, "create"))
        return state

    def read_with(self, diags: Diagnostics, client: RtserveClient, current: State) -> State | None:
        name, version = current["name"], current["version"]
        try:
            found = client.get_model_version(name, version)
        except ApiError as error:
            if error.not_found:
                return None
            report_api_error(diags, f"Could not read version {version} of {name!r}", error)
            return current
        if str(found.get("current_stage", "")).lower() != str(current["stage"]).lower():
            return None  # the version left the stage out of band: Terraform plans to put it back
        return _complete(client, current)

    def update_with(self, diags: Diagnostics, client: RtserveClient, current: State, planned: State) -> State | None:
        moved = any(
            current.get(k) != planned.get(k) for k in ("version", "stage", "comment", "archive_existing_versions")
        )
        if not moved:
            return _complete(client, planned)  # only wait_for_ready or timeouts changed
        if not self._transition(diags, client, planned):
            return current
        state = _complete(client, planned)
        if planned.get("wait_for_ready") and not self._wait(diags, client, planned, timeout_seconds(planned, "update")):
            return state
        if current["version"] != planned["version"]:
            # The previous version is no longer declared in its stage: treat it as destroyed.
            self._retire(diags, client, current)
        return state

    def delete_with(self, diags: Diagnostics, client: RtserveClient, current: State) -> None:
        self._retire(diags, client, current)

    def import_with(self, diags: Diagnostics, client: RtserveClient, id: str) -> State | None:  # noqa: A002
        name, _, version = id.strip().rpartition("/")
        if not name or not version:
            diags.add_error("Invalid import ID", f'Expected "<model name>/<version>", got {id!r}.')
            return None
        try:
            found = client.get_model_version(name, version)
        except ApiError as error:
            report_api_error(diags, f"Cannot import version {version} of {name!r}", error)
            return None
        state: State = {
            "name": name,
            "version": version,
            "stage": str(found.get("current_stage") or NO_STAGE),
            "archive_existing_versions": False,
            "comment": None,
            "wait_for_ready": True,
            "timeouts": None,
        }
        return _complete(client, state)

    # -- helpers ---------------------------------------------------------------------------------
    def _transition(self, diags: Diagnostics, client: RtserveClient, planned: State) -> bool:
        name, version, stage = planned["name"], planned["version"], planned["stage"]
        try:
            client.transition_stage(
                name,
                version,
                stage,
                archive_existing_versions=bool(planned.get("archive_existing_versions")),
                comment=planned.get("comment"),
            )
        except ApiError as error:
            report_api_error(diags, f"Could not move version {version} of {name!r} to {stage}", error)
            return False
        return True

    def _retire(self, diags: Diagnostics, client: RtserveClient, state: State) -> None:
        """Archive the version if it is still in the stage `state` put it in."""
        name, version, stage = state["name"], state["version"], str(state["stage"])
        if canonical_stage(stage) not in SERVING_STAGES:
            return
        try:
            found = client.get_model_version(name, version)
            if str(found.get("current_stage", "")).lower() == stage.lower():
                client.transition_stage(
                    name, version, DESTROY_STAGE, archive_existing_versions=False, comment=DESTROY_COMMENT
                )
        except ApiError as error:
            if not error.not_found:
                report_api_error(diags, f"Could not archive version {version} of {name!r}", error)

    def _wait(self, diags: Diagnostics, client: RtserveClient, planned: State, timeout: float) -> bool:
        name, version, stage = planned["name"], planned["version"], canonical_stage(planned["stage"])
        if stage not in SERVING_STAGES:
            return True
        try:
            client.get_status(name)
        except ApiError as error:
            if error.not_found:
                return True  # serving is not enabled for the model: nothing will serve the stage
            report_api_error(diags, f"Could not follow the promotion of {name!r}", error)
            return False

        def check() -> Progress:
            return promotion_progress(stage, version, client.list_version_aliases(name), client.list_versions(name))

        report = WaitReport(
            subject=f"the promotion of {name!r}",
            failed=f"Version {version} of {name!r} cannot serve {stage}: SERVICE_STATE_FAILED",
            late=f"Version {version} of {name!r} does not serve {stage}",
            late_hint="Raise `timeouts` or set `wait_for_ready = false`.",
        )
        return self.wait_for(diags, check, timeout, report)


def _urls(client: RtserveClient, name: str, version: str, stage: str) -> dict[str, str | None]:
    canonical = canonical_stage(stage)
    return {
        "invocation_url": client.version_url(name, version),
        "stage_invocation_url": client.stage_url(name, canonical) if canonical in SERVING_STAGES else None,
    }


def _complete(client: RtserveClient, state: State) -> State:
    return {
        **state,
        "id": f"{state['name']}/{state['version']}",
        **_urls(client, state["name"], state["version"], state["stage"]),
    }
