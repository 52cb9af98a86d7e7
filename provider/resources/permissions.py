"""`rtserve_permissions`: who may view, query or manage one serving endpoint, as Databricks' `databricks_permissions`.

The `access_control` blocks are exactly the endpoint's own grants. Create and update PUT them to the
permissions API, so a grant the configuration does not list is removed, the creator's CAN_MANAGE
included. Read keeps only the grants made on the endpoint itself: the backend also lists what every
token inherits from its own permission and the `admins` group, which are not this resource's to
manage. Delete PUTs an empty list: each token keeps its own permission, and ADMIN tokens can always
manage every endpoint.

The blocks form a set: reordering them plans no change. Principals are rtserve's tokens, by name;
the only groups are `users` (every token) and `admins` (fixed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tf.iface import Config, PlanContext, State
from tf.schema import Attribute, Block, Schema
from tf.types import String, Unknown
from tf.utils import Diagnostics

from rtserve import spec
from rtserve.provider.base import report_api_error
from rtserve.provider.blocks import SetNestedBlock
from rtserve.provider.client import ApiError, RtserveClient
from rtserve.provider.resources.crud import RtserveResource
from rtserve.spec import ADMINS_GROUP, PRINCIPAL_KINDS, SpecError

OBJECT_TYPE = "serving-endpoint"
OBJECT_PREFIX = "/serving-endpoints/"

ACCESS_CONTROL = SetNestedBlock(
    "access_control",
    Block(
        description="One grant: exactly one of `user_name`, `group_name` or `service_principal_name`, and the "
        "level it gets. At least one; their order does not matter.",
        attributes=[
            Attribute(
                "user_name",
                String(),
                description="A token's name (rtserve's principals are its tokens, named by `rtserve tokens create`).",
                optional=True,
            ),
            Attribute(
                "group_name",
                String(),
                description="`users` (every token). `admins` cannot be granted to: ADMIN tokens always manage "
                "every endpoint.",
                optional=True,
            ),
            Attribute(
                "service_principal_name",
                String(),
                description="A token's name, as `user_name` (for tokens used by machines).",
                optional=True,
            ),
            Attribute(
                "permission_level",
                String(),
                description="`CAN_VIEW`, `CAN_QUERY` (view and score) or `CAN_MANAGE` (also update, delete and "
                "change permissions).",
                required=True,
            ),
        ],
    ),
    min_items=1,
)


class PermissionsResource(RtserveResource):
    @classmethod
    def get_name(cls) -> str:
        return "permissions"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="The access control list of a serving endpoint: the configured grants replace the "
            "endpoint's own grants exactly (the creator's CAN_MANAGE included).",
            attributes=[
                Attribute("id", String(), description="`/serving-endpoints/<serving_endpoint_id>`.", computed=True),
                Attribute(
                    "serving_endpoint_id",
                    String(),
                    description="The endpoint's id (`rtserve_serving_endpoint.<name>.endpoint_id`), not its name. "
                    "Changing it manages another endpoint's list (replace).",
                    required=True,
                    requires_replace=True,
                ),
                Attribute("object_type", String(), description="`serving-endpoint`.", computed=True),
            ],
            block_types=[ACCESS_CONTROL],
        )

    # -- validation and plan ---------------------------------------------------------------------
    def validate(self, diags: Diagnostics, type_name: str, config: Config) -> None:
        super().validate(diags, type_name, config)
        validate_access_control(diags, (config or {}).get("access_control"))

    def plan(self, ctx: PlanContext, current: State | None, planned: State) -> State:
        planned["id"] = object_id(planned.get("serving_endpoint_id"))
        planned["object_type"] = OBJECT_TYPE
        return planned

    # -- CRUD ------------------------------------------------------------------------------------
    def create_with(self, diags: Diagnostics, client: RtserveClient, planned: State) -> State | None:
        return self._put(diags, client, planned, failed=None)

    def read_with(self, diags: Diagnostics, client: RtserveClient, current: State) -> State | None:
        endpoint_id = current["serving_endpoint_id"]
        try:
            answer = client.get_serving_endpoint_permissions(endpoint_id)
        except ApiError as error:
            if error.not_found:
                return None  # the endpoint is gone: Terraform plans a re-create
            report_api_error(diags, f"Could not read the permissions of serving endpoint {endpoint_id!r}", error)
            return current
        return state_from_answer(current, answer)

    def update_with(self, diags: Diagnostics, client: RtserveClient, current: State, planned: State) -> State | None:
        # A refused PUT changes nothing: the state stays what it was.
        return self._put(diags, client, planned, failed=current)

    def delete_with(self, diags: Diagnostics, client: RtserveClient, current: State) -> None:
        endpoint_id = current["serving_endpoint_id"]
        try:
            client.set_serving_endpoint_permissions(endpoint_id, [])
        except ApiError as error:
            if not error.not_found:  # the endpoint is gone, and its grants with it
                report_api_error(diags, f"Could not remove the permissions of serving endpoint {endpoint_id!r}", error)

    def import_with(self, diags: Diagnostics, client: RtserveClient, id: str) -> State | None:  # noqa: A002
        endpoint_id = id.strip().removeprefix(OBJECT_PREFIX)
        try:
            answer = client.get_serving_endpoint_permissions(endpoint_id)
        except ApiError as error:
            report_api_error(diags, f"Cannot import the permissions of serving endpoint {endpoint_id!r}", error)
            return None
        return state_from_answer({"serving_endpoint_id": endpoint_id}, answer)

    def _put(self, diags: Diagnostics, client: RtserveClient, planned: State, failed: State | None) -> State | None:
        endpoint_id = planned["serving_endpoint_id"]
        try:
            answer = client.set_serving_endpoint_permissions(endpoint_id, request_list(planned["access_control"]))
        except ApiError as error:
            report_api_error(diags, f"Could not set the permissions of serving endpoint {endpoint_id!r}", error)
            return failed
        return state_from_answer(planned, answer)


# -- the pure side ---------------------------------------------------------------------------------
def object_id(endpoint_id: Any) -> Any:
    """The resource's id, `/serving-endpoints/<endpoint id>` (the API's object_id); Unknown until the id is known."""
    return f"{OBJECT_PREFIX}{endpoint_id}" if isinstance(endpoint_id, str) else Unknown


def named_principals(entry: Mapping[str, Any]) -> list[str]:
    """The principal kinds an entry names: set and not empty, or not known yet."""
    return [kind for kind in PRINCIPAL_KINDS if entry.get(kind) not in (None, "")]


def request_list(access_control: list[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The `access_control_list` of the PUT, from the blocks (in a stable order)."""
    entries = []
    for block in access_control:
        [kind] = named_principals(block)
        entries.append({kind: block[kind], "permission_level": block["permission_level"]})
    return sorted(entries, key=lambda e: sorted(e.items()))


