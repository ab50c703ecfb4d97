"""``backstream decrypt``: an encrypted object (file or stdin) -> its plaintext (file or stdout).

Tries each key stanza with the registered providers; a bad object fails with one line and writes no file.
"""

from __future__ import annotations

import argparse

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
from backstream.crypto import key_providers, open_encrypted
from backstream.pipeline import Pipeline, Transform
from backstream.plugins import Plugins
from backstream.runtime import run_async
from backstream.streams import iterable_source

NAME = "decrypt"
HELP = "decrypt an encrypted backstream object to a file or stdout"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", default=STDIO, metavar="IN", help="object to decrypt (default: stdin)")
    parser.add_argument(
        "-o",
        "--output",
        default=STDIO,
        metavar="OUT",
        help="plaintext destination, written atomically: nothing appears at OUT unless every chunk "
        "authenticated (default: stdout, which may receive authenticated chunks before an error)",
    )
    parser.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="require the header context to hold KEY=VALUE (e.g. backup_id=...)",
    )
    add_key_options(parser)


def run(args: argparse.Namespace) -> int:
    expected = parse_pairs(args.context, what="--context")
    check_readable(args.input)
    return run_async(lambda: _decrypt(args, expected, Plugins.load()))


async def _decrypt(args: argparse.Namespace, expected: dict[str, str], plugins: Plugins) -> int:
    providers = key_providers(plugins.kms(), provider_options(args))
    ciphers = [entry.factory for entry in plugins.ciphers() if entry.available]
    async with open_input(args.input) as chunks:
        opened = await open_encrypted(
            chunks,
            providers=providers,
            ciphers=ciphers,
            expect_context=expected,
            object_name=display_name(args.input),
            audit=audit_log(args),
        )
        pipeline = Pipeline(
            iterable_source(opened.rest), [Transform("decrypt", opened.codec)], open_output(args.output)
        )
        await pipeline.run()
    return 0
