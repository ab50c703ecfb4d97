"""Runtime helpers every layer may use: running a coroutine function on the event loop backstream needs.

The command line and plugins' commands call ``run_async``; nothing here knows about argparse.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


def run_async(func: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine function on asyncio (the backend backstream needs: psycopg and s3fs)."""
    return anyio.run(func, backend="asyncio")
