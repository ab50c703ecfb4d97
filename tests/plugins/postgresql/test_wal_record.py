"""The WAL record (``wal/<tl>/<name>.json``) keeps its format while it holds an ObjectRecord.

The documents below were written by backstream before the object path (0.x, issue 14): they must
parse, and writing the parsed record back must give the same bytes.
"""

from __future__ import annotations

import pytest
from backstream import RepositoryError
from backstream.repository import ObjectRecord
from backstream_plugins.postgresql.wal import WalRecord

PLAIN = b"""{
 "format": "backstream-wal",
 "version": 1,
 "name": "000000010000000000000003",
 "path": "wal/00000001/000000010000000000000003.zst",
 "plaintext_size": 16777216,
 "plaintext_sha256": "9f1c2c6f0f9d4c1e6a5b3e6c2d7f8a9b0c1d2e3f405162738495a6b7c8d9e0f1",
 "stored_size": 40213,
 "stored_sha256": "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
 "codec": "zstd",
 "cipher": null,
 "key_refs": [],
 "archived_at": 1764950400.123456
}
"""

ENCRYPTED = PLAIN.replace(b'"cipher": null', b'"cipher": "chacha20-poly1305"').replace(
    b'"key_refs": []', b'"key_refs": [\n  "passphrase",\n  "local:/etc/backstream/key"\n ]'
)


@pytest.mark.parametrize("document", [PLAIN, ENCRYPTED], ids=["plain", "encrypted"])
def test_an_old_record_parses_and_writes_back_byte_for_byte(document: bytes) -> None:
    record = WalRecord.from_json(document, "wal/00000001/000000010000000000000003.json")
    assert record.to_json() == document


def test_the_record_holds_the_stored_object() -> None:
    record = WalRecord.from_json(ENCRYPTED, "where")
    assert record.name == "000000010000000000000003"
    assert record.object == ObjectRecord(
        name="000000010000000000000003",
        path="wal/00000001/000000010000000000000003.zst",
        stored_size=40213,
        stored_sha256="0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
        plaintext_size=16777216,
        codec="zstd",
        cipher="chacha20-poly1305",
        key_refs=("passphrase", "local:/etc/backstream/key"),
    )
    assert record.archived_at == 1764950400.123456


@pytest.mark.parametrize(
    "document",
    [b"{}", b"not json", PLAIN.replace(b'"stored_size": 40213,', b""), PLAIN.replace(b"backstream-wal", b"other")],
)
def test_a_damaged_record_is_one_repository_error_naming_it(document: bytes) -> None:
    with pytest.raises(RepositoryError, match=r"^wal/x\.json is not a valid WAL record"):
        WalRecord.from_json(document, "wal/x.json")
