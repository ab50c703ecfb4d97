"""``backstream prune --repo URL --keep-last N --keep-within D --keep-daily N ... [--dry-run]``:
apply a retention policy (``backstream.retention.decide``) and delete what it does not keep.

Prints every backup with keep/delete and the reasons; deletes under the repository's exclusive lock.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backstream.cli.options import add_json_argument, add_repo_argument, open_repository, print_json, run_async
from backstream.plugins import Plugins
from backstream.protocols import LogArchive
from backstream.repository import Manifest, Repository, format_time, utc_now
from backstream.retention import COMPLETE, ArchiveDecision, Backup, Decision, Policy, decide, parse_duration

NAME = "prune"
HELP = "delete the backups a retention policy does not keep"

GFS = ("hourly", "daily", "weekly", "monthly", "yearly")


def configure(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    parser.add_argument("--keep-last", type=int, metavar="N", help="keep the newest N complete backups")
    parser.add_argument("--keep-within", metavar="DURATION", help="keep every backup newer than this, e.g. 7d")
    for rule in GFS:
        parser.add_argument(
            f"--keep-{rule}", type=int, metavar="N", help=f"keep the newest backup of each of N {rule} periods"
        )
    parser.add_argument("--dry-run", action="store_true", help="only print the decisions; delete nothing")
    add_json_argument(parser)


def policy_from(args: argparse.Namespace) -> Policy:
    return Policy(
        keep_last=args.keep_last,
        keep_within=None if args.keep_within is None else parse_duration(args.keep_within),
        **{rule: getattr(args, f"keep_{rule}") for rule in GFS},
    )


def as_backup(manifest: Manifest) -> Backup:
    return Backup(
        id=manifest.backup_id,
        time=manifest.started_at,
        status=COMPLETE if manifest.ok else manifest.status,
        depends_on=(manifest.parent,) if manifest.parent else (),
    )


@dataclass(frozen=True)
class PruneResult:
    """Decisions on backups, then on the files of the log archives the kept ones need."""

    backups: list[Decision]
    archive: list[tuple[str, ArchiveDecision]]  # (label, decision): the archive's label, e.g. "wal" or "binlog 7"


async def prune(
    repository: Repository, policy: Policy, *, dry_run: bool, archives: Sequence[LogArchive] = ()
) -> PruneResult:
    """Decide with ``policy`` now; unless ``dry_run``, delete (manifest first, then objects) under the lock,
    then the files of ``archives`` that no kept backup's recovery window needs."""
    if dry_run:
        return await _prune_locked(repository, policy, dry_run=True, archives=archives)
    decide([], policy, utc_now())  # an empty policy fails before taking the lock
    async with repository.lock("prune", exclusive=True):
        return await _prune_locked(repository, policy, dry_run=False, archives=archives)


async def _prune_locked(
    repository: Repository, policy: Policy, *, dry_run: bool, archives: Sequence[LogArchive]
) -> PruneResult:
    manifests = await repository.manifests()
    decisions = decide([as_backup(m) for m in manifests], policy, utc_now())
    kept_ids = {d.backup.id for d in decisions if d.keep}
    if not dry_run:
        for decision in decisions:
            if not decision.keep:
                await repository.storage.delete(Repository.manifest_path(decision.backup.id))
                await repository.remove_objects(decision.backup.id)
    kept = [m for m in manifests if m.backup_id in kept_ids]
    archive: list[tuple[str, ArchiveDecision]] = []
    for log_archive in archives:
        archive += await log_archive.prune(repository, kept, dry_run=dry_run)
    return PruneResult(decisions, archive)


def run(args: argparse.Namespace) -> int:
    policy = policy_from(args)
    plugins = Plugins.load()

    async def work() -> PruneResult:
        repository = await open_repository(args, plugins)
        return await prune(repository, policy, dry_run=args.dry_run, archives=plugins.log_archives())

    result = run_async(work)
    decisions = result.backups
    deleted = [d for d in decisions if not d.keep]
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "decisions": [as_dict(d) for d in decisions],
                "archive": [archive_dict(kind, d) for kind, d in result.archive],
            }
        )
        return 0
    verb = "would delete" if args.dry_run else "delete"
    for decision in decisions:
        action = "keep" if decision.keep else verb
        when = decision.backup.time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{action.ljust(12)}  {decision.backup.id}  {when}  {'; '.join(decision.reasons)}")
    summary = (
        f"{len(decisions) - len(deleted)} kept, {len(deleted)} {'to delete (dry run)' if args.dry_run else 'deleted'}"
    )
    print(summary)
    archive_deleted = [(kind, d) for kind, d in result.archive if not d.keep]
    for kind, archived in archive_deleted:
        print(f"{verb.ljust(12)}  {kind} {archived.file.name}  {'; '.join(archived.reasons)}")
    done = "to delete (dry run)" if args.dry_run else "deleted"
    for label in dict.fromkeys(kind for kind, _ in result.archive):  # each archive's label, in order
        mine = [d for kind, d in result.archive if kind == label]
        gone = sum(1 for d in mine if not d.keep)
        print(f"archived {label} files: {len(mine) - gone} kept, {gone} {done}")
    return 0


def archive_dict(kind: str, decision: ArchiveDecision) -> dict[str, Any]:
    return {"kind": kind, "name": decision.file.name, "keep": decision.keep, "reasons": list(decision.reasons)}


def as_dict(decision: Decision) -> dict[str, Any]:
    return {
        "backup_id": decision.backup.id,
        "time": format_time(decision.backup.time),
        "keep": decision.keep,
        "reasons": list(decision.reasons),
    }
