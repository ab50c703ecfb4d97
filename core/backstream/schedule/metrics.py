"""Prometheus metrics of the scheduled jobs, from the run history and the repositories.

``registry(statuses, records)`` builds a ``prometheus_client`` registry; ``backstream metrics
--textfile DIR`` writes it for node_exporter's textfile collector. Names follow Prometheus
conventions and the exporters people alert on (pgbackrest_exporter, restic-exporter): seconds,
bytes, ``_timestamp_seconds`` for points in time, ``_total`` for counters. ``METRICS`` lists
them all; deploy/prometheus/alerts.yml may use no other (a test checks).

prometheus_client is the ``metrics`` extra, imported when metrics are built.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from backstream.errors import ConfigError
from backstream.repository import redact_url
from backstream.schedule.history import RunRecord
from backstream.schedule.status import JobStatus

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

METRICS: dict[str, str] = {
    "backstream_last_success_timestamp_seconds": "When the job's last successful run ended.",
    "backstream_last_failure_timestamp_seconds": "When the job's last failed run ended.",
    "backstream_last_run_success": "1 if the job's last finished run succeeded, else 0.",
    "backstream_last_duration_seconds": "How long the job's last finished run took.",
    "backstream_job_runs_total": "Finished runs of the job by status (after retries).",
    "backstream_freshness_timestamp_seconds": (
        "When the job last did its work: a backup job's newest good backup, else its last success."
    ),
    "backstream_max_age_seconds": "The job's freshness threshold (max_age).",
    "backstream_backup_bytes": "Size of the job's newest good backup: kind=source (the dump) or stored.",
    "backstream_archive_last_push_timestamp_seconds": "When the newest file of a log archive was archived.",
    "backstream_restore_drill_last_success_timestamp_seconds": "When a verify job's last successful drill ended.",
    "backstream_repository_stored_bytes": "Stored bytes of every good backup in the repository.",
    "backstream_repository_up": "1 if the job's repository could be read, else 0.",
}


def require_prometheus() -> object:
    """prometheus_client, or a ConfigError with the install hint."""
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError(
            "metrics need prometheus_client: pip install 'backstream[metrics]' (or prometheus_client)"
        ) from None
    return prometheus_client


def registry(statuses: Sequence[JobStatus], records: Iterable[RunRecord]) -> CollectorRegistry:
    """The metrics of ``statuses`` (``job_statuses``) and the history ``records``."""
    require_prometheus()
    from prometheus_client import CollectorRegistry, Gauge
    from prometheus_client.core import CounterMetricFamily

    found = CollectorRegistry()

    def gauge(name: str, labels: tuple[str, ...]) -> Gauge:
        return Gauge(name, METRICS[name], labels, registry=found)

    success = gauge("backstream_last_success_timestamp_seconds", ("job", "kind", "repository"))
    failure = gauge("backstream_last_failure_timestamp_seconds", ("job", "kind", "repository"))
    last_ok = gauge("backstream_last_run_success", ("job", "kind", "repository"))
    duration = gauge("backstream_last_duration_seconds", ("job", "kind", "repository"))
    runs = CounterMetricFamily("backstream_job_runs", METRICS["backstream_job_runs_total"], labels=("job", "status"))
    fresh = gauge("backstream_freshness_timestamp_seconds", ("job", "kind", "repository"))
    max_age = gauge("backstream_max_age_seconds", ("job", "kind", "repository"))
    size = gauge("backstream_backup_bytes", ("job", "repository", "kind"))
    archive = gauge("backstream_archive_last_push_timestamp_seconds", ("repository", "archive"))
    drill = gauge("backstream_restore_drill_last_success_timestamp_seconds", ("job", "repository"))
    stored = gauge("backstream_repository_stored_bytes", ("repository",))
    up = gauge("backstream_repository_up", ("job", "repository"))

    tally = Tally((record.job, record.status) for record in records if record.final)
    for (name, outcome), count in sorted(tally.items()):
        runs.add_metric((name, outcome), count)  # a family, not a Counter: no _created sample
    for status in statuses:
        job = status.job
        repository = redact_url(job.repository)
        labels = (job.name, job.kind, repository)
        if status.last_success is not None:
            success.labels(*labels).set(status.last_success.finished_at.timestamp())
            if job.kind == "verify":
                drill.labels(job.name, repository).set(status.last_success.finished_at.timestamp())
        if status.last_failure is not None:
            failure.labels(*labels).set(status.last_failure.finished_at.timestamp())
        last = status.history.last_final
        if last is not None:
            last_ok.labels(*labels).set(1 if last.ok else 0)
            duration.labels(*labels).set(last.duration_seconds)
        moment, _ = status.freshness
        if moment is not None:
            fresh.labels(*labels).set(moment.timestamp())
        if job.max_age is not None:
            max_age.labels(*labels).set(job.max_age.total_seconds())
        if status.newest is not None:
            size.labels(job.name, repository, "source").set(status.newest.plaintext_size)
            size.labels(job.name, repository, "stored").set(status.newest.stored_size)
        up.labels(job.name, repository).set(0 if status.repository_error else 1)
        if status.repository_stored is not None:
            stored.labels(repository).set(status.repository_stored)
        for name, end in status.archive_ends.items():
            archive.labels(repository, name).set(end.timestamp())
    found.register(_Fixed([runs]))
    return found


class _Fixed:
    """A collector of metric families built once (counts from the history, not live counters)."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        return iter(self.families)


def write_textfile(directory: str, found: CollectorRegistry, name: str = "backstream.prom") -> str:
    """Write ``found`` to ``directory/name`` atomically (node_exporter never reads half a file)."""
    from prometheus_client import write_to_textfile

    if not os.path.isdir(directory):
        raise ConfigError(f"--textfile {directory} is not a directory")
    path = os.path.join(directory, name)
    try:
        write_to_textfile(path, found)  # writes a temporary file and renames it
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
