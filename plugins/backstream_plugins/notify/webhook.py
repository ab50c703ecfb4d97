"""The ``webhook`` notifier: each notification as a JSON POST, signed with HMAC-SHA256.

Headers: ``X-Backstream-Timestamp`` (unix seconds) and ``X-Backstream-Signature:
sha256=<hex>``, the HMAC-SHA256 with the shared ``secret`` of ``<timestamp>.<body>``; a receiver
recomputes it over the raw body and refuses a stale timestamp (replays), as with Stripe's or
GitHub's webhooks. Retries with backoff on a connection error, a 5xx, 408 or 429 answer (a
``Retry-After`` of up to a minute is honoured); other 4xx answers are final. Errors show the URL
without its path, which for chat webhooks (Slack, Teams, Discord) is the secret. The request runs
in a worker thread (urllib), never on the event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.to_thread
from backstream import BackstreamError, ConfigError, Register, hookimpl
from backstream.notify import Notification
from backstream.protocols import NotificationChannel, Notifier

from backstream_plugins.notify.options import NotifierOptions

SIGNATURE_HEADER = "X-Backstream-Signature"
TIMESTAMP_HEADER = "X-Backstream-Timestamp"
RETRIED_4XX = frozenset({408, 429})
"""Client errors that say "later", not "no": retried like a 5xx."""
MAX_RETRY_AFTER = 60.0


def shown_url(url: str) -> str:
    """``https://hooks.example.org/…``: the URL for messages, without the path that may hold a token."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    hidden = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{netloc}{hidden}"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: what the signature header holds for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookChannel:
    """POSTs notifications to ``url``."""

    def __init__(self, url: str, secret: str | None, *, timeout: float, retries: int, backoff: float) -> None:
        self.url, self.secret = url, secret
        self.timeout, self.retries, self.backoff = timeout, retries, backoff

    async def send(self, notification: Notification) -> None:
        body = json.dumps(notification.to_dict(), sort_keys=True).encode()
        wait: float | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await anyio.sleep(self.backoff * 2 ** (attempt - 1) if wait is None else wait)
            problem, wait = await anyio.to_thread.run_sync(self._post, body)
            if problem is None:
                return
            if problem.startswith("refused"):
                break  # a 4xx: the receiver said no; asking again will not change that
        raise BackstreamError(f"webhook {shown_url(self.url)}: {problem}")

    def _post(self, body: bytes) -> tuple[str | None, float | None]:
        """Send once: (None on a 2xx, else what went wrong; the Retry-After delay if one was given)."""
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": "backstream", TIMESTAMP_HEADER: timestamp}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, timestamp, body)
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read(65536)
            return None, None
        except urllib.error.HTTPError as exc:
            final = 400 <= exc.code < 500 and exc.code not in RETRIED_4XX
            kind = "refused" if final else "failed"
            return f"{kind} with HTTP {exc.code} {exc.reason}", _retry_after(exc.headers.get("Retry-After"))
        except urllib.error.URLError as exc:
            return f"cannot reach it: {exc.reason}", None
        except OSError as exc:  # a timeout while reading the answer, a reset connection
            return f"cannot reach it: {exc}", None


def _retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (at most a minute); None when absent or a date."""
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), MAX_RETRY_AFTER)


class Webhook:
    """The ``webhook`` notifier: ``url`` (http or https), ``secret`` / ``secret_env`` /
    ``secret_file`` (signs each request), ``timeout`` (seconds, default 10), ``retries`` (default
    3) and ``backoff`` (seconds before the first retry, doubling; default 2)."""

    name = "webhook"

    def create(self, options: Mapping[str, Any]) -> NotificationChannel:
        read = NotifierOptions("webhook", options)
        url = read.required("url")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"url: must be an http:// or https:// URL, not {url!r}")
        secret = read.secret("secret")
        channel = WebhookChannel(
            url,
            secret,
            timeout=read.number("timeout", 10),
            retries=read.count("retries", 3),
            backoff=read.number("backoff", 2),
        )
        read.done()
        return channel


@hookimpl
def backstream_register_notifiers(register: Register[Notifier]) -> None:
    register.add("webhook", Webhook())
