"""The schedule file: top-level settings and ``[jobs.NAME]`` tables, validated into frozen specs.

Every mistake is one ``ConfigError`` line naming the file, the table and the key
(``daemon.toml: [jobs.nightly] schedule: ...``); docs/scheduling.md lists every key.
"""

from __future__ import annotations

import os
import random
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from backstream.errors import ConfigError
from backstream.retention import Policy, format_duration, parse_duration
from backstream.schedule.cron import CronSchedule, parse_schedule, zone
from backstream.schedule.notify import NOTIFY_ON, NotifyPolicy

REPO_ENV = "BACKSTREAM_REPO"
STATE_ENV = "BACKSTREAM_STATE_DIR"
CONFIG_ENV = "BACKSTREAM_SCHEDULE"

KINDS = ("backup", "verify", "check", "prune", "verify-pitr")
"""What a scheduled job does: the ``backstream`` command its child process runs."""

SCHEDULE_KEYS = frozenset(
    {"kind", "schedule", "timezone", "jitter", "timeout", "retries", "max_age", "warn_age", "notify", "env"}
)
COMMON_KEYS = frozenset({"repository", "storage_options", "key_options"})
KIND_KEYS: dict[str, frozenset[str]] = {
    "backup": frozenset(
        {"source", "compress", "encrypt", "cipher", "format", "jobs", "source_options", "catalog", "retention"}
    ),
    "verify": frozenset({"backup", "level", "scratch"}),
    "check": frozenset({"read_data"}),
    "prune": frozenset({"retention"}),
    "verify-pitr": frozenset({"source", "wait"}),
}
"""Keys of a job beside the scheduling and repository keys, by kind; a backup's are those of a
``backstream run`` job file."""

TOP_KEYS = frozenset(
    {
        "state_dir",
        "max_concurrent",
        "timezone",
        "shutdown_grace",
        "kill_after",
        "trigger_poll",
        "defaults",
        "jobs",
        "notifiers",
        "http_address",
        "status_interval",
    }
)
KEY_OPTIONS = frozenset({"passphrase_file", "keystore", "audit_log"})
"""Key-provider options a scheduled job may set (each is a ``backstream`` command-line option)."""
RETENTION_KEYS = {
    "keep_last": "keep_last",
    "keep_within": "keep_within",
    "keep_hourly": "hourly",
    "keep_daily": "daily",
    "keep_weekly": "weekly",
    "keep_monthly": "monthly",
    "keep_yearly": "yearly",
}
RETRY_KEYS = frozenset({"attempts", "delay", "max_delay"})
NOTIFY_KEYS = frozenset({"notifiers", "on", "remind_every"})
LEVELS = ("quick", "standard", "comprehensive")
CATALOG_LEVELS = ("off", *LEVELS)
FORMATS = ("plain", "custom", "directory")
WARN_FRACTION = 0.8
_RNG = random.Random()
"""Without ``warn_age``, ``status --check`` warns at this fraction of ``max_age``."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retries after a failed attempt: ``delay`` doubling per retry up to ``max_delay``, with jitter."""

    retries: int = 0
    delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(minutes=10)

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the first): between half and all of
        ``min(max_delay, delay * 2 ** (retry - 1))`` ("equal jitter"), so retries of jobs that
        failed together spread out."""
        ceiling = min(self.max_delay.total_seconds(), self.delay.total_seconds() * 2.0 ** (retry - 1))
        return ceiling * (rng or _RNG).uniform(0.5, 1.0)


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job, validated. ``options`` holds the kind's own keys (``KIND_KEYS``)."""

    name: str
    kind: str
    schedule: CronSchedule
    repository: str
    options: Mapping[str, Any] = field(default_factory=dict)
    storage_options: Mapping[str, str] = field(default_factory=dict)
    key_options: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    jitter: timedelta = timedelta(0)
    timeout: timedelta | None = None
    retry: RetryPolicy = RetryPolicy()
    retention: Policy | None = None
    max_age: timedelta | None = None
    warn_age: timedelta | None = None
    notify: NotifyPolicy = field(default_factory=NotifyPolicy)

    @property
    def source(self) -> str | None:
        source = self.options.get("source")
        return source if isinstance(source, str) else None

    @property
    def warn_after(self) -> timedelta | None:
        """The age at which ``status --check`` warns (``warn_age``, else 80 % of ``max_age``)."""
        if self.warn_age is not None:
            return self.warn_age
        return None if self.max_age is None else self.max_age * WARN_FRACTION


@dataclass(frozen=True)
class NotifierSpec:
    """One ``[notifiers.NAME]`` table: the notifier plugin (``type``, default NAME) and its options."""

    name: str
    type: str
    options: Mapping[str, Any]
    where: str = "<schedule>"


