"""``avmonitor launch | retry | cancel JOB``: the controls, through ``operators/controls.py``."""

from __future__ import annotations

import argparse

from operators import controls, views
from operators.output import console, emit


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", metavar="JOB")
    parser.add_argument("--gpu", metavar="NAME",
                        help="an option of the catalog: a GPU (t4, l4, ...) or a CPU-only machine (c3-highcpu-8, ...); "
                             "default: the selector's choice")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--spot", dest="provisioning", action="store_const", const="spot")
    kind.add_argument("--on-demand", dest="provisioning", action="store_const", const="on-demand")


def add_arguments(parser: argparse.ArgumentParser) -> None:  # retry, cancel
    parser.add_argument("job_id", metavar="JOB")


def run_launch(args: argparse.Namespace) -> int:
    views.preflight()
    row = controls.launch(args.job_id, gpu=args.gpu, provisioning=args.provisioning, operator=args.operator)
    emit(args.json, row, lambda r: console.print(f"{r['job_id']}: {r['state']}: {r['last_note']}"))
    return 0


def run_retry(args: argparse.Namespace) -> int:
    views.preflight()
    row = controls.retry(args.job_id, operator=args.operator)
    emit(args.json, row, lambda r: console.print(f"{r['job_id']}: {r['state']}: {r['last_note']}"))
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    views.preflight()
    row = controls.cancel(args.job_id, operator=args.operator)
    emit(args.json, row, lambda r: console.print(f"{r['job_id']}: {r['state']}: {r['last_note']}"))
    return 0
