"""The mailer against a real SMTP server (aiosmtpd), a dead one, and a full queue."""

from __future__ import annotations

import time

import pytest

from rtserve.server.mailer import Mailer
from rtserve.server.process import free_port
from rtserve.server.settings import Settings
from tests.smtp_sink import smtp_sink

pytestmark = pytest.mark.unit


def wait_until(done, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_message_reaches_every_recipient_with_its_subject_and_sender():
    with smtp_sink() as inbox:
        mailer = Mailer(Settings(smtp_host="127.0.0.1", smtp_port=inbox.port, smtp_from="serving@example.com"))
        mailer.start()
        try:
            mailer.send(["ops@example.com", "ml@example.com"], "endpoint updated", "config version 2 serves")
            received = inbox.wait_for("endpoint updated", timeout=10)
        finally:
            mailer.close()

    assert received.recipients == ["ops@example.com", "ml@example.com"]
    assert received.message["From"] == "serving@example.com"
    assert "config version 2 serves" in received.message.get_payload()
    assert mailer.counts["sent"] == 1 and mailer.counts["failed"] == 0


def test_a_dead_smtp_server_neither_blocks_nor_raises_and_the_failure_is_counted():
    mailer = Mailer(Settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout_seconds=2))
    mailer.start()
    try:
        started = time.monotonic()
        mailer.send(["ops@example.com"], "endpoint updated", "body")
        assert time.monotonic() - started < 0.1  # queued, not sent on the caller's thread
        wait_until(lambda: mailer.counts["failed"] == 1)
    finally:
        mailer.close()
    assert mailer.counts["sent"] == 0


def test_past_its_queue_messages_are_dropped_and_counted():
    mailer = Mailer(Settings(smtp_host="127.0.0.1", smtp_port=free_port()), queue_size=1)  # not started: nothing drains

    mailer.send(["ops@example.com"], "first", "body")
    mailer.send(["ops@example.com"], "second", "body")

    assert mailer.counts["dropped"] == 1
