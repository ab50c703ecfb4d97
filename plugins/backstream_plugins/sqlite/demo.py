"""What ``backstream demo`` does: the main job end to end on a sample SQLite database, in ./backstream-demo/.

Creates the database and a local repository if missing, backs up (zstd + passphrase), lists, restores,
compares. The command itself (``cmd_demo``) imports this module only when it runs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from backstream.cli.options import human_bytes, run_async
from backstream.defaults import DEFAULT_COMPRESSION
from backstream.errors import BackstreamError, VerificationError
from backstream.jobs import backup, encryption_available, restore
from backstream.plugins import Plugins
from backstream.repository import Manifest, Repository

DEMO_PASSPHRASE = "backstream-demo-passphrase"
PASSPHRASE_ENV = "BACKSTREAM_PASSPHRASE"


@dataclass(frozen=True)
class Outcome:
    created_repository: bool
    manifest: Manifest
    backups: int
    restored: Path


def run(args: argparse.Namespace) -> int:
    base = Path(args.dir).absolute()
    database = base / "sample.db"
    repo_dir = base / "repository"
    base.mkdir(parents=True, exist_ok=True)
    created_database = not database.exists()
    if created_database:
        make_sample_database(database)
    plugins = Plugins.load()
    encrypt: list[str] = []
    key_line = ""
    if not args.no_encrypt and encryption_available(plugins):
        encrypt = ["passphrase"]
        if not os.environ.get(PASSPHRASE_ENV):
            os.environ[PASSPHRASE_ENV] = DEMO_PASSPHRASE
            key_line = f"passphrase {DEMO_PASSPHRASE!r} (the demo's; set {PASSPHRASE_ENV} to use your own)"
        else:
            key_line = f"passphrase from {PASSPHRASE_ENV}"

    async def work() -> Outcome:
        storage = plugins.open_storage(str(repo_dir))
        created = False
        try:
            repository = await Repository.open(storage)
        except BackstreamError:
            if (repo_dir / "backstream.json").exists():
                raise
            repository = await Repository.init(storage)
            created = True
        manifest = await backup(
            f"sqlite://{database}", repo=repository, compress=DEFAULT_COMPRESSION, encrypt=encrypt, plugins=plugins
        )
        backups = len(await repository.manifests())
        restored = base / "restored" / f"{manifest.backup_id}.db"
        await restore(manifest.backup_id, repo=repository, to=f"sqlite://{restored}", plugins=plugins)
        return Outcome(created, manifest, backups, restored)

    outcome = run_async(work)
    original = table_checksums(database)
    copy = table_checksums(outcome.restored)
    if original != copy:
        raise VerificationError(f"the restored database {outcome.restored} differs from {database}")
    rows = sum(count for count, _ in original.values())
    manifest = outcome.manifest
    shown = os.path.relpath(base) if not os.path.relpath(base).startswith("..") else str(base)
    cipher = manifest.objects[0].cipher
    lines = [
        f"backstream demo in {shown}/",
        f"  database    sample.db ({'created' if created_database else 'existing'}): {len(original)} tables, "
        f"{rows} rows, {human_bytes(database.stat().st_size)}",
        f"  repository  repository/ ({'created' if outcome.created_repository else 'existing'})",
        f"  backup      {manifest.backup_id}: {human_bytes(manifest.plaintext_size)} -> "
        f"{human_bytes(manifest.stored_size)} stored ({DEFAULT_COMPRESSION}, {cipher or 'not encrypted'})",
    ]
    if key_line:
        lines.append(f"  key         {key_line}")
    lines += [
        f"  list        {outcome.backups} backup(s) in the repository",
        f"  restore     -> restored/{outcome.restored.name}",
        f"  compare     {len(original)} tables identical (sha256 over every row of every table)",
        f"next: backstream list --repo {shown}/repository",
    ]
    if key_line.startswith("passphrase '"):
        lines.append(
            f"      {PASSPHRASE_ENV}='{DEMO_PASSPHRASE}' backstream restore latest --repo {shown}/repository "
            f"--to sqlite://{base}/restored/latest.db --force"
        )
    print("\n".join(lines))
    return 0


def make_sample_database(path: Path) -> None:
    """A small database with the content that trips up backup tools."""
    rng = random.Random(20261125)
    scratch = path.with_name(path.name + ".partial")
    scratch.unlink(missing_ok=True)
    connection = sqlite3.connect(scratch)
    try:
        connection.executescript(
            """
            CREATE TABLE "Customers" (id INTEGER PRIMARY KEY, "Full Name" TEXT NOT NULL, email TEXT, note TEXT);
            CREATE TABLE "naïve ""quoted"" table" ("ключ" INTEGER PRIMARY KEY, "値" TEXT, amount REAL);
            CREATE TABLE attachments (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES "Customers"(id), body BLOB);
            CREATE TABLE "Empty Table" (id INTEGER PRIMARY KEY, anything TEXT);
            CREATE INDEX customers_email ON "Customers"(email);
            """
        )
        names = ["Zoë O'Brien", 'Bob "Bobby" Tables', "李小龍", "Ñandú; DROP TABLE x;--", "tab\tand\nnewline"]
        connection.executemany(
            'INSERT INTO "Customers" VALUES (?, ?, ?, ?)',
            [
                (
                    i,
                    f"{rng.choice(names)} #{i}",
                    None if i % 7 == 0 else f"user{i}@example.org",
                    None if i % 3 else "ünïcödé ✓",
                )
                for i in range(1, 2001)
            ],
        )
        connection.executemany(
            'INSERT INTO "naïve ""quoted"" table" VALUES (?, ?, ?)',
            [(i, None if i % 5 == 0 else "値" * (i % 17), None if i % 4 == 0 else i * 1.25) for i in range(1, 501)],
        )
        connection.executemany(
            "INSERT INTO attachments VALUES (?, ?, ?)",
            [(i, i, rng.randbytes(256 * 1024) if i % 2 else b"\x00" * 512 * 1024) for i in range(1, 9)],
        )
        connection.commit()
    finally:
        connection.close()
    os.replace(scratch, path)


def table_checksums(path: Path) -> dict[str, tuple[int, str]]:
    """Per table: the row count and a sha256 over every row in primary-key order."""
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        result: dict[str, tuple[int, str]] = {}
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            digest = hashlib.sha256()
            count = 0
            for row in connection.execute(f"SELECT * FROM {quoted} ORDER BY rowid"):
                digest.update(repr(row).encode())
                count += 1
            result[table] = (count, digest.hexdigest())
        return result
    finally:
        connection.close()
