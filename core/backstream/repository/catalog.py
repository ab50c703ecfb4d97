"""Statistics over a repository's manifests: count, success rate, sizes, newest good backup.

Pure functions of the manifests (committed backups) and failure records (failed attempts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backstream.repository.ids import format_time
from backstream.repository.manifest import Manifest


@dataclass(frozen=True)
class RepositoryStats:
    """What ``backstream stats`` reports."""

    backups: int
    failed: int
    plaintext_size: int
    stored_size: int
    newest: Manifest | None
    oldest: Manifest | None
    sources: dict[str, int]

    @property
    def attempts(self) -> int:
        return self.backups + self.failed

    @property
    def success_rate(self) -> float | None:
        """Committed backups / attempts that reached an end (None with no attempts)."""
        return self.backups / self.attempts if self.attempts else None

    @property
    def ratio(self) -> float | None:
        """Stored bytes / plaintext bytes (None when nothing is stored)."""
        return self.stored_size / self.plaintext_size if self.plaintext_size else None

    def to_dict(self) -> dict[str, Any]:
        def brief(manifest: Manifest | None) -> dict[str, Any] | None:
            if manifest is None:
                return None
            return {
                "backup_id": manifest.backup_id,
                "finished_at": format_time(manifest.finished_at),
                "source": manifest.source.url,
            }

        return {
            "backups": self.backups,
            "failed": self.failed,
            "attempts": self.attempts,
            "success_rate": self.success_rate,
            "plaintext_size": self.plaintext_size,
            "stored_size": self.stored_size,
            "ratio": self.ratio,
            "newest": brief(self.newest),
            "oldest": brief(self.oldest),
            "sources": dict(self.sources),
        }


def compute_stats(manifests: Sequence[Manifest], failures: Sequence[Manifest] = ()) -> RepositoryStats:
    """Aggregate committed ``manifests`` and recorded ``failures`` (order does not matter)."""
    good = sorted((m for m in manifests if m.ok), key=Manifest.sort_key)
    sources: dict[str, int] = {}
    for manifest in good:
        sources[manifest.source.url] = sources.get(manifest.source.url, 0) + 1
    return RepositoryStats(
        backups=len(good),
        failed=len(failures) + sum(1 for m in manifests if not m.ok),
        plaintext_size=sum(m.plaintext_size for m in good),
        stored_size=sum(m.stored_size for m in good),
        newest=good[-1] if good else None,
        oldest=good[0] if good else None,
        sources=sources,
    )
