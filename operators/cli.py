"""``avmonitor``: watch and steer Fast Render from a terminal.

    avmonitor health                      every dependency, one line each (exit 0: all healthy)
    avmonitor status [--state S] [--since 24h] [--limit N] [--cursor C]
    avmonitor show JOB                    the whole timeline, every decision and attempt
    avmonitor vm-status                   every VM we launched; orphans and stale heartbeats flagged
    avmonitor watch [JOB...]              live progress bars until the jobs finish
    avmonitor logs JOB                    the job's log lines from every function and its VMs
    avmonitor cost [--since 7d] [--csv]   estimated against actual cost, the saving against Vertex AI
    avmonitor launch JOB [--gpu G] [--spot|--on-demand]
    avmonitor retry JOB | cancel JOB

Every command takes ``--json``. The environment says which cloud: the same
variables as the functions (``GOOGLE_CLOUD_PROJECT``, the emulator hosts and
endpoints locally); ``./avmonitor`` from the repository root uses the running
local cloud's when none is set. The operator's name in the timeline and the
logs is ``AVMONITOR_OPERATOR`` (default: the login name).
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import os
import sys

from operators import output
from operators.views import OperatorError

# Commands whose code lives in a module of their own: name -> (module, help).
_MODULE_COMMANDS = {
    "health": ("operators.health", "check every dependency: one line each, exit 0 only when all are healthy"),
    "status": ("operators.cmd_jobs", "jobs, newest first"),
    "show": ("operators.cmd_jobs", "one job: its timeline, decisions and attempts"),
    "vm-status": ("operators.cmd_vms", "every VM the system launched"),
    "watch": ("operators.watch", "live progress of active jobs until they finish"),
    "logs": ("operators.logs", "a job's log lines from every function and its VMs"),
    "cost": ("operators.cost", "estimated against actual cost, and the saving against Vertex AI"),
    "ab": ("operators.ab", "A/B experiments: each arm's time, cost and failures, with confidence intervals"),
    "launch": ("operators.cmd_controls", "render a job on a VM now"),
    "retry": ("operators.cmd_controls", "start a failed or cancelled job again"),
    "cancel": ("operators.cmd_controls", "stop a job and delete its VM"),
}


def operator() -> str:
    return os.environ.get("AVMONITOR_OPERATOR") or getpass.getuser()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avmonitor", description=__doc__.split("\n\n")[0].replace("``", ""))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in _MODULE_COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--json", action="store_true", help="print JSON instead of tables")
        module = importlib.import_module(module_name)
        adder = getattr(module, f"add_{name.replace('-', '_')}_arguments", None) or module.add_arguments
        adder(sub)
        sub.set_defaults(module=module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.operator = operator()
    module = importlib.import_module(args.module)
    runner = getattr(module, f"run_{args.command.replace('-', '_')}", None) or module.run
    try:
        return runner(args)
    except OperatorError as err:
        return output.fail(str(err))
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 -- an unreachable service or missing credentials: one line, not a trace
        return output.fail(_one_line(err))


def _one_line(err: Exception) -> str:
    from google.api_core import exceptions as api
    from google.auth.exceptions import DefaultCredentialsError

    if isinstance(err, DefaultCredentialsError):
        return "no Google credentials: run `gcloud auth application-default login`, or start the local cloud (make up)"
    if isinstance(err, (api.ServiceUnavailable, api.DeadlineExceeded, api.RetryError)):
        return f"a service did not answer ({type(err).__name__}): {str(err).splitlines()[0][:200]}; is the cloud up? (avmonitor health)"
    if isinstance(err, api.GoogleAPICallError):
        return f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    return f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"


if __name__ == "__main__":
    sys.exit(main())
