"""Shared pytest configuration: loads the server fixture modules and pins anyio to asyncio.

Fixture modules live in tests/fixtures/; each starts a real server on loopback when first used.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).parent
sys.path.insert(0, str(_HERE))

pytest_plugins = sorted(
    f"fixtures.{path.stem}" for path in (_HERE / "fixtures").glob("*.py") if not path.stem.startswith("_")
)


@pytest.fixture
def anyio_backend() -> str:
    """backstream runs on asyncio (psycopg async and s3fs are asyncio-bound)."""
    return "asyncio"


SERVER_FIXTURES = frozenset({"postgres_server", "mariadb_server", "moto_server", "server_side_backstream"})
"""Fixtures that start a database, S3/KMS or key-vault server (or need the postgres OS user)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a server ``servers``: ``scripts/test`` runs those on one
    interpreter and the rest on every interpreter it finds (``-m "not servers"``)."""
    for item in items:
        if isinstance(item, pytest.Function) and SERVER_FIXTURES.intersection(item.fixturenames):
            item.add_marker(pytest.mark.servers)
