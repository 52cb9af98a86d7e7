import base64

import pytest

from rtserve.server.auth import Permission, Principal, token_from_header

pytestmark = pytest.mark.unit


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_bearer_and_basic_token_forms_are_accepted():
    assert token_from_header("Bearer abc") == "abc"
    assert token_from_header("bearer   abc ") == "abc"
    assert token_from_header(basic("token", "abc")) == "abc"


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Token abc", basic("alice", "abc"), basic("token", ""), "Basic !!!notbase64"],
)
def test_anything_else_carries_no_token(header):
    assert token_from_header(header) is None


def test_permissions_include_the_lower_levels():
    manager = Principal("t", "ci", Permission.CAN_MANAGE)
    assert manager.can(Permission.CAN_QUERY) and manager.can(Permission.CAN_VIEW)
    assert not manager.can(Permission.ADMIN)
    assert not Principal("t", "reader", Permission.CAN_VIEW).can(Permission.CAN_QUERY)
