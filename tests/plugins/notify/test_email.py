"""The ``email`` notifier against a real SMTP server on loopback (aiosmtpd).

The server demands STARTTLS before AUTH (with a throwaway certificate the notifier is told to
trust through ``cafile``) and checks the login; the test reads the mail that arrived.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from backstream import BackstreamError, Plugins
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fixtures.notifications import NOTE


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, bytes]] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.messages.append((envelope, envelope.original_content or b""))
        return "250 OK"


def authenticate(server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"backstream", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Controller, Mailbox, Path]]:
    cert, key = certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    yield controller, mailbox, cert
    controller.stop()


def channel(controller: Controller, cert: Path, **options: Any) -> Any:
    defaults = {
        "host": "127.0.0.1",
        "port": controller.port,
        "username": "backstream",
        "password": "s3cret",
        "from": "backstream@db1.example.org",
        "to": ["dba@example.org", "oncall@example.org"],
        "cafile": str(cert),
        "timeout": 10,
    }
    return Plugins.load().notifiers().get("email").create({**defaults, **options})


def test_the_mail_arrives_over_starttls_after_login(smtp: tuple[Controller, Mailbox, Path]) -> None:
    controller, mailbox, cert = smtp
    anyio.run(channel(controller, cert).send, NOTE)
    ((envelope, raw),) = mailbox.messages
    assert envelope.rcpt_tos == ["dba@example.org", "oncall@example.org"]
    mail = message_from_bytes(raw)
    assert mail["Subject"] == "[backstream] nightly failed on db1: pg_dump: connection refused"
    assert mail["From"] == "backstream@db1.example.org"
    body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "pg_dump: connection refused" in body and "attempts" in body


def test_a_wrong_password_is_one_error_line(smtp: tuple[Controller, Mailbox, Path]) -> None:
    controller, mailbox, cert = smtp
    with pytest.raises(BackstreamError, match="login refused") as caught:
        anyio.run(channel(controller, cert, password="wrong").send, NOTE)
    assert "\n" not in str(caught.value) and mailbox.messages == []


def test_a_server_certificate_that_is_not_trusted_is_refused(smtp: tuple[Controller, Mailbox, Path]) -> None:
    controller, mailbox, cert = smtp
    options = {"cafile": None}
    with pytest.raises(BackstreamError, match="CERTIFICATE_VERIFY_FAILED"):
        anyio.run(channel(controller, cert, **options).send, NOTE)
    assert mailbox.messages == []


def test_an_unreachable_server_is_one_error_line() -> None:
    email = Plugins.load().notifiers().get("email")
    sender = email.create({"host": "127.0.0.1", "port": 9, "from": "a@b.example", "to": ["c@d.example"], "timeout": 2})
    with pytest.raises(BackstreamError, match=r"email via 127\.0\.0\.1:9"):
        anyio.run(sender.send, NOTE)
