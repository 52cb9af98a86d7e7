"""A real SMTP server (aiosmtpd) on a free local port that keeps what it receives, for the e-mail tests."""

from __future__ import annotations

import email
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from rtserve.server.process import free_port


@dataclass
class Received:
    recipients: list[str]  # the envelope's RCPT TO
    message: Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])


@dataclass
class Inbox:
    port: int
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        self.received.append(Received(list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"

    def wait_for(self, subject_part: str, timeout: float = 60.0) -> Received:
        """The first message whose subject contains `subject_part`, waiting up to `timeout` s for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.received:
                if subject_part in message.subject:
                    return message
            time.sleep(0.05)
        raise AssertionError(
            f"no e-mail about {subject_part!r} in {timeout:g} s; got {[m.subject for m in self.received]}"
        )


@contextmanager
def smtp_sink() -> Iterator[Inbox]:
    from aiosmtpd.controller import Controller

    inbox = Inbox(free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