@dataclass(frozen=True)
class ScheduleConfig:
    """A whole schedule file: where state lives, the limits, the notifiers and the jobs by name."""

    jobs: Mapping[str, JobSpec]
    state_dir: Path
    path: str | None = None
    max_concurrent: int = 2
    shutdown_grace: timedelta = timedelta(seconds=60)
    kill_after: timedelta = timedelta(seconds=30)
    trigger_poll: float = 1.0
    timezone: str = "UTC"
    notifiers: Mapping[str, NotifierSpec] = field(default_factory=dict)
    http_address: tuple[str, int] | None = None
    """Where the daemon serves ``/metrics`` and ``/health`` (None: it serves nothing)."""
    status_interval: timedelta = timedelta(seconds=60)
    """How often the daemon re-reads the repositories for ``/metrics``, ``/health`` and stale notices."""


def default_state_dir() -> Path:
    """``$BACKSTREAM_STATE_DIR``, else /var/lib/backstream for root, else ``$XDG_STATE_HOME/backstream``
    (``~/.local/state/backstream``)."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    if os.geteuid() == 0:
        return Path("/var/lib/backstream")
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "backstream"


def default_config_path() -> Path:
    """``$BACKSTREAM_SCHEDULE``, else /etc/backstream/schedule.toml for root, else
    ``$XDG_CONFIG_HOME/backstream/schedule.toml`` (``~/.config/...``)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    if os.geteuid() == 0:
        return Path("/etc/backstream/schedule.toml")
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "backstream" / "schedule.toml"


def repository_key(url: str) -> str:
    """What makes two repository URLs the same repository for the one-at-a-time rule: a local path
    made absolute (``file://`` or not), any other URL without its trailing slashes."""
    if "://" not in url or url.startswith("file://"):
        path = url.removeprefix("file://")
        return "file://" + os.path.normpath(os.path.abspath(os.path.expanduser(path)))
    return url.rstrip("/")


def load_config(path: str | os.PathLike[str]) -> ScheduleConfig:
    """Read and validate the schedule file at ``path``."""
    where = os.fspath(path)
    try:
        with open(where, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read schedule file {where}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from exc
    return parse_config(document, path=where)


def parse_config(document: Mapping[str, Any], *, path: str | None = None) -> ScheduleConfig:
    """Validate a parsed schedule file (``path`` names it in errors and anchors relative paths)."""
    label = path or "<schedule>"
    top = _Table(label, None, document)
    top.refuse_unknown(TOP_KEYS)
    base = Path(path).resolve().parent if path else Path.cwd()
    state = top.string("state_dir")
    state_dir = default_state_dir() if state is None else (base / Path(state).expanduser())
    timezone = top.zone("timezone") or "UTC"
    defaults = top.table("defaults")
    jobs_table = top.table("jobs")
    jobs: dict[str, JobSpec] = {}
    for name, table in jobs_table.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"{label}: [jobs] {name}: must be a table ([jobs.{name}])")
        jobs[name] = job_from_table(name, {**defaults, **table}, where=label, timezone=timezone)
    notifiers = _notifiers(label, top.table("notifiers"))
    for job in jobs.values():
        for name in job.notify.notifiers:
            if name not in notifiers:
                known = ", ".join(sorted(notifiers)) or "none"
                raise ConfigError(
                    f"{label}: [jobs.{job.name}.notify] notifiers: no [notifiers.{name}] table (notifiers: {known})"
                )
    return ScheduleConfig(
        jobs=jobs,
        state_dir=state_dir,
        path=path,
        max_concurrent=top.positive_int("max_concurrent") or 2,
        shutdown_grace=top.duration("shutdown_grace") or timedelta(seconds=60),
        kill_after=top.duration("kill_after") or timedelta(seconds=30),
        trigger_poll=(top.duration("trigger_poll") or timedelta(seconds=1)).total_seconds() or 1.0,
        timezone=timezone,
        notifiers=notifiers,
        http_address=_address(top, "http_address"),
        status_interval=_positive(top, "status_interval") or timedelta(seconds=60),
    )


def _positive(table: _Table, key: str) -> timedelta | None:
    value = table.duration(key)
    if value is not None and not value:
        table.fail(key, "must be longer than 0s")
    return value


def _address(table: _Table, key: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; port 0 picks a free one) as (host, port)."""
    text = table.string(key)
    if text is None:
        return None
    return parse_address(text, lambda problem: table.fail(key, problem))


def parse_address(text: str, fail: Callable[[str], NoReturn]) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` as (host, port); ``fail`` is called with the problem."""
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        fail(f'must be "HOST:PORT" (e.g. "127.0.0.1:9811"), not {text!r}')
    return host, int(port)


