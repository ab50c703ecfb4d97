"""backstream.PgSession: psycopg in worker threads for async code on any anyio backend; rows back
from a query, nothing from a statement, and a transaction that applies all of its statements or none."""

from __future__ import annotations

import anyio
import psycopg
import pytest
from backstream_plugins.postgresql.session import PgSession
from fixtures.postgres import PostgresServer


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_rows_from_a_query_nothing_from_a_statement(
    postgres_server: PostgresServer, postgres_database: str, backend: str
) -> None:
    async def main() -> None:
        async with await PgSession.connect(postgres_server.url(postgres_database)) as session:
            assert await session.execute("CREATE TABLE t (v int)") == []
            assert await session.execute("INSERT INTO t VALUES (%s), (%s)", (1, 2)) == []
            assert await session.execute("SELECT v FROM t ORDER BY v") == [(1,), (2,)]

    anyio.run(main, backend=backend)


def test_a_transaction_applies_all_of_its_statements_or_none(
    postgres_server: PostgresServer, postgres_database: str
) -> None:
    async def main() -> list[tuple[int]]:
        async with await PgSession.connect(postgres_server.url(postgres_database)) as session:
            await session.execute("CREATE TABLE t (v int)")
            with pytest.raises(psycopg.errors.UndefinedTable):
                await session.execute_in_transaction(["INSERT INTO t VALUES (1)", "INSERT INTO missing VALUES (2)"])
            await session.execute_in_transaction(["INSERT INTO t VALUES (3)", "INSERT INTO t VALUES (4)"])
            return await session.execute("SELECT v FROM t ORDER BY v")

    assert anyio.run(main) == [(3,), (4,)]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_cancelled_caller_cancels_the_running_query_and_the_session_still_works(
    postgres_server: PostgresServer, postgres_database: str, backend: str
) -> None:
    async def main() -> tuple[float, list[tuple[int]]]:
        async with await PgSession.connect(postgres_server.url(postgres_database)) as session:
            started = anyio.current_time()
            with anyio.move_on_after(0.5):
                await session.execute("SELECT pg_sleep(30)")
            waited = anyio.current_time() - started
            return waited, await session.execute("SELECT 1")

    waited, rows = anyio.run(main, backend=backend)
    assert waited < 10  # not the query's 30 s
    assert rows == [(1,)]
