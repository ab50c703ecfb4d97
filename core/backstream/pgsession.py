"""A PostgreSQL session for async code on any anyio backend: a synchronous psycopg connection whose
every call runs in a worker thread (psycopg's own async connections work on asyncio only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import anyio.to_thread

from backstream.errors import missing_dependency

T = TypeVar("T")


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

    When the calling task is cancelled while a query runs, the server is asked to cancel the
    query (``cancel_safe``), the worker thread is waited for, and the cancellation goes on: a
    cancelled job does not wait for a query stuck behind a lock."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @classmethod
    async def connect(cls, conninfo: str = "", **params: Any) -> PgSession:
        psycopg = import_psycopg()
        connection = await anyio.to_thread.run_sync(lambda: psycopg.connect(conninfo, autocommit=True, **params))
        return cls(connection)

    async def execute(self, query: Any, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return await self._call(lambda: self._execute(query, params))

    async def execute_in_transaction(self, statements: Sequence[Any]) -> None:
        """Run ``statements`` in one transaction: all of them take effect, or none."""

        def run() -> None:
            with self._connection.transaction():
                for statement in statements:
                    self._connection.execute(statement)

        await self._call(run)

    async def _call(self, work: Callable[[], T]) -> T:
        """``work()`` in a worker thread; on cancellation, cancel the server's query first."""
        done = anyio.Event()
        outcome: list[Any] = []

        async def run() -> None:
            try:
                outcome.append(await anyio.to_thread.run_sync(_capture, work))
            finally:
                done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                await done.wait()
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._connection.cancel_safe)
                raise
        value, error = outcome[0]
        if error is not None:
            raise error
        result: T = value
        return result

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


def _capture(work: Callable[[], T]) -> tuple[T | None, BaseException | None]:
    """``work()``'s value or exception, as a pair (an exception is raised in the caller's task)."""
    try:
        return work(), None
    except Exception as error:
        return None, error
