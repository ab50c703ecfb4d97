"""Verification levels, the comparison of a restored database's catalog with the one recorded at
backup time, and the report (every check pass/fail/skip with detail, pass rate, overall status).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backstream.errors import ConfigError
from backstream.protocols import CheckResult

LEVELS: tuple[str, ...] = ("quick", "standard", "comprehensive")
"""Verification levels, each including the checks of the ones before it."""

PASS, FAIL, SKIP = "pass", "fail", "skip"


def check_level(level: str) -> str:
    """``level`` if it is a known level, else a one-line ConfigError."""
    if level not in LEVELS:
        raise ConfigError(f"unknown verification level {level!r} (known: {', '.join(LEVELS)})")
    return level


def includes(level: str, wanted: str) -> bool:
    """True when checks of level ``wanted`` run at ``level``."""
    return LEVELS.index(level) >= LEVELS.index(wanted)


@dataclass(frozen=True)
class Report:
    """The outcome of verifying one restored database."""

    level: str
    results: tuple[CheckResult, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.status == PASS)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r.status == FAIL)

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.results if r.status == SKIP)

    @property
    def pass_rate(self) -> float | None:
        """Passed / (passed + failed); None when every check was skipped."""
        ran = self.passed + self.failed
        return self.passed / ran if ran else None

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.passed > 0

    @property
    def status(self) -> str:
        return PASS if self.ok else FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "status": self.status,
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "pass_rate": self.pass_rate,
            **dict(self.extra),
            "checks": [{"name": r.name, "status": r.status, "detail": r.detail} for r in self.results],
        }

    def table(self) -> str:
        """A readable table: one line per check, then the summary line."""
        width = max([len(r.name) for r in self.results] + [5])
        lines = [f"{'CHECK'.ljust(width)}  STATUS  DETAIL"]
        lines += [f"{r.name.ljust(width)}  {r.status.upper().ljust(6)}  {r.detail}" for r in self.results]
        rate = "n/a" if self.pass_rate is None else f"{self.pass_rate:.0%}"
        lines.append(
            f"{self.status.upper()}: {self.passed} passed, {self.failed} failed, {self.skipped} skipped "
            f"(pass rate {rate}, level {self.level})"
        )
        return "\n".join(lines)


def compare(expected: Mapping[str, Any] | None, actual: Mapping[str, Any], level: str) -> list[CheckResult]:
    """Checks of the restored catalog ``actual`` against ``expected`` (recorded at backup time)."""
    results = [CheckResult("connect", PASS, f"connected, {len(actual.get('tables', {}))} tables")]
    if not expected or "tables" not in expected:
        why = (expected or {}).get("error") or "no catalog was recorded at backup time"
        results.append(CheckResult("table count", SKIP, str(why)))
        return results
    want: Mapping[str, Any] = expected["tables"]
    have: Mapping[str, Any] = actual.get("tables", {})
    if expected.get("key_format", 1) < actual.get("key_format", 1):  # recorded by an older backstream
        legacy: Mapping[str, str] = actual.get("legacy_keys", {})
        have = {legacy.get(key, key): info for key, info in have.items()}
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    if missing or extra:
        parts = [f"missing {', '.join(missing)}" if missing else "", f"unexpected {', '.join(extra)}" if extra else ""]
        detail = "; ".join(part for part in parts if part)
        results.append(CheckResult("table count", FAIL, f"{len(have)} tables, expected {len(want)}: {detail}"))
    else:
        results.append(CheckResult("table count", PASS, f"{len(have)} tables"))
    recorded = str(expected.get("level", "quick"))
    for table in sorted(set(want) & set(have)):
        results += _table_checks(table, want[table], have[table], level, recorded)
    return results


_DETAIL_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("standard", "rows", "rows"),
    ("standard", "columns", "columns"),
    ("comprehensive", "indexes", "indexes"),
    ("comprehensive", "constraints", "constraints"),
    ("comprehensive", "checksum", "checksum"),
)


def _table_checks(
    table: str, want: Mapping[str, Any], have: Mapping[str, Any], level: str, recorded: str
) -> list[CheckResult]:
    results: list[CheckResult] = []
    for needed, key, label in _DETAIL_CHECKS:
        if not includes(level, needed):
            continue
        name = f"{label} {table}"
        if want.get(key) is None:
            why = "not recorded at backup time"
            if not includes(recorded, needed):
                why += f" (recorded at level {recorded})"
            elif key == "checksum" and want.get("checksum_skipped"):
                why = str(want["checksum_skipped"])
            results.append(CheckResult(name, SKIP, why))
            continue
        if have.get(key) is None:
            results.append(CheckResult(name, FAIL, "could not be read from the restored database"))
            continue
        results.append(_compare_value(name, key, want[key], have[key]))
    return results


def _compare_value(name: str, key: str, want: Any, have: Any) -> CheckResult:
    if key == "rows":
        if want == have:
            return CheckResult(name, PASS, f"{have} rows")
        return CheckResult(name, FAIL, f"{have} rows, expected {want}")
    if key == "checksum":
        if _checksum_method(want) != _checksum_method(have):
            return CheckResult(
                name,
                SKIP,
                f"recorded as {_checksum_method(want)}, computed now as {_checksum_method(have)}: not comparable",
            )
        if want == have:
            return CheckResult(name, PASS, f"content checksum {_short_checksum(have)}")
        detail = f"content differs: checksum {_short_checksum(have)}, expected {_short_checksum(want)}"
        return CheckResult(name, FAIL, detail)
    if key == "columns":
        want_cols, have_cols = [tuple(c) for c in want], [tuple(c) for c in have]
        if want_cols == have_cols:
            return CheckResult(name, PASS, f"{len(have_cols)} columns")
        return CheckResult(name, FAIL, f"columns differ: {_diff(want_cols, have_cols)}")
    # indexes / constraints: name -> definition
    want_map, have_map = dict(want), dict(have)
    if want_map == have_map:
        return CheckResult(name, PASS, f"{len(have_map)} {key}")
    return CheckResult(name, FAIL, f"{key} differ: {_diff(sorted(want_map.items()), sorted(have_map.items()))}")


def _short_checksum(checksum: Any) -> str:
    """``copy-sha256:`` and the first 16 hex digits of the hash (the method alone says nothing)."""
    method, sep, digest = str(checksum).rpartition(":")
    return f"{method}{sep}{digest[:16]}"


def _checksum_method(value: Any) -> str:
    """``copy-sha256`` for ``copy-sha256:<hex>``; checksums without a prefix are the older md5 kind."""
    text = str(value)
    return text.split(":", 1)[0] if ":" in text else "md5"


def _diff(want: Sequence[Any], have: Sequence[Any]) -> str:
    missing = [w for w in want if w not in have]
    extra = [h for h in have if h not in want]
    parts = []
    if missing:
        parts.append("missing " + ", ".join(_short(m) for m in missing[:5]))
    if extra:
        parts.append("unexpected " + ", ".join(_short(e) for e in extra[:5]))
    return "; ".join(parts) or "order differs"


def _short(item: Any) -> str:
    if isinstance(item, tuple):
        return " ".join(str(part) for part in item)
    return str(item)
