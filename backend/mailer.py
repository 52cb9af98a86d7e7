"""E-mail delivery through the SMTP server in the settings, off the request path and the controller's tick.

`send` only queues (a bounded queue: when it is full the message is dropped, logged and counted); one
daemon thread delivers, with the standard library's smtplib. A dead or slow SMTP server delays only that
thread, bounded by `smtp_timeout_seconds` per connection, and never fails serving.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import ssl
import threading
from collections import Counter
from collections.abc import Sequence
from email.message import EmailMessage

from rtserve.server.settings import Settings

log = logging.getLogger("rtserve.mailer")
QUEUE_SIZE = 100
OUTCOMES = ("sent", "failed", "dropped")


class Mailer:
    def __init__(self, settings: Settings, queue_size: int = QUEUE_SIZE) -> None:
        if settings.smtp_host is None:
            raise ValueError("Mailer needs settings.smtp_host")
        self.settings = settings
        self.counts: Counter[str] = Counter({outcome: 0 for outcome in OUTCOMES})
        self._queue: queue.Queue[EmailMessage | None] = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name="rtserve-mailer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 1.0) -> None:
        """Stop after the message being sent; queued ones are dropped (the thread is a daemon if it hangs)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(timeout)

    def send(self, recipients: Sequence[str], subject: str, body: str) -> None:
        """Queue one message to `recipients`; never blocks, never raises for delivery."""
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message.set_content(body)
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self.counts["dropped"] += 1
            log.warning("e-mail queue full (%d): dropped %r to %s", self._queue.maxsize, subject, message["To"])

    def _run(self) -> None:
        while (message := self._queue.get()) is not None:
            try:
                self._deliver(message)
            except (OSError, smtplib.SMTPException) as exc:  # refused, unreachable, timed out, rejected
                self.counts["failed"] += 1
                log.warning("could not e-mail %r to %s: %s", message["Subject"], message["To"], exc)
            else:
                self.counts["sent"] += 1
                log.info("e-mailed %r to %s", message["Subject"], message["To"])

    def _deliver(self, message: EmailMessage) -> None:
        settings = self.settings
        assert settings.smtp_host is not None  # checked in __init__
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            smtp.send_message(message)
