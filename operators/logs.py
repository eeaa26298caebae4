"""``avmonitor logs JOB``: the job's log lines from every function and from its VMs, in time order.

* The functions' lines: from Cloud Logging (``google-cloud-logging``, entries
  whose ``jsonPayload.job_id`` is the job), or, where ``--log-dir`` /
  ``LOCAL_CLOUD_LOG_DIR`` names a folder of JSON-lines logs (the local
  cloud's ``logs/``), from those files. Both hold the same lines: every
  function logs one JSON object per line with the job id (``common/logs.py``).
* The VMs' lines: each of the job's VMs that still exists, through Compute
  Engine's serial port output (its startup script and the worker write there);
  in the cloud the worker's lines also reach Cloud Logging through Docker's
  ``gcplogs`` driver, found by the container's job label.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from rich.markup import escape

from common import layout
from operators import views
from operators.output import console, emit

GCPLOGS_JOB_LABEL = "fast-render-job"  # the container label render_vm/startup.sh sets to the job id


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", metavar="JOB")
    parser.add_argument("--log-dir", default=os.environ.get("LOCAL_CLOUD_LOG_DIR"),
                        help="a folder of JSON-lines log files (default LOCAL_CLOUD_LOG_DIR; unset: Cloud Logging)")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many lines (default 1000)")


def run(args: argparse.Namespace) -> int:
    if not layout.is_valid_job_id(args.job_id):
        raise views.OperatorError(f"job id {args.job_id!r} is not valid")
    views.preflight()
    state = views.get_job(args.job_id)
    lines = _from_files(Path(args.log_dir), args.job_id) if args.log_dir else _from_cloud_logging(args.job_id, args.limit)
    lines += _from_serial_ports(state)
    lines.sort(key=lambda line: line.get("time") or "")
    lines = lines[-args.limit:]
    emit(args.json, {"job_id": args.job_id, "lines": lines}, _print)
    return 0


def _print(data: dict) -> None:
    for line in data["lines"]:
        when = (line.get("time") or "")[11:23]
        colour = {"ERROR": "red", "WARNING": "yellow"}.get(line.get("severity", ""), "white")
        console.print(f"{when} [dim]{line['source']:<22}[/] [{colour}]{escape(line.get('message', ''))}[/]")


def _mentions(entry: dict, job_id: str) -> bool:
    labels = entry.get("logging.googleapis.com/labels") or {}
    return entry.get("job_id") == job_id or labels.get("job_id") == job_id


def _from_files(folder: Path, job_id: str) -> list[dict]:
    if not folder.is_dir():
        raise views.OperatorError(f"--log-dir: {folder} is not a folder")
    lines = []
    for path in sorted(folder.rglob("*.log")):
        with open(path, errors="replace") as handle:
            for raw in handle:
                if job_id not in raw or not raw.startswith("{"):
                    continue
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(entry, dict) and _mentions(entry, job_id):
                    # A VM's serial log sits in a folder named <instance>-<id>; a function's file is fn-<name>.log.
                    source = path.parent.name.rsplit("-", 1)[0] if path.stem.startswith("serial-port") else path.stem
                    lines.append({"time": entry.get("time"), "source": source, "severity": entry.get("severity"),
                                  "message": entry.get("message", ""), "entry": entry})
    return lines


def _from_cloud_logging(job_id: str, limit: int) -> list[dict]:
    try:
        from google.cloud import logging as cloud_logging
    except ImportError:
        raise views.OperatorError("reading Cloud Logging needs google-cloud-logging (pip install google-cloud-logging), "
                                  "or give --log-dir") from None
    from functions import clients

    client = cloud_logging.Client(project=clients.config().project)
    # The functions' lines carry job_id; the VM's worker writes through Docker's gcplogs driver, whose entry
    # holds the line as a string in jsonPayload.message and the container's labels in
    # jsonPayload.container.metadata (moby daemon/logger/gcplogs; render_vm/startup.sh labels it).
    query = (f'jsonPayload.job_id="{job_id}" OR labels.job_id="{job_id}" '
             f'OR jsonPayload.container.metadata."{GCPLOGS_JOB_LABEL}"="{job_id}"')
    lines = []
    for entry in client.list_entries(filter_=query, order_by=cloud_logging.ASCENDING, max_results=limit):
        payload = entry.payload if isinstance(entry.payload, dict) else {"message": str(entry.payload)}
        if "container" in payload:  # a gcplogs entry: the worker's own JSON line is inside
            payload = _json_or_none(str(payload.get("message", "")).strip()) or payload
        lines.append({"time": entry.timestamp.isoformat() if entry.timestamp else None,
                      "source": (entry.resource.labels or {}).get("function_name") or entry.log_name.rsplit("/", 1)[-1],
                      "severity": entry.severity, "message": payload.get("message", ""), "entry": payload})
    return lines


def _from_serial_ports(state) -> list[dict]:
    from google.api_core.exceptions import NotFound

    from functions import clients

    cfg, lines = clients.config(), []
    attempts = [*state.fallback.previous, {"instance": state.fallback.instance, "zone": state.fallback.zone}]
    for vm in attempts:
        if not vm.get("instance") or not vm.get("zone"):
            continue
        try:
            output = clients.instances_client().get_serial_port_output(project=cfg.project, zone=vm["zone"],
                                                                       instance=vm["instance"])
        except NotFound:
            continue  # deleted: in the cloud its lines are in Cloud Logging
        for raw in output.contents.splitlines():
            entry = _json_or_none(raw)
            lines.append({"time": entry.get("time") if entry else None, "source": vm["instance"],
                          "severity": entry.get("severity") if entry else None,
                          "message": entry.get("message", raw) if entry else raw, "entry": entry})
    return lines


def _json_or_none(raw: str) -> dict | None:
    if not raw.startswith("{"):
        return None
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None
