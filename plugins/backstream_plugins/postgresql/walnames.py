"""PostgreSQL WAL file names and LSNs: timelines, segment numbers, and where each file lives in the archive.

Pure functions, no I/O; the archive layout is ``wal/<timeline>/<file><ext>`` plus ``wal/<timeline>/<file>.json``.
"""

from __future__ import annotations

import re

from backstream import ConfigError

WAL_PREFIX = "wal/"
SIDECAR_SUFFIX = ".json"
DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
_SEGMENT = re.compile(r"^[0-9A-F]{24}$")
_PARTIAL = re.compile(r"^[0-9A-F]{24}\.partial$")
_BACKUP = re.compile(r"^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$")
_HISTORY = re.compile(r"^[0-9A-F]{8}\.history$")
_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def is_segment(name: str) -> bool:
    return bool(_SEGMENT.fullmatch(name))


def check_wal_name(name: str) -> str:
    """``name`` if it is a WAL segment, ``.partial``, ``.backup`` or ``.history`` file name; else ConfigError."""
    if not any(p.fullmatch(name) for p in (_SEGMENT, _PARTIAL, _BACKUP, _HISTORY)):
        raise ConfigError(f"{name!r} is not a PostgreSQL WAL file name (segment, .partial, .backup or .history)")
    return name


def timeline_of(name: str) -> str:
    """The 8-hex-digit timeline a WAL file belongs to (its first 8 characters)."""
    return check_wal_name(name)[:8]


def sidecar_path(name: str) -> str:
    """Where the record (the commit point) of an archived WAL file lives."""
    return f"{WAL_PREFIX}{timeline_of(name)}/{name}{SIDECAR_SUFFIX}"


def object_path(name: str, extension: str) -> str:
    """Where the compressed (and maybe encrypted) bytes of an archived WAL file live."""
    return f"{WAL_PREFIX}{timeline_of(name)}/{name}{extension}"


def parse_lsn(text: str) -> int:
    """``"0/2000028"`` -> 33554472."""
    match = _LSN.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"{text!r} is not a PostgreSQL LSN (expected e.g. 0/16B3748)")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def segments_per_xlogid(segment_size: int) -> int:
    return 0x100000000 // segment_size


def segment_number(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """The absolute segment number of a segment file name (timeline excluded)."""
    if not is_segment(name[:24]):
        raise ConfigError(f"{name!r} is not a WAL segment name")
    return int(name[8:16], 16) * segments_per_xlogid(segment_size) + int(name[16:24], 16)


def segment_name(timeline: int, number: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    per = segments_per_xlogid(segment_size)
    return f"{timeline:08X}{number // per:08X}{number % per:08X}"


def lsn_segment(lsn: int, timeline: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    """The name of the segment that holds ``lsn`` on ``timeline``."""
    return segment_name(timeline, lsn // segment_size, segment_size)
