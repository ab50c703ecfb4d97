"""The binlog record (``binlog/<server-id>/<file>.json``) keeps its format while it holds an ObjectRecord.

The document below was written by backstream before the object path (issue 14): it must parse, and
writing the parsed record back must give the same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from backstream import RepositoryError
from backstream_plugins.mysql.binlog import BinlogRecord

OLD = b"""{
  "format": "backstream-binlog",
  "format_version": 1,
  "server_id": 7,
  "name": "mysql-bin.000012",
  "path": "binlog/7/mysql-bin.000012.zst",
  "plaintext_size": 1048576,
  "plaintext_sha256": "9f1c2c6f0f9d4c1e6a5b3e6c2d7f8a9b0c1d2e3f405162738495a6b7c8d9e0f1",
  "stored_size": 20480,
  "stored_sha256": "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
  "codec": "zstd",
  "cipher": "chacha20-poly1305",
  "key_refs": [
    "passphrase"
  ],
  "first_event": "2026-11-25T14:00:00.000000Z",
  "last_event": "2026-11-25T14:59:59.000000Z",
  "archived_at": "2026-11-25T15:00:03.250000Z",
  "source": "mysql://backup@db1:3306"
}
"""


def test_an_old_record_parses_and_writes_back_byte_for_byte() -> None:
    record = BinlogRecord.from_json(OLD, where="binlog/7/mysql-bin.000012.json")
    assert record.to_json() == OLD
    assert (record.server_id, record.name, record.sequence) == (7, "mysql-bin.000012", 12)
    assert record.object.path == "binlog/7/mysql-bin.000012.zst"
    assert (record.object.cipher, record.object.key_refs) == ("chacha20-poly1305", ("passphrase",))
    assert record.first_event == datetime(2026, 11, 25, 14, 0, tzinfo=UTC)


def test_a_record_without_its_object_fields_is_refused() -> None:
    with pytest.raises(RepositoryError, match="not a valid binlog record"):
        BinlogRecord.from_json(OLD.replace(b'"stored_sha256"', b'"other"'), where="binlog/7/x.json")
