"""``python -m render_vm COMMAND ...``: dispatch to the renderer or the worker.

Each command owns its own argument parser; they are imported only when used, so
``worker`` never pays for the renderer's imports and vice versa.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "render": ("render_vm.renderer.cli", "render a job folder to an MP4 (standalone, no cloud)"),
    "worker": ("render_vm.worker", "run as the cloud worker (fallback VM or Vertex AI container)"),
}


def _usage() -> str:
    lines = ["usage: python -m render_vm {render,worker} ...", "", "commands:"]
    lines += [f"  {name:8} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(_usage(), file=sys.stderr)
        print(f"error: unknown command {argv[0]!r}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
