"""The rules of serving endpoints' access control lists, without a backend."""

from __future__ import annotations

import pytest

from rtserve.server.auth import Permission, Principal
from rtserve.server.control.endpoint_permissions import (
    Grant,
    effective_permission,
    merge,
    parse_access_control_list,
    permission_levels_response,
    permissions_response,
)
from rtserve.server.errors import ApiError

pytestmark = pytest.mark.unit
KNOWN = {"alice", "ci-bot"}


def principal(name: str, permission: Permission) -> Principal:
    return Principal(token_id="t1", name=name, permission=permission)


def test_a_grant_adds_to_a_tokens_own_permission_and_never_takes_from_it():
    grants = [Grant("user_name", "alice", Permission.CAN_QUERY)]

    assert effective_permission(principal("alice", Permission.CAN_VIEW), grants) == Permission.CAN_QUERY
    assert effective_permission(principal("alice", Permission.CAN_MANAGE), grants) == Permission.CAN_MANAGE
    assert effective_permission(principal("bob", Permission.CAN_VIEW), grants) == Permission.CAN_VIEW
    assert effective_permission(principal("root", Permission.ADMIN), []) == Permission.ADMIN


def test_the_users_group_covers_every_token_and_a_service_principal_is_a_token_by_name():
    grants = [
        Grant("group_name", "users", Permission.CAN_QUERY),
        Grant("service_principal_name", "ci-bot", Permission.CAN_MANAGE),
    ]

    assert effective_permission(principal("anyone", Permission.CAN_VIEW), grants) == Permission.CAN_QUERY
    assert effective_permission(principal("ci-bot", Permission.CAN_VIEW), grants) == Permission.CAN_MANAGE


def test_an_access_control_list_is_parsed_with_one_grant_per_principal_the_highest():
    grants = parse_access_control_list(
        [
            {"user_name": "alice", "permission_level": "CAN_VIEW"},
            {"user_name": "alice", "permission_level": "CAN_QUERY"},
            {"group_name": "users", "permission_level": "CAN_VIEW"},
        ],
        KNOWN,
    )

    assert sorted(grants, key=lambda g: g.kind) == [
        Grant("group_name", "users", Permission.CAN_VIEW),
        Grant("user_name", "alice", Permission.CAN_QUERY),
    ]


@pytest.mark.parametrize(
    ("acl", "says"),
    [
        ({"user_name": "alice"}, "must be a list"),
        (["alice"], "must be an object"),
        ([{"permission_level": "CAN_VIEW"}], "exactly one of"),
        ([{"user_name": "alice", "group_name": "users", "permission_level": "CAN_VIEW"}], "exactly one of"),
        ([{"user_name": "alice", "permission_level": "CAN_RUN"}], "CAN_VIEW, CAN_QUERY, CAN_MANAGE"),
        ([{"user_name": "alice", "permission_level": "ADMIN"}], "CAN_VIEW, CAN_QUERY, CAN_MANAGE"),
        ([{"user_name": "alice"}], "permission_level"),
        ([{"user_name": 7, "permission_level": "CAN_VIEW"}], "must be a string"),
        ([{"user_name": "mallory", "permission_level": "CAN_VIEW"}], "rtserve tokens create --name mallory"),
        ([{"group_name": "admins", "permission_level": "CAN_VIEW"}], "cannot be changed"),
        ([{"group_name": "data-science", "permission_level": "CAN_VIEW"}], "does not exist"),
    ],
)
def test_a_bad_access_control_list_is_refused_saying_what_is_wrong(acl: object, says: str):
    with pytest.raises(ApiError) as raised:
        parse_access_control_list(acl, KNOWN)

    assert raised.value.status == 400 and raised.value.error_code == "INVALID_PARAMETER_VALUE"
    assert says in raised.value.message


def test_patch_sets_the_named_principals_and_keeps_the_rest():
    current = [Grant("user_name", "alice", Permission.CAN_MANAGE), Grant("user_name", "ci-bot", Permission.CAN_VIEW)]

    merged = merge(current, [Grant("user_name", "ci-bot", Permission.CAN_QUERY)])

    assert merged == [
        Grant("user_name", "alice", Permission.CAN_MANAGE),
        Grant("user_name", "ci-bot", Permission.CAN_QUERY),
    ]


def test_the_response_lists_direct_grants_then_what_tokens_inherit_then_admins():
    response = permissions_response(
        "abc",
        [Grant("user_name", "alice", Permission.CAN_QUERY)],
        {"alice": Permission.CAN_VIEW, "ops": Permission.CAN_MANAGE, "admin": Permission.ADMIN},
    )

    assert response["object_id"] == "/serving-endpoints/abc" and response["object_type"] == "serving-endpoint"
    acl = response["access_control_list"]
    assert acl[0] == {
        "user_name": "alice",
        "display_name": "alice",
        "all_permissions": [
            {"permission_level": "CAN_QUERY", "inherited": False},
            {"permission_level": "CAN_VIEW", "inherited": True, "inherited_from_object": ["/serving-endpoints/"]},
        ],
    }
    assert acl[1]["user_name"] == "ops" and acl[1]["all_permissions"][0]["permission_level"] == "CAN_MANAGE"
    assert acl[2]["group_name"] == "admins" and acl[2]["all_permissions"][0]["inherited"] is True
    assert len(acl) == 3  # ADMIN tokens appear through the admins group


def test_the_permission_levels_are_the_three_grantable_ones():
    levels = [level["permission_level"] for level in permission_levels_response()["permission_levels"]]

    assert levels == ["CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"]
