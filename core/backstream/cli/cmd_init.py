"""``backstream init --repo URL``: make an empty storage location a backstream repository.

Refuses a location that already is one (or that holds backups without a config).
"""

from __future__ import annotations

import argparse

from backstream.cli.options import (
    add_json_argument,
    add_repo_argument,
    print_json,
    repo_url,
    run_async,
    storage_options,
)
from backstream.errors import ConfigError
from backstream.plugins import Plugins
from backstream.protocols import ProcessLocal
from backstream.repository import Repository, format_time

NAME = "init"
HELP = "create a repository"


def configure(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    url = repo_url(args)
    plugins = Plugins.load()

    async def work() -> Repository:
        storage = plugins.open_storage(url, **storage_options(args))
        if isinstance(storage, ProcessLocal) and storage.process_local():
            raise ConfigError(
                f"{url} keeps a repository in this process's memory: it would vanish when init exits; "
                "use a path or an object store URL (memory:// is for the Python API)"
            )
        return await Repository.init(storage)

    repository = run_async(work)
    if args.json:
        print_json(
            {
                "repository": repository.url,
                "repository_id": repository.repository_id,
                "created_at": format_time(repository.config.created_at),
                "format_version": repository.config.format_version,
            }
        )
    else:
        print(f"created repository {repository.url} (id {repository.repository_id})")
    return 0
