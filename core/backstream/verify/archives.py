"""The archives ``check`` covers beside the backups: PostgreSQL WAL (``wal/``) and MySQL/MariaDB
binlogs (``binlog/``), each record read into the object, encryption context and plaintext hash it names.
"""

from __future__ import annotations

from backstream.binlog.layout import BINLOG_PREFIX, BinlogRecord, encryption_context
from backstream.pitr.wal import WalRecord, wal_context
from backstream.pitr.walnames import WAL_PREFIX
from backstream.repository import ObjectRecord
from backstream.repository.check import Archive, ArchivedFile


def _wal_file(data: bytes, where: str, repository_id: str) -> ArchivedFile:
    record = WalRecord.from_json(data, where)
    return ArchivedFile(
        record=ObjectRecord.archived(record),
        context=wal_context(repository_id, record.name, record.codec),
        plaintext_sha256=record.plaintext_sha256,
    )


def _binlog_file(data: bytes, where: str, repository_id: str) -> ArchivedFile:
    record = BinlogRecord.from_json(data, where=where)
    return ArchivedFile(
        record=ObjectRecord.archived(record),
        context=encryption_context(repository_id, record.server_id, record.name, record.codec),
        plaintext_sha256=record.plaintext_sha256,
    )


ARCHIVES = (Archive("WAL", WAL_PREFIX, _wal_file), Archive("binlog", BINLOG_PREFIX, _binlog_file))
"""Every archive ``check`` reads, in the order it reports them."""