def _notifiers(label: str, tables: Mapping[str, Any]) -> dict[str, NotifierSpec]:
    found: dict[str, NotifierSpec] = {}
    for name, values in tables.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"{label}: [notifiers] {name}: must be a table ([notifiers.{name}])")
        table = _Table(label, f"notifiers.{name}", values)
        kind = table.string("type") or name
        found[name] = NotifierSpec(name, kind, {k: v for k, v in values.items() if k != "type"}, where=label)
    return found


def job_from_table(name: str, table: Mapping[str, Any], *, where: str = "<schedule>", timezone: str = "UTC") -> JobSpec:
    """One job from its table (the ``[defaults]`` keys already merged in)."""
    if not name or any(c in name for c in "/\\\n") or name.startswith("."):
        raise ConfigError(f"{where}: [jobs] {name!r}: a job name must be non-empty, without / or \\")
    job = _Table(where, f"jobs.{name}", table)
    kind = job.string("kind") or "backup"
    if kind not in KINDS:
        job.fail("kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
    job.refuse_unknown(SCHEDULE_KEYS | COMMON_KEYS | KIND_KEYS[kind], what=f"a {kind} job")
    expression = job.string("schedule")
    if expression is None:
        job.fail("schedule", 'missing: every job needs schedule = "CRON" (e.g. "0 2 * * *" or "@daily")')
    tz = job.zone("timezone") or timezone
    try:
        schedule = parse_schedule(expression, tz)
    except ConfigError as exc:
        job.fail("schedule", str(exc))
    repository = job.string("repository") or os.environ.get(REPO_ENV)
    if not repository:
        job.fail("repository", f'missing: set repository = "URL" (here or in [defaults]) or {REPO_ENV}')
    options = _kind_options(job, kind)
    retention = _retention(job, required=kind == "prune")
    max_age = job.duration("max_age")
    warn_age = job.duration("warn_age")
    if warn_age is not None and max_age is None:
        job.fail("warn_age", "needs max_age")
    if warn_age is not None and max_age is not None and warn_age >= max_age:
        job.fail("warn_age", f"must be shorter than max_age ({format_duration(max_age)})")
    key_options = job.string_table("key_options")
    unknown_keys = sorted(set(key_options) - KEY_OPTIONS)
    if unknown_keys:
        job.fail("key_options", f"unknown key(s) {', '.join(unknown_keys)} (known: {', '.join(sorted(KEY_OPTIONS))})")
    timeout = job.duration("timeout")
    if timeout is not None and not timeout:
        job.fail("timeout", "must be longer than 0s")
    return JobSpec(
        name=name,
        kind=kind,
        schedule=schedule,
        repository=repository,
        options=options,
        storage_options=job.string_table("storage_options"),
        key_options=key_options,
        env=job.string_table("env"),
        jitter=job.duration("jitter") or timedelta(0),
        timeout=timeout,
        retry=_retries(job),
        retention=retention,
        max_age=max_age,
        warn_age=warn_age,
        notify=_notify(job),
    )


def _kind_options(job: _Table, kind: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if kind in ("backup", "verify-pitr"):
        source = job.string("source")
        if not source:
            job.fail("source", 'missing: a backup needs source = "URL"')
        options["source"] = source
    if kind == "backup":
        for key in ("compress", "cipher"):
            if (value := job.string(key)) is not None:
                options[key] = value
        if "encrypt" in job.values:
            encrypt = job.values["encrypt"]
            refs = [encrypt] if isinstance(encrypt, str) else encrypt
            if not isinstance(refs, list) or not all(isinstance(ref, str) and ref for ref in refs):
                job.fail("encrypt", "must be a key reference or a list of them")
            options["encrypt"] = list(refs)
        if (fmt := job.choice("format", FORMATS)) is not None:
            options["format"] = fmt
        if (jobs := job.positive_int("jobs")) is not None:
            options["jobs"] = jobs
        if (catalog := job.choice("catalog", CATALOG_LEVELS)) is not None:
            options["catalog"] = catalog
        options["source_options"] = job.string_table("source_options")
    elif kind == "verify":
        options["backup"] = job.string("backup") or "latest"
        options["level"] = job.choice("level", LEVELS) or "comprehensive"
        if (scratch := job.string("scratch")) is not None:
            options["scratch"] = scratch
    elif kind == "check":
        options["read_data"] = job.boolean("read_data")
    elif kind == "verify-pitr" and (wait := job.duration("wait")) is not None:
        options["wait"] = wait.total_seconds()
    return options


def _retention(job: _Table, *, required: bool) -> Policy | None:
    if "retention" not in job.values:
        if required:
            job.fail("retention", "missing: a prune job needs a retention table (e.g. keep_daily = 7)")
        return None
    table = job.sub("retention")
    table.refuse_unknown(frozenset(RETENTION_KEYS))
    values: dict[str, Any] = {}
    for key, field_name in RETENTION_KEYS.items():
        if key == "keep_within":
            values[field_name] = table.duration(key)
        else:
            values[field_name] = table.positive_int(key)
    policy = Policy(**values)
    if policy.is_empty():
        job.fail("retention", "keeps nothing: set at least one of " + ", ".join(RETENTION_KEYS))
    return policy


def _retries(job: _Table) -> RetryPolicy:
    if "retries" not in job.values:
        return RetryPolicy()
    value = job.values["retries"]
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            job.fail("retries", "must be 0 or more")
        return RetryPolicy(retries=value)
    table = job.sub("retries", hint="a number of retries or a table {attempts, delay, max_delay}")
    table.refuse_unknown(RETRY_KEYS)
    attempts = table.positive_int("attempts")
    if attempts is None:
        table.fail("attempts", "missing: how many attempts in all (1 = no retry)")
    delay = table.duration("delay") or RetryPolicy.delay
    max_delay = table.duration("max_delay") or max(RetryPolicy.max_delay, delay)
    if max_delay < delay:
        table.fail("max_delay", f"must not be shorter than delay ({format_duration(delay)})")
    return RetryPolicy(retries=attempts - 1, delay=delay, max_delay=max_delay)


def _notify(job: _Table) -> NotifyPolicy:
    if "notify" not in job.values:
        return NotifyPolicy()
    table = job.sub("notify")
    table.refuse_unknown(NOTIFY_KEYS)
    notifiers = table.string_list("notifiers")
    if not notifiers:
        table.fail("notifiers", 'missing: the notifiers to use, e.g. notifiers = ["webhook"]')
    on = table.string_list("on") if "on" in table.values else sorted(NotifyPolicy.on)
    unknown = sorted(set(on) - NOTIFY_ON)
    if unknown:
        table.fail("on", f"unknown event(s) {', '.join(unknown)} (known: {', '.join(sorted(NOTIFY_ON))})")
    return NotifyPolicy(notifiers=tuple(notifiers), on=frozenset(on), remind_every=table.duration("remind_every"))


class _Table:
    """One TOML table being validated, with the typed getters that name file, table and key."""

    def __init__(self, where: str, name: str | None, values: Mapping[str, Any]) -> None:
        self.where = where
        self.name = name
        self.values = values

    def fail(self, key: str, problem: str) -> NoReturn:
        table = f" [{self.name}]" if self.name else ""
        raise ConfigError(f"{self.where}:{table} {key}: {problem}")

    def refuse_unknown(self, known: frozenset[str], *, what: str | None = None) -> None:
        unknown = sorted(set(self.values) - known)
        if unknown:
            kind = f" for {what}" if what else ""
            self.fail(unknown[0], f"unknown key{kind} (known: {', '.join(sorted(known))})")

    def sub(self, key: str, *, hint: str = "a table") -> _Table:
        value = self.values[key]
        if not isinstance(value, Mapping):
            self.fail(key, f"must be {hint}")
        return _Table(self.where, f"{self.name}.{key}" if self.name else key, value)

    def table(self, key: str) -> dict[str, Any]:
        if key not in self.values:
            return {}
        return dict(self.sub(key).values)

    def string(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(key, f"must be a string, not {_type(value)}")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str | None:
        value = self.string(key)
        if value is not None and value not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def zone(self, key: str) -> str | None:
        value = self.string(key)
        if value is not None:
            try:
                zone(value)
            except ValueError as exc:
                self.fail(key, str(exc))
        return value

    def boolean(self, key: str) -> bool:
        value = self.values.get(key, False)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, not {_type(value)}")
        return value

    def positive_int(self, key: str) -> int | None:
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.fail(key, f"must be a positive integer, not {value!r}")
        return value

    def duration(self, key: str) -> timedelta | None:
        """A duration: ``"90s"``, ``"12h"``, ``"1d12h"`` or a number of seconds."""
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value < 0:
                self.fail(key, "must not be negative")
            return timedelta(seconds=value)
        if not isinstance(value, str):
            self.fail(key, f'must be a duration such as "30s", "2h" or "7d", not {_type(value)}')
        try:
            return parse_duration(value)
        except ConfigError:
            self.fail(key, f'cannot read duration {value!r}: use e.g. "30s", "2h", "7d"')

    def string_list(self, key: str) -> list[str]:
        value = self.values.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            self.fail(key, "must be a list of strings")
        return list(value)

    def string_table(self, key: str) -> dict[str, str]:
        """A table of scalars, as the strings the command line takes (true -> ``true``)."""
        result: dict[str, str] = {}
        for name, value in self.table(key).items():
            if isinstance(value, bool):
                result[name] = str(value).lower()
            elif isinstance(value, str | int | float):
                result[name] = str(value)
            else:
                self.sub(key).fail(name, f"must be a string, number or boolean, not {_type(value)}")
        return result


def _type(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
