"""What ships under deploy/ works with the CLI as it stands.

The systemd units, the Dockerfile and the Kubernetes manifests all start ``backstream`` with some
arguments: each command line must parse with backstream's own parser, the example schedule and
job files they name must load, the YAML must be well-formed with the fields Kubernetes requires,
and image and paths must agree across the files.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from backstream.cli.cmd_run import load_job
from backstream.cli.main import build_parser, choose_commands
from backstream.plugins import Plugins
from backstream.schedule.http import PATHS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BACKSTREAM = str(Path(sys.executable).parent / "backstream")
IMAGE = "ghcr.io/backstream/backstream:0.1.0"


def parses(argv: list[str]) -> None:
    """``argv`` (without the program name) is accepted by the parser of the command it names."""
    parser = build_parser(choose_commands(argv[0], Plugins.load()))
    try:
        parser.parse_args(argv)
    except SystemExit as exc:  # argparse's way of saying no
        raise AssertionError(f"backstream {shlex.join(argv)} does not parse") from exc


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def backstream_argv(line: str, instance: str = "app") -> list[str]:
    words = shlex.split(line.replace("%i", instance))
    assert words[0].endswith("/backstream"), line
    return words[1:]


def manifest(name: str) -> dict[str, Any]:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / name).read_text()))
    assert len(documents) == 1
    document: dict[str, Any] = documents[0]
    for key in ("apiVersion", "kind", "metadata", "spec"):
        assert key in document, f"{name} lacks {key}"
    assert document["metadata"].get("name"), name
    return document


def test_the_example_schedule_file_is_valid() -> None:
    result = subprocess.run(
        [BACKSTREAM, "daemon", "--config", str(DEPLOY / "examples" / "schedule.toml"), "--check-config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "2 job(s)" in result.stdout


def test_the_example_job_file_is_valid() -> None:
    job = load_job(str(DEPLOY / "examples" / "app.toml"))
    assert job["action"] == "backup" and job["source"].startswith("postgresql://")


def test_the_daemon_unit_starts_reloads_and_stops_the_daemon_as_documented() -> None:
    service = unit("backstream-daemon.service")["Service"]
    for key in ("ExecStartPre", "ExecStart"):
        parses(backstream_argv(service[key]))
    assert backstream_argv(service["ExecStart"])[:3] == ["daemon", "--config", "/etc/backstream/schedule.toml"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > 60 + 30  # the example's shutdown_grace + kill_after
    assert service["Environment"] == "BACKSTREAM_STATE_DIR=/var/lib/backstream"


def test_the_timer_alternative_runs_one_job_file_per_instance() -> None:
    service = unit("backstream-run@.service")["Service"]
    argv = backstream_argv(service["ExecStart"])
    parses(argv)
    assert argv[:2] == ["run", "/etc/backstream/jobs/app.toml"]
    assert service["Type"] == "oneshot"
    timer = unit("backstream-run@.timer")["Timer"]
    assert timer["OnCalendar"] and timer["Persistent"] == "true"


def test_the_dockerfile_entrypoint_and_default_command_are_the_daemon() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M)[1])  # type: ignore[index]
    command = json.loads(re.search(r"^CMD (.+)$", text, re.M)[1])  # type: ignore[index]
    assert entrypoint == ["backstream"]
    parses(command)
    assert command[:3] == ["daemon", "--config", "/etc/backstream/schedule.toml"]
    assert re.search(r"^USER backstream$", text, re.M), "the image runs as an unprivileged user"
    assert "pip install --no-cache-dir '.[all]'" in text


def _pod(document: dict[str, Any]) -> dict[str, Any]:
    spec = document["spec"]
    template = spec["jobTemplate"]["spec"]["template"] if document["kind"] == "CronJob" else spec["template"]
    pod: dict[str, Any] = template["spec"]
    return pod


@pytest.mark.parametrize("name", ["cronjob-backup.yaml", "daemon-deployment.yaml"])
def test_each_manifest_runs_the_image_with_arguments_the_cli_accepts(name: str) -> None:
    document = manifest(name)
    pod = _pod(document)
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert "command" not in container, "the image's ENTRYPOINT is backstream: manifests give args only"
    parses(container["args"])
    mounted = {mount["name"] for mount in container["volumeMounts"]}
    assert mounted == {volume["name"] for volume in pod["volumes"]}, "every mount has its volume and back"
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_cronjob_runs_one_job_file_and_never_overlaps() -> None:
    document = manifest("cronjob-backup.yaml")
    assert (document["apiVersion"], document["kind"]) == ("batch/v1", "CronJob")
    assert document["spec"]["concurrencyPolicy"] == "Forbid"
    assert len(document["spec"]["schedule"].split()) == 5
    (container,) = _pod(document)["containers"]
    assert container["args"][:2] == ["run", "/etc/backstream/jobs/app.toml"]
    assert _pod(document)["restartPolicy"] == "Never"


def test_the_daemon_deployment_is_one_replica_replaced_after_it_stopped() -> None:
    document = manifest("daemon-deployment.yaml")
    assert (document["apiVersion"], document["kind"]) == ("apps/v1", "Deployment")
    spec = document["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = _pod(document)
    assert pod["terminationGracePeriodSeconds"] > 60 + 30
    (container,) = pod["containers"]
    args = container["args"]
    host, port = args[args.index("--http-address") + 1].rsplit(":", 1)
    assert host == "0.0.0.0", "the kubelet probes the pod's address, not its loopback"
    (served,) = container["ports"]
    assert (
        served["containerPort"]
        == int(port)
        == int(document["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"])
    )
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {probe["port"] for probe in probes.values()} == {served["name"]}
    assert probes["readinessProbe"]["path"] == "/health"
    assert {probe["path"] for probe in probes.values()} <= set(PATHS), "the daemon serves every probed path"
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/health/live"
    paths = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert {"/etc/backstream/schedule.toml", "/var/lib/backstream"} <= paths