def own_grants(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The grants made on the endpoint itself, as `access_control` blocks: inherited entries are left out."""
    grants = []
    for entry in answer.get("access_control_list") or []:
        kinds = [kind for kind in PRINCIPAL_KINDS if entry.get(kind)]
        if not kinds:
            continue
        for permission in entry.get("all_permissions") or []:
            if not permission.get("inherited"):
                block = dict.fromkeys(PRINCIPAL_KINDS) | {kinds[0]: entry[kinds[0]]}
                grants.append(block | {"permission_level": permission.get("permission_level")})
    return grants


def state_from_answer(base: State, answer: Mapping[str, Any]) -> State:
    """`base` (the inputs) with the endpoint's own grants and what the backend says of the object."""
    endpoint_id = base["serving_endpoint_id"]
    return {
        **base,
        "id": object_id(endpoint_id),
        "serving_endpoint_id": endpoint_id,
        "object_type": answer.get("object_type", OBJECT_TYPE),
        "access_control": own_grants(answer),
    }


def validate_access_control(diags: Diagnostics, blocks: Any) -> None:
    """What the backend would refuse, said at plan time: a block naming no principal or several, a level
    that does not exist, the group `admins`, a principal given two levels. Unknown values are skipped."""
    if not isinstance(blocks, list):
        return
    path = ["access_control"]
    seen: dict[tuple[str, str], Any] = {}
    for block in blocks:
        if not isinstance(block, dict):
            continue
        named = named_principals(block)
        if len(named) != 1:
            diags.add_error(
                "Invalid access_control block",
                f"Each access_control block names exactly one of {', '.join(PRINCIPAL_KINDS)}; "
                f"one names {len(named)}" + (f" ({', '.join(named)})." if named else "."),
                path,
            )
            continue
        kind = named[0]
        principal, level = block[kind], block.get("permission_level")
        if isinstance(level, str):
            try:
                spec.check_permission_level(level)
            except SpecError as error:
                diags.add_error(
                    "Invalid permission_level",
                    f"{error.field} must be {error.rule}; got {level!r} for {kind} {principal!r}.",
                    path,
                )
        if kind == "group_name" and principal == ADMINS_GROUP:
            diags.add_error(
                "The group admins cannot be granted to",
                "ADMIN tokens (the group 'admins') can always manage every endpoint; this cannot be changed. "
                "Remove the block; grant to a token by name, or to the group 'users' (every token).",
                path,
            )
        if isinstance(principal, str) and isinstance(level, str):
            previous = seen.setdefault((kind, principal), level)
            if previous != level:
                diags.add_error(
                    "A principal is granted twice",
                    f"{kind} {principal!r} has two access_control blocks ({previous} and {level}); the endpoint keeps "
                    "one level per principal. Keep one block with the level it needs.",
                    path,
                )
