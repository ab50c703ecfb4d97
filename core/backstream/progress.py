"""What jobs and checks report their progress to: a callable that takes byte counts as they go by,
and that may also be told how many bytes to expect (so a display can show a percent and an ETA).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

Progress = Callable[[int], None]
"""Called with the number of bytes that just went by (source bytes on backup, stored bytes on
restore and check), possibly from a worker thread, possibly from several at once."""


@runtime_checkable
class SizedProgress(Protocol):
    """Optional on a ``Progress``: told the total to expect once a job knows it (a restore from
    its manifest, a backup from its source's ``estimated_size()``, a check from the manifests it
    read). ``estimate`` says the total is a guess that the byte count may pass or fall short of."""

    def __call__(self, size: int) -> None: ...

    def expect(self, total: int, *, estimate: bool = False) -> None:
        """The bytes to expect in all; may be called again with a better figure."""
        ...


def expect_total(progress: Progress | None, total: int | None, *, estimate: bool = False) -> None:
    """Tell ``progress`` the total if it can take one (a plain callable is left alone)."""
    if total is not None and total >= 0 and isinstance(progress, SizedProgress):
        progress.expect(total, estimate=estimate)
