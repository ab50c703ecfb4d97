"""``backstream encrypt``: a file or stdin -> an encrypted object (format v1, docs/format.md).

Like age: one or more ``--key`` references (passphrase, local:KEYSTORE, cloud KMS keys); any one opens it.
"""

from __future__ import annotations

import argparse
import datetime as dt

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
from backstream.crypto import key_providers, new_encryptor
from backstream.defaults import DEFAULT_CIPHER
from backstream.pipeline import Pipeline, Transform
from backstream.plugins import Plugins
from backstream.runtime import run_async

NAME = "encrypt"
HELP = "encrypt a file or stdin into an encrypted backstream object"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", default=STDIO, metavar="IN", help="file to encrypt (default: stdin)")
    parser.add_argument(
        "-o", "--output", default=STDIO, metavar="OUT", help="object to write, atomically (default: stdout)"
    )
    parser.add_argument(
        "-k",
        "--key",
        action="append",
        required=True,
        metavar="KEYREF",
        help="wrap the data key for this key: passphrase[:scrypt], local:KEYSTORE[#KEY_ID], aws-kms:..., "
        "azure-keyvault:..., gcp-kms:... (repeatable; any one key opens the object; a passphrase must be alone)",
    )
    parser.add_argument(
        "--cipher",
        default=DEFAULT_CIPHER,
        help=f"cipher suite: chacha20-poly1305 or aes-256-gcm (default {DEFAULT_CIPHER})",
    )
    parser.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="bind KEY=VALUE into the header (e.g. backup_id=...); created_at is added unless given",
    )
    add_key_options(parser, kdf=True)


def run(args: argparse.Namespace) -> int:
    context = parse_pairs(args.context, what="--context")
    context.setdefault("created_at", dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))
    check_readable(args.input)
    return run_async(lambda: _encrypt(args, context, Plugins.load()))


async def _encrypt(args: argparse.Namespace, context: dict[str, str], plugins: Plugins) -> int:
    sink = open_output(args.output, binary_to_terminal=False)
    cipher = plugins.ciphers().get(args.cipher)
    encryptor = await new_encryptor(
        args.key,
        providers=key_providers(plugins.kms(), provider_options(args)),
        cipher=cipher,
        context=context,
        object_name=display_name(args.output),
        audit=audit_log(args),
    )
    await Pipeline(open_input(args.input), [Transform("encrypt", encryptor)], sink).run()
    return 0
