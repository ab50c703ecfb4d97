"""Manual triggers: ``backstream trigger JOB`` drops a small file in the state directory's
``triggers/`` folder; the daemon polls the folder, removes each file and runs its job once.

A file, not a socket: it works whether or not the daemon runs (a trigger waits for the next
start), needs no listener to secure, and its permissions are the state directory's.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from backstream.errors import ConfigError, os_reason
from backstream.repository.ids import format_time, parse_time, utc_now

log = logging.getLogger(__name__)

TRIGGERS_DIR = "triggers"
SUFFIX = ".json"


@dataclass(frozen=True)
class Trigger:
    """A request to run ``job`` now, made at ``requested_at``; ``trigger_id`` names it in the history."""

    job: str
    trigger_id: str
    requested_at: datetime


def request(state_dir: Path, job: str) -> Trigger:
    """Queue a run of ``job``: write the trigger file atomically (a temp name, then rename)."""
    trigger = Trigger(job, f"{utc_now().strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}", utc_now())
    folder = Path(state_dir) / TRIGGERS_DIR
    document = {"job": job, "trigger_id": trigger.trigger_id, "requested_at": format_time(trigger.requested_at)}
    final = folder / f"{trigger.trigger_id}{SUFFIX}"
    temporary = folder / f".{trigger.trigger_id}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(document) + "\n", encoding="utf-8")
        os.replace(temporary, final)
    except OSError as exc:
        raise ConfigError(f"cannot queue a trigger in {folder}: {os_reason(exc)}") from exc
    return trigger


def take(state_dir: Path) -> list[Trigger]:
    """Every queued trigger, oldest first, each removed as it is read (blocking: use a thread)."""
    folder = Path(state_dir) / TRIGGERS_DIR
    try:
        names = sorted(name for name in os.listdir(folder) if name.endswith(SUFFIX) and not name.startswith("."))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = folder / name
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            path.unlink()
            found.append(
                Trigger(str(document["job"]), str(document["trigger_id"]), parse_time(str(document["requested_at"])))
            )
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring trigger file %s: %s", path, exc)
            path.unlink(missing_ok=True)
    return found
