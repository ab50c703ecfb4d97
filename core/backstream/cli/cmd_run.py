"""``backstream run JOB.toml``: run a backup (or restore) job described in a TOML file.

The keys mirror the ``backup``/``restore`` options (source, repository, compress, encrypt, ...); see docs/cli.md.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from typing import Any

from backstream.cli.cmd_backup import summary
from backstream.cli.options import REPO_ENV, add_json_argument, print_json, run_async
from backstream.cli.progress_display import add_progress_arguments, progress_display, quiet
from backstream.defaults import DEFAULT_CIPHER, DEFAULT_COMPRESSION
from backstream.errors import ConfigError
from backstream.jobs import KeyOptions, backup, restore
from backstream.plugins import Plugins
from backstream.repository import Manifest, redact_url

NAME = "run"
HELP = "run a job described in a TOML file"

COMMON_KEYS = frozenset({"name", "action", "repository", "storage_options", "key_options"})
BACKUP_KEYS = COMMON_KEYS | {"source", "compress", "encrypt", "cipher", "format", "jobs", "source_options"}
RESTORE_KEYS = COMMON_KEYS | {"backup", "target", "force", "source", "jobs", "target_options"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_file", metavar="JOB.toml", help="the job definition")
    add_json_argument(parser)
    add_progress_arguments(parser)


def load_job(path: str) -> dict[str, Any]:
    """Read and validate a job file; every mistake is a one-line ConfigError naming the file."""
    try:
        with open(path, "rb") as handle:
            job = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read job file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    action = job.get("action", "backup")
    if action not in ("backup", "restore"):
        raise ConfigError(f"{path}: action must be 'backup' or 'restore', not {action!r}")
    allowed = BACKUP_KEYS if action == "backup" else RESTORE_KEYS
    unknown = sorted(set(job) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) for a {action} job: {', '.join(unknown)}")
    required = ("source",) if action == "backup" else ("target",)
    for key in required:
        if not isinstance(job.get(key), str) or not job[key]:
            raise ConfigError(f'{path}: a {action} job needs {key} = "URL"')
    if not job.get("repository") and not os.environ.get(REPO_ENV):
        raise ConfigError(f'{path}: no repository (set repository = "URL" or {REPO_ENV})')
    encrypt = job.get("encrypt", [])
    if isinstance(encrypt, str):
        job["encrypt"] = [encrypt]
    elif not isinstance(encrypt, list) or not all(isinstance(ref, str) for ref in encrypt):
        raise ConfigError(f"{path}: encrypt must be a key reference or a list of them")
    for table in ("source_options", "storage_options", "target_options", "key_options"):
        if not isinstance(job.get(table, {}), Mapping):
            raise ConfigError(f"{path}: {table} must be a table")
    if "jobs" in job and (not isinstance(job["jobs"], int) or job["jobs"] < 1):
        raise ConfigError(f"{path}: jobs must be a positive integer")
    job["action"] = action
    return job


def _strings(table: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in table.items()}


def run(args: argparse.Namespace) -> int:
    job = load_job(args.job_file)
    repository = job.get("repository") or os.environ[REPO_ENV]
    plugins = Plugins.load()
    progress = progress_display(job["action"], args)
    keys = KeyOptions(
        cipher=str(job.get("cipher", DEFAULT_CIPHER)), provider_options=_strings(job.get("key_options", {}))
    )

    async def work() -> Manifest:
        if job["action"] == "backup":
            options = _strings(job.get("source_options", {}))
            if "format" in job:
                options["format"] = str(job["format"])
            if "jobs" in job:
                options["jobs"] = str(job["jobs"])
            return await backup(
                job["source"],
                repo=repository,
                compress=job.get("compress", DEFAULT_COMPRESSION),
                encrypt=job.get("encrypt", []),
                options=options,
                plugins=plugins,
                progress=progress,
                storage_options=dict(job.get("storage_options", {})),
                keys=keys,
            )
        options = _strings(job.get("target_options", {}))
        if "jobs" in job:
            options["jobs"] = str(job["jobs"])
        return await restore(
            str(job.get("backup", "latest")),
            repo=repository,
            to=job["target"],
            force=bool(job.get("force", False)),
            source=job.get("source"),
            options=options,
            plugins=plugins,
            progress=progress,
            storage_options=dict(job.get("storage_options", {})),
            keys=keys,
        )

    try:
        manifest = run_async(work)
    finally:
        progress.close()
    if job["action"] == "backup":
        if args.json:
            print_json(summary(manifest))
        elif not quiet(args):
            print(manifest.backup_id)
    elif args.json:
        print_json({"backup_id": manifest.backup_id, "target": redact_url(job["target"])})
    elif not quiet(args):
        print(f"restored {manifest.backup_id} to {redact_url(job['target'])}")
    return 0
