"""How backstream talks to PostgreSQL: ``connect`` (the one way every command and check opens a
connection) and ``PgSession``, a synchronous psycopg connection for async code on any anyio
backend, every call in a worker thread (psycopg's own async connections work on asyncio only).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import anyio.to_thread
from backstream import SourceError, missing_dependency

T = TypeVar("T")

CONNECT_TIMEOUT = 10
"""Seconds to wait for the server (libpq's ``connect_timeout``) unless the caller says otherwise."""
APPLICATION_NAME = "backstream"
"""What the server shows in pg_stat_activity for backstream's sessions (unless the URL names one)."""


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
        """A session on a new autocommit connection; psycopg's errors pass through (``connect``
        below translates them and sets the timeout: use that)."""
        connection = await anyio.to_thread.run_sync(lambda: _open(conninfo, params))
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


def connect_blocking(conninfo: str = "", *, describe: str = "", **params: Any) -> Any:
    """The one way backstream opens a PostgreSQL connection (blocking; run it in a worker thread):
    autocommit, ``connect_timeout`` (default 10 s) and ``application_name`` (backstream) unless
    given; ``conninfo`` is a URL or conninfo string, ``params`` override its parts. A failure is a
    one-line SourceError, ``cannot connect {describe}: ...`` (``describe`` names the target without
    its password, e.g. ``to database 'x' on host:5432``; by default the conninfo's host and database).
    """
    psycopg = import_psycopg()
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    params["connect_timeout"] = str(params["connect_timeout"])
    if "application_name" not in params and "application_name" not in conninfo:
        params["application_name"] = APPLICATION_NAME
    try:
        return _open(conninfo, params)
    except psycopg.Error as exc:
        raise SourceError(f"cannot connect {describe or _where(conninfo, params)}: {one_line(exc)}") from exc


async def connect(conninfo: str = "", *, describe: str = "", **params: Any) -> PgSession:
    """``connect_blocking`` in a worker thread, as a ``PgSession``."""
    return PgSession(await anyio.to_thread.run_sync(lambda: connect_blocking(conninfo, describe=describe, **params)))


def one_line(exc: BaseException) -> str:
    """A driver error's message on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _open(conninfo: str, params: dict[str, Any]) -> Any:
    return import_psycopg().connect(conninfo, autocommit=True, **params)


def _where(conninfo: str, params: dict[str, Any]) -> str:
    """``to database 'x' on host:port`` from what is known without the server; never a password."""
    psycopg = import_psycopg()
    try:
        parts: dict[str, Any] = {**psycopg.conninfo.conninfo_to_dict(conninfo), **params}
    except psycopg.Error:
        parts = dict(params)
    host = parts.get("host") or os.environ.get("PGHOST") or "localhost"
    port = parts.get("port") or os.environ.get("PGPORT") or "5432"
    name = parts.get("dbname") or "(default)"
    return f"to database {name!r} on {host}:{port}"


def _capture(work: Callable[[], T]) -> tuple[T | None, BaseException | None]:
    """``work()``'s value or exception, as a pair (an exception is raised in the caller's task)."""
    try:
        return work(), None
    except Exception as error:
        return None, error
