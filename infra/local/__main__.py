"""The local cloud's command line: ``python -m infra.local up|down|status|env``.

    python -m infra.local up                  # start everything (see infra/local/cloud.py)
    eval "$(python -m infra.local env)"       # point this shell's clients at it
    python -m infra.local status
    python -m infra.local kill primary        # SIGKILL a function; its supervisor starts it again
    python -m infra.local down                # stop everything it started; safe to repeat

Every setting has a flag and an environment variable; the flags win.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from infra.local import cloud
from infra.local.cloud import LocalCloud, LocalCloudError, Ports
from infra.local.topology import DEFAULT_PATH, load_topology

_PORT_FLAGS = ("pubsub", "gcs", "firestore", "compute", "vertex", "functions")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description="Start and stop the local cloud.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, help="state, data and logs (LOCAL_CLOUD_STATE_DIR; .local-cloud)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", parents=[common], help="start the local cloud and return once it is ready")
    up.add_argument("--project", help="project id (GOOGLE_CLOUD_PROJECT; fast-render-local)")
    up.add_argument("--base-port", type=int, help=f"LOCAL_CLOUD_BASE_PORT; {cloud.DEFAULT_BASE_PORT}")
    for name in _PORT_FLAGS:
        up.add_argument(f"--{name}-port", type=int, help=f"LOCAL_CLOUD_{name.upper()}_PORT")
    up.add_argument("--source", type=Path, help="the functions' source file (LOCAL_CLOUD_SOURCE; main.py)")
    up.add_argument("--topology", type=Path, default=DEFAULT_PATH)
    up.add_argument("--tick-every", type=float, help="seconds between scheduled ticks (LOCAL_CLOUD_TICK_S; the topology's)")
    up.add_argument("--no-compute-vertex", action="store_true", help="do not start the local Compute Engine and Vertex AI")
    up.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra variable for every process")
    commands.add_parser("down", parents=[common], help="stop everything the last `up` started")
    commands.add_parser("status", parents=[common], help="what is running")
    commands.add_parser("env", parents=[common], help="print `export` lines for a client of the running cloud")
    kill = commands.add_parser("kill", parents=[common], help="SIGKILL a function's process group (it is restarted)")
    kill.add_argument("function", help="a function's name in the topology, e.g. primary")
    return parser


def _ports(args: argparse.Namespace) -> Ports:
    """The environment's ports, with the flags given on top."""
    environ = dict(os.environ)
    if args.base_port:
        environ["LOCAL_CLOUD_BASE_PORT"] = str(args.base_port)
    for name in _PORT_FLAGS:
        value = getattr(args, f"{name}_port")
        if value:
            environ[f"LOCAL_CLOUD_{name.upper()}_PORT"] = str(value)
    project = args.project or environ.get("GOOGLE_CLOUD_PROJECT") or cloud.DEFAULT_PROJECT
    return Ports.from_env(load_topology(project, args.topology), environ)


def _up(args: argparse.Namespace) -> int:
    extra_env = dict(item.split("=", 1) for item in args.env)
    local_cloud = LocalCloud(
        project=args.project,
        ports=_ports(args),
        state_dir=args.state_dir,
        source=args.source,
        topology_path=args.topology,
        with_compute_vertex=not args.no_compute_vertex,
        tick_every_s=args.tick_every,
        extra_env=extra_env,
    )
    try:
        local_cloud.start()
    except LocalCloudError as error:
        print(f"local cloud not started: {error}", file=sys.stderr)
        return 1
    print(f"local cloud up in {local_cloud.up_seconds} s; state in {local_cloud.state_file}")
    print("\n".join(cloud.status_lines(local_cloud.state_dir)[1:]))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return _up(args)
    state_dir = cloud.resolve_state_dir(args.state_dir)
    if args.command == "down":
        stopped = cloud.down(state_dir)
        print(f"stopped {len(stopped)} running processes" if stopped else "nothing was running")
    elif args.command == "status":
        print("\n".join(cloud.status_lines(state_dir)))
    elif args.command == "env":
        state = cloud.read_state(state_dir)
        if state is None:
            print(f"no local cloud recorded in {state_dir}", file=sys.stderr)
            return 1
        print("\n".join(f"export {name}={shlex.quote(value)}" for name, value in state["env"].items()))
    elif args.command == "kill":
        pid = cloud.kill_function_process(cloud.function_pid_file(state_dir, args.function))
        if pid is None:
            print(f"no {args.function} process is running in the cloud recorded in {state_dir}", file=sys.stderr)
            return 1
        print(f"killed {args.function} (pid {pid}); its supervisor starts it again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
