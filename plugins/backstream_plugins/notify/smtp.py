"""The ``email`` notifier: each notification as a plain-text mail over SMTP.

STARTTLS on the submission port (587, the default) unless ``starttls = false``; implicit TLS on
port 465; ``username`` with ``password_env`` or ``password_file`` logs in (only over TLS).
smtplib runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import anyio.to_thread
from backstream import BackstreamError, ConfigError, Register, hookimpl
from backstream.notify import Notification
from backstream.protocols import NotificationChannel, Notifier

from backstream_plugins.notify.options import NotifierOptions

SMTPS_PORT = 465


class EmailChannel:
    """Sends notifications through one SMTP server."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        starttls: bool,
        username: str | None,
        password: str | None,
        sender: str,
        recipients: list[str],
        timeout: float,
        cafile: str | None,
    ) -> None:
        self.host, self.port, self.starttls = host, port, starttls
        self.username, self.password = username, password
        self.sender, self.recipients = sender, recipients
        self.timeout, self.cafile = timeout, cafile

    async def send(self, notification: Notification) -> None:
        await anyio.to_thread.run_sync(self._send, self.message(notification))

    def message(self, notification: Notification) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = notification.subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=notification.host or None)
        fields = notification.to_dict()
        lines = [notification.subject, ""]
        lines += [f"{key:14} {value}" for key, value in fields.items() if key != "subject" and value is not None]
        message.set_content("\n".join(lines) + "\n")
        return message

    def _send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context(cafile=self.cafile)
        try:
            client: smtplib.SMTP
            if self.port == SMTPS_PORT:
                client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with client:
                if self.starttls and self.port != SMTPS_PORT:
                    client.starttls(context=context)
                if self.username:
                    client.login(self.username, self.password or "")
                client.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise BackstreamError(f"email via {self.host}:{self.port}: login refused ({exc.smtp_code})") from None
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise BackstreamError(f"email via {self.host}:{self.port}: {exc}") from None


class Email:
    """The ``email`` notifier: ``host``, ``port`` (587), ``starttls`` (true), ``username``,
    ``password_env`` / ``password_file``, ``from``, ``to`` (a list), ``timeout`` (30 s) and
    ``cafile`` (a CA bundle to trust, for a private mail server)."""

    name = "email"

    def create(self, options: Mapping[str, Any]) -> NotificationChannel:
        read = NotifierOptions("email", options)
        host = read.required("host")
        port = read.count("port", 587)
        starttls = read.flag("starttls", port != SMTPS_PORT)
        username = read.text("username")
        password = read.secret("password")
        if username and not (starttls or port == SMTPS_PORT):
            raise ConfigError("username: logging in without TLS would send the password in clear; keep starttls = true")
        channel = EmailChannel(
            host=host,
            port=port,
            starttls=starttls,
            username=username,
            password=password,
            sender=read.required("from"),
            recipients=read.texts("to"),
            timeout=read.number("timeout", 30),
            cafile=read.text("cafile"),
        )
        read.done()
        return channel


@hookimpl
def backstream_register_notifiers(register: Register[Notifier]) -> None:
    register.add("email", Email())
