"""The toy engine's files: a samplekv store is a directory with ``data.kv`` (``key=value`` lines, a
later line wins, ``#`` starts a comment) and ``journal/NNNNNN.log``, the changes made since, one
numbered file per rotation; the highest number is the file the store is writing now.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

from backstream import ConfigError

SCHEME = "samplekv"
DATA_FILE = "data.kv"
JOURNAL_DIR = "journal"
_JOURNAL_NAME = re.compile(r"(\d{6})\.log")


def store_dir(url: str) -> str:
    """The directory of ``samplekv:///abs/dir``."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME or parts.netloc or parts.query or parts.fragment or not parts.path.startswith("/"):
        raise ConfigError(f"not a samplekv URL: {url!r} (expected samplekv:///absolute/directory)")
    return unquote(parts.path)


def journal_name(number: int) -> str:
    return f"{number:06d}.log"


def journal_number(name: str) -> int | None:
    """The number of a journal file's name (``000042.log`` -> 42), None for any other name."""
    match = _JOURNAL_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def current_journal(directory: str) -> int:
    """The number of the journal file the store is writing: the highest one, or 1 before the first."""
    try:
        names = os.listdir(os.path.join(directory, JOURNAL_DIR))
    except FileNotFoundError:
        return 1
    return max((n for n in map(journal_number, names) if n is not None), default=1)
