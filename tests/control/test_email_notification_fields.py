"""Parsing a serving endpoint's email_notifications: what is accepted, and the 400 for what is not."""

from __future__ import annotations

import pytest

from rtserve.server.control.email_notifications import EmailNotifications, parse_email_notifications
from rtserve.server.errors import ApiError
from rtserve.spec import is_email_address

pytestmark = pytest.mark.unit


def test_both_lists_are_kept_in_order_once_each_and_stored_like_the_sdk_sends_them():
    parsed = parse_email_notifications(
        {"on_update_failure": ["ops@example.com", "ml@example.com", "ops@example.com"], "on_update_success": []}
    )

    assert parsed == EmailNotifications(on_update_failure=("ops@example.com", "ml@example.com"))
    assert parsed.to_stored() == {"on_update_failure": ["ops@example.com", "ml@example.com"]}
    assert EmailNotifications.from_stored(parsed.to_stored()) == parsed


@pytest.mark.parametrize("absent", [None, {}, {"on_update_failure": None}])
def test_absent_or_empty_notifications_notify_nobody(absent):
    assert parse_email_notifications(absent).to_stored() == {}


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"on_update_failure": ["ops@example.com", "ops"]}, "'ops'"),
        ({"on_update_success": ["a@example.com\nBcc: b@example.com"]}, "on_update_success"),
        ({"on_update_success": ["Ops <ops@example.com>"]}, "'Ops <ops@example.com>'"),
        ({"on_update_success": "ops@example.com"}, "must be a list"),
        ({"on_update_pending": ["ops@example.com"]}, "on_update_pending"),
        (["ops@example.com"], "must be an object"),
        ({"on_update_failure": [f"u{i}@example.com" for i in range(51)]}, "at most 50"),
    ],
)
def test_a_bad_value_is_a_400_naming_it(value, named):
    with pytest.raises(ApiError) as raised:
        parse_email_notifications(value)

    assert raised.value.status == 400 and raised.value.error_code == "INVALID_PARAMETER_VALUE"
    assert named in raised.value.message


@pytest.mark.parametrize(
    ("address", "accepted"),
    [
        ("ops@example.com", True),
        ("ops+serving@ml.example.org", True),
        ("ops@localhost", False),
        ("@example.com", False),
        ("ops@", False),
        ("two@at@example.com", False),
        (" ops@example.com", False),
        (42, False),
    ],
)
def test_plain_addresses_only(address, accepted):
    assert is_email_address(address) is accepted
