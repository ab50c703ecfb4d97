"""The daemon's HTTP endpoints: ``/metrics``, ``/health`` and ``/health/live``.

A ``wsgiref`` server (the standard library's) in a thread of its own, with prometheus_client's
WSGI app behind ``/metrics``. It serves the scheduler's latest status snapshot and never reads a
repository itself: a scrape costs no storage request and cannot block the event loop.

- ``/metrics``: Prometheus text format (``backstream.schedule.metrics``).
- ``/health``: JSON (``backstream.schedule.health``); 200 when healthy, 503 when a job is past its
  ``max_age`` or no snapshot was taken yet.
- ``/health/live``: 200 while the scheduler's event loop is responsive (its heartbeat is recent),
  else 503; for a liveness probe, which should restart a hung daemon, not a stale backup.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from backstream.errors import ConfigError, os_reason
from backstream.repository.ids import format_time, utc_now
from backstream.schedule.health import UNHEALTHY, health
from backstream.schedule.history import RunRecord
from backstream.schedule.metrics import registry, require_prometheus
from backstream.schedule.status import JobStatus

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

StartResponse = Callable[..., Any]

PATHS = ("/metrics", "/health", "/health/live")
"""What the server serves (anything else is a 404 listing these)."""

LIVE_AFTER = 30.0
"""Seconds without a heartbeat after which ``/health/live`` says the daemon is hung."""


@dataclass(frozen=True)
class StatusSnapshot:
    """What the daemon knew at ``taken_at``: every job's status and the run history."""

    statuses: tuple[JobStatus, ...]
    records: tuple[RunRecord, ...]
    taken_at: datetime


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # a scrape every 15 s is no news
        pass


class StatusServer:
    """Serves the latest ``StatusSnapshot`` at ``address`` (``(host, port)``; port 0 picks one).

    ``start()`` binds (a ConfigError says why it cannot), ``publish()`` replaces the snapshot,
    ``beat()`` records that the event loop is alive, ``close()`` stops serving. The blocking ones
    (``start``, ``publish``, ``close``) belong in a worker thread."""

    def __init__(self, address: tuple[str, int], *, live_after: float = LIVE_AFTER) -> None:
        self.requested = address
        self.live_after = live_after
        self._snapshot: tuple[StatusSnapshot, CollectorRegistry] | None = None
        self._heartbeat = time.monotonic()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        if self._server is None:
            return self.requested
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        require_prometheus()
        host, port = self.requested
        server_class = _Server6 if ":" in host else _Server
        try:
            self._server = make_server(host, port, self.app, server_class, _QuietHandler)
        except OSError as exc:
            raise ConfigError(f"http_address {host}:{port}: cannot listen: {os_reason(exc)}") from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="backstream-http", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def publish(self, snapshot: StatusSnapshot) -> None:
        """Serve ``snapshot`` from now on (its metrics are built here, once)."""
        self._snapshot = (snapshot, registry(snapshot.statuses, snapshot.records))

    def beat(self) -> None:
        self._heartbeat = time.monotonic()

    # --- WSGI ---------------------------------------------------------------------------------

    def app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed", {"error": "only GET and HEAD"})
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path == "/health":
            return self._health(start_response)
        if path == "/health/live":
            silent = time.monotonic() - self._heartbeat
            alive = silent <= self.live_after
            document = {"status": "alive" if alive else "hung", "heartbeat_seconds_ago": round(silent, 3)}
            return _json(start_response, "200 OK" if alive else "503 Service Unavailable", document)
        return _json(start_response, "404 Not Found", {"error": f"no such path {path}", "paths": list(PATHS)})

    def _metrics(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        current = self._snapshot
        if current is None:
            return _json(start_response, "503 Service Unavailable", {"status": "starting"})
        from prometheus_client import make_wsgi_app

        served: Iterable[bytes] = make_wsgi_app(current[1])(environ, start_response)
        return served

    def _health(self, start_response: StartResponse) -> Iterable[bytes]:
        current = self._snapshot
        if current is None:
            return _json(start_response, "503 Service Unavailable", {"status": "starting"})
        snapshot = current[0]
        document = health(snapshot.statuses, snapshot.records, utc_now())
        document["updated_at"] = format_time(snapshot.taken_at)
        healthy = document["status"] != UNHEALTHY
        return _json(start_response, "200 OK" if healthy else "503 Service Unavailable", document)


def _json(start_response: StartResponse, status: str, document: dict[str, Any]) -> Sequence[bytes]:
    body = json.dumps(document, indent=1).encode() + b"\n"
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
