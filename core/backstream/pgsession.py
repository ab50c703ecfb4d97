"""A PostgreSQL session for async code on any anyio backend: a synchronous psycopg connection whose
every call runs in a worker thread (psycopg's own async connections work on asyncio only).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import anyio.to_thread

from backstream.errors import missing_dependency


def import_psycopg() -> Any:
    """The psycopg module, or MissingDependencyError with the install hint."""
    try:
        import psycopg
    except ImportError as exc:
        raise missing_dependency("psycopg", "postgresql") from exc
    return psycopg


class PgSession:
    """``session = await PgSession.connect(conninfo, **params)`` (autocommit), then ``await
    session.execute(query, params)`` -> the result rows (empty for a statement without any), and
    ``await session.close()`` or ``async with``. psycopg's errors pass through unchanged.

    A call that is running when its task is cancelled finishes first (a thread cannot be
    interrupted); backstream's control queries are short."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @classmethod
    async def connect(cls, conninfo: str = "", **params: Any) -> PgSession:
        psycopg = import_psycopg()
        connection = await anyio.to_thread.run_sync(lambda: psycopg.connect(conninfo, autocommit=True, **params))
        return cls(connection)

    async def execute(self, query: Any, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return await anyio.to_thread.run_sync(self._execute, query, params)

    async def execute_in_transaction(self, statements: Sequence[Any]) -> None:
        """Run ``statements`` in one transaction: all of them take effect, or none."""

        def run() -> None:
            with self._connection.transaction():
                for statement in statements:
                    self._connection.execute(statement)

        await anyio.to_thread.run_sync(run)

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._connection.close)

    async def __aenter__(self) -> PgSession:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    def _execute(self, query: Any, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        cursor = self._connection.execute(query, params)
        return list(cursor.fetchall()) if cursor.description is not None else []
