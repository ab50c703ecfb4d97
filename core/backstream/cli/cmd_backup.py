"""``backstream backup SOURCE --repo URL``: dump a database into the repository; prints the backup id.

Options choose the compressor (``--compress zstd:3``), key references to encrypt to, and the dump format.
"""

from __future__ import annotations

import argparse
import os

from backstream.cli.crypto_args import add_key_options, audit_log, provider_options
from backstream.cli.options import (
    add_json_argument,
    add_repo_argument,
    key_values,
    print_json,
    repo_url,
    run_async,
    storage_options,
)
from backstream.cli.progress_display import add_progress_arguments, progress_display, quiet
from backstream.defaults import DEFAULT_CIPHER, DEFAULT_COMPRESSION
from backstream.jobs import KeyOptions, backup
from backstream.plugins import Plugins
from backstream.repository import Manifest, format_time
from backstream.verify.catalog import DEFAULT_MAX_ROWS, CatalogOptions

NAME = "backup"
HELP = "back a database up into the repository"
SOURCE_PLUGIN = "source_plugin"
"""The destination an option a plugin adds to ``backup`` may set: a source plugin chosen by name
instead of the one serving the URL's scheme (the postgresql plugin's ``--physical``)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", metavar="SOURCE", help="sqlite:///abs/path.db, postgresql://user@host:port/db, mysql://user@host/db"
    )
    add_repo_argument(parser)
    parser.add_argument(
        "--compress",
        metavar="CODEC[:LEVEL]",
        default=DEFAULT_COMPRESSION,
        help=f"compressor and level, e.g. zstd:3, gzip:6, lz4, none (default: {DEFAULT_COMPRESSION})",
    )
    parser.add_argument(
        "--encrypt",
        metavar="KEYREF",
        nargs="+",
        action="extend",
        default=[],
        help="encrypt to these keys: passphrase ($BACKSTREAM_PASSPHRASE), local:PATH, aws-kms:KEY, "
        "azure-keyvault:URL, gcp-kms:NAME",
    )
    parser.add_argument(
        "--cipher",
        default=DEFAULT_CIPHER,
        help=f"cipher suite when encrypting: chacha20-poly1305 or aes-256-gcm (default: {DEFAULT_CIPHER})",
    )
    parser.add_argument("--format", choices=("plain", "custom", "directory"), help="dump format (PostgreSQL)")
    parser.add_argument("--jobs", type=int, metavar="N", help="parallel dump jobs (PostgreSQL directory format)")
    parser.add_argument(
        "-o", "--option", metavar="KEY=VALUE", action="append", default=[], help="a source plugin option (repeatable)"
    )
    parser.add_argument(
        "--catalog",
        choices=("off", "quick", "standard", "comprehensive"),
        default="comprehensive",
        help="what to record for restore verification (default: comprehensive: row counts, schema, checksums)",
    )
    parser.add_argument(
        "--checksum-max-rows",
        type=int,
        default=DEFAULT_MAX_ROWS,
        metavar="N",
        help=(
            f"no content checksum for tables of more than N rows where it needs a separate read of the table"
            f" (plain PostgreSQL dumps are checksummed as they stream, always); 0 = no limit"
            f" (default: {DEFAULT_MAX_ROWS})"
        ),
    )
    add_json_argument(parser)
    add_progress_arguments(parser)
    add_key_options(parser, kdf=True)


def source_options(args: argparse.Namespace) -> dict[str, str]:
    options = key_values(args.option, "source option")
    if args.format:
        options["format"] = args.format
    if args.jobs is not None:
        options["jobs"] = str(args.jobs)
    return options


def run(args: argparse.Namespace) -> int:
    url = repo_url(args)
    progress = progress_display("backup", args)
    plugins = Plugins.load()

    async def work() -> Manifest:
        return await backup(
            args.source,
            repo=url,
            compress=args.compress,
            encrypt=args.encrypt,
            options=source_options(args),
            source_plugin=getattr(args, SOURCE_PLUGIN, None),
            plugins=plugins,
            progress=progress,
            storage_options=storage_options(args),
            keys=KeyOptions(cipher=args.cipher, provider_options=provider_options(args), audit=audit_log(args)),
            catalog=CatalogOptions(args.catalog, args.checksum_max_rows or None),
        )

    try:
        manifest = run_async(work)
    finally:
        progress.close()
    if args.json:
        print_json(summary(manifest))
    elif not quiet(args):
        print(manifest.backup_id)
    return 0


def summary(manifest: Manifest) -> dict[str, object]:
    """The short JSON description of a backup that ``backup``, ``run`` and ``list`` print."""
    return {
        "backup_id": manifest.backup_id,
        "status": manifest.status,
        "source": manifest.source.url,
        "kind": manifest.source.kind,
        "started_at": format_time(manifest.started_at),
        "finished_at": format_time(manifest.finished_at),
        "duration_seconds": round(manifest.duration_seconds, 3),
        "plaintext_size": manifest.plaintext_size,
        "stored_size": manifest.stored_size,
        "codec": ",".join(sorted({obj.codec for obj in manifest.objects})),
        "encrypted": manifest.encrypted,
        "objects": [os.path.basename(obj.path) for obj in manifest.objects],
    }
