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
