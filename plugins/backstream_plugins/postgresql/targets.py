"""Recovery targets for a point-in-time restore: time, LSN, xid or ``immediate``, and their PostgreSQL settings.

Also picks the base backup a target needs: the newest good one that ended before the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backstream import ConfigError
from backstream.repository import Manifest

from backstream_plugins.postgresql.walnames import format_lsn, parse_lsn

PHYSICAL_KIND = "postgresql-physical"


@dataclass(frozen=True)
class RecoveryTarget:
    """At most one of time / lsn / xid / immediate; none = replay all archived WAL."""

    time: str | None = None
    lsn: str | None = None
    xid: str | None = None
    immediate: bool = False

    @classmethod
    def parse(
        cls, *, time: str | None = None, lsn: str | None = None, xid: str | None = None, target: str | None = None
    ) -> RecoveryTarget:
        given = [
            name for name, value in (("--target-time", time), ("--target-lsn", lsn), ("--target-xid", xid)) if value
        ]
        if target:
            if target != "immediate":
                raise ConfigError(f"--target must be 'immediate', not {target!r}")
            given.append("--target immediate")
        if len(given) > 1:
            raise ConfigError(f"give one recovery target, not {' and '.join(given)}")
        if time:
            parse_target_time(time)
        if lsn:
            lsn = format_lsn(parse_lsn(lsn))
        if xid and not xid.strip().isdigit():
            raise ConfigError(f"--target-xid must be a transaction id (a number), not {xid!r}")
        return cls(time=time, lsn=lsn, xid=xid.strip() if xid else None, immediate=target == "immediate")

    @property
    def describe(self) -> str:
        if self.time:
            return f"time {self.time}"
        if self.lsn:
            return f"LSN {self.lsn}"
        if self.xid:
            return f"xid {self.xid}"
        return "the end of the base backup (immediate)" if self.immediate else "the end of the archived WAL"

    def settings(self) -> dict[str, str]:
        """The ``recovery_target*`` settings for postgresql.auto.conf."""
        values: dict[str, str] = {}
        if self.time:
            values["recovery_target_time"] = self.time
        elif self.lsn:
            values["recovery_target_lsn"] = self.lsn
        elif self.xid:
            values["recovery_target_xid"] = self.xid
        elif self.immediate:
            values["recovery_target"] = "immediate"
        else:
            return values
        values["recovery_target_action"] = "promote"
        return values

    def allows(self, manifest: Manifest) -> bool:
        """True when ``manifest``'s base backup ends no later than the target (it can reach it)."""
        if self.time:
            return manifest.finished_at <= parse_target_time(self.time)
        if self.lsn:
            stop = manifest.source.metadata.get("stop_lsn")
            return stop is not None and parse_lsn(str(stop)) <= parse_lsn(self.lsn)
        return True


def parse_target_time(text: str) -> datetime:
    """``2026-11-25 14:30:00+00`` -> an aware datetime; a time without a zone is refused (ambiguous)."""
    raw = text.strip()
    candidate = raw.replace("T", " ")
    if len(candidate) >= 3 and candidate[-3] in "+-" and candidate[-2:].isdigit() and ":" in candidate[:-3]:
        candidate += ":00"  # "+00" -> "+00:00"
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(candidate)
    except ValueError:
        raise ConfigError(f"--target-time {text!r} is not a time like '2026-11-25 14:30:00+00'") from None
    if value.tzinfo is None:
        raise ConfigError(f"--target-time {text!r} has no time zone; add one, e.g. '{raw}+00'")
    return value


def choose_backup(manifests: list[Manifest], target: RecoveryTarget) -> Manifest | None:
    """The newest good physical base backup that can reach ``target`` (None if there is none)."""
    usable = [m for m in manifests if m.ok and m.source.kind == PHYSICAL_KIND and target.allows(m)]
    return usable[-1] if usable else None
