"""``backstream keys``: create keys (local keystores), export public keys, rotate keys, show a header.

Rotation re-wraps the data key and rewrites only the header; the encrypted chunks stay byte-identical.
"""

from __future__ import annotations

import argparse
import json
import os

from backstream.cli.crypto_args import (
    STDIO,
    add_key_options,
    audit_log,
    check_readable,
    display_name,
    open_input,
    open_output,
    parse_pairs,
    provider_options,
)
from backstream.cli.options import add_repo_argument, open_repository
from backstream.crypto import configure_provider, key_providers, read_header, rewrap_encrypted, scheme_of
from backstream.errors import ConfigError
from backstream.jobs.rotate import rotate_repository
from backstream.plugins import Plugins
from backstream.protocols import CreatesKeys, ExportsPublicKeys
from backstream.runtime import run_async

NAME = "keys"
HELP = "create keys, export public keys, rotate the keys of encrypted objects, show object headers"
NEW_PASSPHRASE_ENV = "BACKSTREAM_NEW_PASSPHRASE"


def configure(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)

    create = commands.add_parser(
        "create", help="create a key: a local keystore (or a new default key in it)", description=_doc(_create)
    )
    create.add_argument("key_ref", nargs="?", metavar="KEYREF", help="where to create the key, e.g. local:PATH")
    create.add_argument("--keystore", dest="create_keystore", metavar="PATH", help="same as KEYREF local:PATH")
    create.add_argument(
        "--kind",
        choices=("symmetric", "x25519"),
        default="symmetric",
        help="local keys: a symmetric key (default), or an X25519 key pair whose public half encrypts "
        "without the passphrase (docs/keys.md)",
    )
    add_key_options(create, kdf=True, keystore=False)
    create.set_defaults(_keys=_create)

    export = commands.add_parser(
        "export-public",
        help="write a keystore holding only the public halves of a keystore's X25519 keys",
        description=_doc(_export_public),
    )
    export.add_argument("key_ref", metavar="KEYREF", help="the full keystore, local:PATH")
    export.add_argument("-o", "--output", required=True, metavar="PATH", help="the public keystore to write")
    export.add_argument(
        "--force", action="store_true", help="replace PATH if it is an earlier public export (never a full keystore)"
    )
    add_key_options(export, kdf=False, keystore=False)
    export.set_defaults(_keys=_export_public)

    rotate = commands.add_parser("rotate", help="re-wrap an object's data key for new keys", description=_doc(_rotate))
    rotate.add_argument("-i", "--input", default=STDIO, metavar="IN", help="encrypted object (default: stdin)")
    rotate.add_argument(
        "-o", "--output", metavar="OUT", help="where to write the rotated object (default: replace IN atomically)"
    )
    rotate.add_argument(
        "backup",
        nargs="?",
        metavar="ID|latest",
        help="with --repo: the backup to rotate (id, unique prefix or latest); see --all",
    )
    add_repo_argument(rotate)
    rotate.add_argument("--all", action="store_true", help="with --repo: rotate every backup in the repository")
    rotate.add_argument(
        "-k", "--key", "--to", action="append", required=True, metavar="KEYREF", help="new key reference (repeatable)"
    )
    rotate.add_argument(
        "--keep-existing", action="store_true", help="keep the current stanzas and add the new keys to them"
    )
    rotate.add_argument(
        "--new-passphrase-file",
        metavar="FILE",
        help=f"passphrase for the new key(s) (default: ${NEW_PASSPHRASE_ENV}, else the same sources as for opening)",
    )
    rotate.add_argument("--context", action="append", default=[], metavar="KEY=VALUE", help="require this context")
    add_key_options(rotate, kdf=True)
    rotate.set_defaults(_keys=_rotate)

    show = commands.add_parser("show", help="print an object's header (no key needed)", description=_doc(_show))
    show.add_argument("-i", "--input", default=STDIO, metavar="IN", help="encrypted object (default: stdin)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(_keys=_show)


def run(args: argparse.Namespace) -> int:
    result: int = run_async(lambda: args._keys(args, Plugins.load()))
    return result


async def _create(args: argparse.Namespace, plugins: Plugins) -> int:
    """Create a key and print its key reference. ``local:PATH`` creates the keystore file (mode 0600)
    with a key-encryption key sealed under a passphrase, or adds a new default key to it."""
    if bool(args.key_ref) == bool(args.create_keystore):
        raise ConfigError("give either KEYREF or --keystore PATH")
    key_ref = args.key_ref or f"local:{os.path.abspath(args.create_keystore)}"
    scheme = scheme_of(key_ref)
    options = provider_options(args)
    if args.kind != "symmetric":
        if scheme != "local":
            raise ConfigError(f"--kind {args.kind} makes keys in local keystores only, not for {scheme!r}")
        options["key_kind"] = args.kind
    providers = key_providers(plugins.kms(), options)
    provider = providers.get(scheme)
    if provider is None:
        raise ConfigError(f"unknown key provider {scheme!r} (known: {', '.join(sorted(providers))})")
    if not isinstance(provider, CreatesKeys):
        raise ConfigError(
            f"the {scheme!r} provider cannot create keys; create them in the KMS and pass their reference"
        )
    created = await provider.create_key(key_ref)
    key_id = created.rpartition("#")[2] if "#" in created else None
    await audit_log(args).record("create", scheme=scheme, key_ref=created, key_id=key_id)
    print(created)
    return 0


async def _export_public(args: argparse.Namespace, plugins: Plugins) -> int:
    """Write a keystore with only the public halves of KEYREF's X25519 keys (no passphrase needed)
    and print the key reference to back up with. A host that holds only this file can make
    encrypted backups but cannot read them, nor any other object of those keys."""
    scheme = scheme_of(args.key_ref)
    provider = key_providers(plugins.kms(), provider_options(args)).get(scheme)
    if not isinstance(provider, ExportsPublicKeys):
        raise ConfigError(f"the {scheme!r} provider has no public keys to export")
    created = await provider.export_public(args.key_ref, args.output, force=args.force)
    await audit_log(args).record("export-public", scheme=scheme, key_ref=created, key_id=created.rpartition("#")[2])
    print(created)
    return 0


async def _rotate(args: argparse.Namespace, plugins: Plugins) -> int:
    """Re-wrap the object's data key for the new ``--key`` references (replacing the old stanzas
    unless ``--keep-existing``); only the header changes, the encrypted chunks are copied as-is."""
    if args.repo:
        return await _rotate_repository(args, plugins)
    if args.backup or args.all:
        raise ConfigError("ID|latest and --all rotate backups in a repository: add --repo URL")
    check_readable(args.input)
    output = args.output if args.output is not None else args.input
    options = provider_options(args)
    wrap_options = _wrap_options(args, options)
    registry = plugins.kms()
    providers = key_providers(registry, options)
    wrap_providers = {scheme: configure_provider(p, wrap_options) for scheme, p in key_providers(registry).items()}
    sink = open_output(output, binary_to_terminal=False)
    async with open_input(args.input) as chunks:
        rotated = await rewrap_encrypted(
            chunks,
            args.key,
            providers=providers,
            wrap_providers=wrap_providers,
            keep_existing=args.keep_existing,
            expect_context=parse_pairs(args.context, what="--context"),
            object_name=display_name(output),
            audit=audit_log(args),
        )
        async with sink as writer:
            await writer.write(rotated.header.raw)
            async for chunk in rotated.rest:
                await writer.write(chunk)
    return 0


async def _rotate_repository(args: argparse.Namespace, plugins: Plugins) -> int:
    """``keys rotate --repo URL ID|latest|--all --to KEYREF``: re-wrap every encrypted object of the
    chosen backups and commit new manifests (see backstream.jobs.rotate)."""
    if args.input != STDIO or args.output is not None:
        raise ConfigError("-i/-o rotate a single file; with --repo name a backup (ID|latest) or --all")
    if bool(args.backup) == bool(args.all):
        raise ConfigError("with --repo, name one backup (ID|latest) or pass --all")
    if args.context:
        raise ConfigError("--context is for single files; in a repository the manifest gives each object's context")
    options = provider_options(args)
    repository = await open_repository(args, plugins)
    rotated = await rotate_repository(
        repository,
        [] if args.all else [args.backup],
        args.key,
        plugins=plugins,
        provider_options=options,
        wrap_options=_wrap_options(args, options),
        keep_existing=args.keep_existing,
        audit=audit_log(args),
    )
    for result in rotated:
        print(f"rotated {result.manifest.backup_id}: {result.objects} object(s) now open with {', '.join(args.key)}")
    if not rotated:
        print("nothing to rotate: no encrypted backup was chosen")
    return 0


def _wrap_options(args: argparse.Namespace, options: dict[str, str]) -> dict[str, str]:
    """Provider options for wrapping with the new keys (their own passphrase sources)."""
    wrap_options = dict(options)
    wrap_options["passphrase_prompt"] = "Passphrase for the new key: "
    if args.new_passphrase_file:
        wrap_options["passphrase_file"] = args.new_passphrase_file
    elif os.environ.get(NEW_PASSPHRASE_ENV):
        wrap_options.pop("passphrase_file", None)
        wrap_options["passphrase_env"] = NEW_PASSPHRASE_ENV
    return wrap_options


async def _show(args: argparse.Namespace, plugins: Plugins) -> int:
    """Print the header of an encrypted object: id, cipher suite, context and key stanzas."""
    check_readable(args.input)
    async with open_input(args.input) as chunks:
        header, _ = await read_header(chunks)
    suites = {entry.factory.suite_id: entry.name for entry in plugins.ciphers()}
    info = {
        "object_id": header.object_id,
        "format_version": header.version,
        "cipher": suites.get(header.suite_id, f"unknown suite {header.suite_id}"),
        "chunk_size": 1 << header.chunk_log2,
        "header_bytes": len(header.raw),
        "context": dict(header.context),
        "stanzas": [
            {
                "scheme": s.scheme,
                "key_ref": s.key_ref,
                "params": dict(s.params),
                "wrapped_key_bytes": len(s.wrapped_key),
            }
            for s in header.stanzas
        ],
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"object id:   {info['object_id']}")
    print(f"format:      v{header.version}, {info['cipher']}, {info['chunk_size']}-byte chunks")
    for key, value in header.context.items():
        print(f"context:     {key}={value}")
    for stanza in header.stanzas:
        params = " ".join(f"{k}={v}" for k, v in stanza.params.items())
        print(f"stanza:      {stanza.scheme}  {stanza.key_ref}  {params}".rstrip())
    return 0


def _doc(function: object) -> str:
    return " ".join((getattr(function, "__doc__", "") or "").replace("``", "").split())
