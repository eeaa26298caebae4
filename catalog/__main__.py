"""Command line: estimate render time and cost per GPU, or validate a catalog file.

    python -m catalog estimate --length 180 [--catalog FILE] [--baseline 20] [--overhead 0]
                               [--deadline S] [--spot] [--preemptions N] [--block SPEC ...]
                               [--learned FILE] [--budget USD] [--json]
    python -m catalog validate [FILE]     (either form: full, or the design note's short one)

Exit status: 0 done; 1 no option could be selected; 2 invalid input or catalog.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from catalog.learned import LearnedSpeeds
from catalog.model import ENV_VIDEO_LENGTH, CatalogError, load_catalog, resolve_video_length
from catalog.select import Block, Decision, Option, format_usd, select


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except (CatalogError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m catalog", description="GPU catalog and selector")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    estimate = commands.add_parser("estimate", help="estimate runtime and cost per GPU and pick one")
    estimate.add_argument("--length", type=float, help=f"video length in seconds (default: ${ENV_VIDEO_LENGTH})")
    estimate.add_argument("--catalog", type=Path, help="catalog file (default: $GPU_CATALOG or the bundled one)")
    estimate.add_argument("--baseline", type=float, help="seconds of render per second of video on a T4")
    estimate.add_argument("--overhead", type=float, help="fixed seconds per VM, replacing boot + transfer")
    estimate.add_argument("--deadline", type=float, help="seconds from now by which the render should be done")
    estimate.add_argument("--spot", action="store_true", help="also weigh Spot VMs")
    estimate.add_argument("--preemptions", type=int, default=0, help="times this job was already preempted")
    estimate.add_argument(
        "--block",
        action="append",
        default=[],
        type=_block,
        metavar="GPU[:PROV][@ZONE|REGION]",
        help="something unavailable, e.g. l4@us-central1-a or a100:spot@us-central1 (repeatable)",
    )
    estimate.add_argument("--learned", type=Path, help="learned speeds JSON (LearnedSpeeds.to_json)")
    estimate.add_argument("--budget", type=float, help="per-job budget in USD (default: the catalog's)")
    estimate.add_argument("--json", action="store_true", help="print the decision as JSON")
    estimate.set_defaults(run=_estimate)

    validate = commands.add_parser("validate", help="validate a catalog file")
    validate.add_argument("file", nargs="?", type=Path, help="catalog file (default: $GPU_CATALOG or the bundled one)")
    validate.set_defaults(run=_validate)
    return parser


def _block(text: str) -> Block:
    try:
        return Block.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _estimate(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.catalog)
    length = args.length if args.length is not None else resolve_video_length(None)
    learned = LearnedSpeeds.from_json(args.learned.read_text()) if args.learned else None
    decision = select(
        catalog,
        length,
        deadline_s=args.deadline,
        spot=args.spot,
        preemptions_so_far=args.preemptions,
        blocked=args.block,
        learned=learned,
        baseline_s_per_s=args.baseline,
        overhead_s=args.overhead,
        per_job_budget_usd=args.budget,
    )
    if args.json:
        print(json.dumps(decision.to_dict(), indent=2))
    else:
        print(_table(decision))
    return 0 if decision.selected else 1


def _validate(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.file)
    names = ", ".join(catalog.gpus)
    form = "short form (top-level GPU entries)" if catalog.form == "short" else "full form (gpus:)"
    print(f"ok: {catalog.source}: {len(catalog.gpus)} GPU options ({names}), {form}")
    for default in catalog.defaults:  # what the short form left out and the loader assumed: worth seeing
        print(f"  default {default}")
    return 0


def _table(decision: Decision) -> str:
    deadline = f", deadline {decision.deadline_s:g} s" if decision.deadline_s is not None else ""
    lines = [
        f"Video {decision.video_length_s:g} s at {decision.baseline_s_per_s:g} s/s on a T4{deadline}",
        f"{'GPU':<14} {'RUNTIME':>9} {'COST':>8}  ESTIMATE",
    ]
    for option in decision.options:
        status = (
            "SELECTED" if option is decision.selected else (f"excluded: {option.excluded}" if option.excluded else "")
        )
        if decision.deadline_s is not None and not option.excluded and not option.meets_deadline:
            status = (status + " (misses deadline)").strip()
        lines.append(
            f"{option.label:<14} {option.runtime_s:>7.0f} s {format_usd(option.cost_usd):>8}  "
            f"{_formula(decision, option):<48} {status}".rstrip()
        )
    lines.append("")
    lines.append(decision.reasons)
    return "\n".join(lines)


def _formula(decision: Decision, option: Option) -> str:
    """The seed's arithmetic for one row, e.g. '180s x 20s/s / 1.5 = 2400s'."""
    length = f"{decision.video_length_s:g}s"
    if option.speed_source == "learned":
        render = f"{length} x {option.render_s / decision.video_length_s:.2f}s/s (learned)"
    else:
        render = f"{length} x {decision.baseline_s_per_s:g}s/s / {option.speed_factor:.1f}"
    rework = option.runtime_s - option.render_s - option.overhead_s
    overhead = f" + {option.overhead_s:.0f}s" if round(option.overhead_s) else ""
    rework_text = f" + {rework:.0f}s rework" if round(rework) else ""
    return f"{render}{overhead}{rework_text} = {option.runtime_s:.0f}s"


if __name__ == "__main__":
    sys.exit(main())
