"""The ``webhook`` notifier against a real HTTP server on loopback.

The receiver checks the signature as the docs tell users to (HMAC-SHA256 over
``<timestamp>.<body>`` with the shared secret); a 5xx, 408 or 429 is retried, another 4xx is
not, errors hide the URL's path, and a server
that cannot be reached is one error line after the retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import pytest
from backstream import BackstreamError, Plugins
from fixtures.notifications import NOTE

SECRET = "a shared secret"


class Receiver(ThreadingHTTPServer):
    """Answers with the next status of ``answers`` (200 once they run out) and keeps what came in."""

    def __init__(self, answers: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answers = answers
        self.received: list[tuple[dict[str, str], bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(({k: v for k, v in self.headers.items()}, body))
        status = self.server.answers.pop(0) if self.server.answers else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(list(getattr(request, "param", [])))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def channel(url: str, **options: Any) -> Any:
    return Plugins.load().notifiers().get("webhook").create({"url": url, "secret": SECRET, "backoff": 0.05, **options})


def verify(headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does: recompute the signature over the raw body, refuse a stale timestamp."""
    timestamp = headers["X-Backstream-Timestamp"]
    expected = "sha256=" + hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) < 300
    return fresh and hmac.compare_digest(expected, headers["X-Backstream-Signature"])


def test_the_notification_arrives_as_signed_json(receiver: Receiver) -> None:
    anyio.run(channel(receiver.url).send, NOTE)
    ((headers, body),) = receiver.received
    assert verify(headers, body)
    assert headers["Content-Type"] == "application/json"
    document = json.loads(body)
    assert document["event"] == "failure" and document["job"] == "nightly"
    assert document["subject"] == "[backstream] nightly failed on db1: pg_dump: connection refused"
    datetime.strptime(document["finished_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def test_a_tampered_body_fails_the_receivers_check(receiver: Receiver) -> None:
    anyio.run(channel(receiver.url).send, NOTE)
    ((headers, body),) = receiver.received
    assert not verify(headers, body.replace(b"nightly", b"nightlY"))


@pytest.mark.parametrize("receiver", [[500, 503]], indirect=True)
def test_a_server_error_is_retried_until_it_answers(receiver: Receiver) -> None:
    anyio.run(channel(receiver.url).send, NOTE)
    assert len(receiver.received) == 3
    assert all(verify(headers, body) for headers, body in receiver.received)


@pytest.mark.parametrize("receiver", [[403]], indirect=True)
def test_a_refusal_is_not_retried(receiver: Receiver) -> None:
    with pytest.raises(BackstreamError, match="refused with HTTP 403"):
        anyio.run(channel(receiver.url).send, NOTE)
    assert len(receiver.received) == 1


@pytest.mark.parametrize("receiver", [[500, 500, 500, 500, 500]], indirect=True)
def test_a_server_that_keeps_failing_is_one_error_after_the_retries(receiver: Receiver) -> None:
    with pytest.raises(BackstreamError, match=r"failed with HTTP 500"):
        anyio.run(channel(receiver.url, retries=2).send, NOTE)
    assert len(receiver.received) == 3


@pytest.mark.parametrize("receiver", [[429, 408]], indirect=True)
def test_too_many_requests_and_a_request_timeout_are_retried(receiver: Receiver) -> None:
    anyio.run(channel(receiver.url).send, NOTE)
    assert len(receiver.received) == 3


@pytest.mark.parametrize("receiver", [[500, 500]], indirect=True)
def test_errors_do_not_show_the_urls_path_which_may_be_a_token(receiver: Receiver) -> None:
    token_url = receiver.url.replace("/hook", "/services/T000/B000/XXXXSECRET")
    with pytest.raises(BackstreamError) as caught:
        anyio.run(channel(token_url, retries=1).send, NOTE)
    assert "XXXXSECRET" not in str(caught.value) and "services" not in str(caught.value)
    assert f"http://127.0.0.1:{receiver.server_address[1]}/…" in str(caught.value)


def test_an_unreachable_url_is_one_error_line() -> None:
    with pytest.raises(BackstreamError, match="cannot reach it") as caught:
        anyio.run(channel("http://127.0.0.1:9/hook", retries=1, timeout=2).send, NOTE)
    assert "\n" not in str(caught.value)
