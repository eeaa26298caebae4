"""Command line: estimate render time and cost per option (GPUs and CPU-only machines), or validate a catalog.

    python -m catalog estimate --length 180 [--catalog FILE] [--baseline 20] [--overhead 0]
                               [--deadline S] [--spot] [--preemptions N] [--block SPEC ...]
                               [--learned FILE] [--budget USD] [--pricing model|speed_factor]
                               [--size 1920x1080] [--calibration FILE] [--gpu-only] [--json]

With pricing "model" (the bundled catalog's) each row shows the runtime model's
terms: frames, composing on the usable cores of the machine's vCPUs, encoding
(NVENC, assumed or measured, or libx264 on the vCPUs), the rest of the render
(worker start, preparing, audio mix, mux), boot and transfer. With --baseline
(or pricing "speed_factor") it is the design note's table.
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
from catalog.model import (
    ENV_GPU_ONLY, ENV_VIDEO_LENGTH, PRICING_MODEL, PRICINGS, CatalogError, load_catalog, resolve_video_length,
)
from catalog.runtime_model import ASSUMED_NVENC_SOURCE, DEFAULT_SIZE, Calibration, load_calibration
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
    estimate.add_argument("--pricing", choices=PRICINGS, help="how to estimate (default: the catalog's)")
    estimate.add_argument("--size", default=DEFAULT_SIZE, help="output size the model prices (default %(default)s)")
    estimate.add_argument("--calibration", type=Path, help="calibration file (default: $CATALOG_CALIBRATION or "
                                                           "catalog/calibration.json)")
    estimate.add_argument("--gpu-only", action="store_true", default=None,
                          help=f"exclude CPU-only machines (default: ${ENV_GPU_ONLY})")
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
    calibration = load_calibration(args.calibration)
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
        pricing=args.pricing,
        size=args.size,
        calibration=calibration,
        gpu_only=args.gpu_only,
    )
    if args.json:
        print(json.dumps(decision.to_dict(), indent=2))
    elif decision.pricing == PRICING_MODEL:
        print(_model_table(decision, calibration))
    else:
        print(_table(decision))
    return 0 if decision.selected else 1


def _validate(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.file)
    names = ", ".join(catalog.gpus)
    form = "short form (top-level GPU entries)" if catalog.form == "short" else "full form (gpus:)"
    cpus = f", {len(catalog.cpus)} CPU-only ({', '.join(catalog.cpus)})" if catalog.cpus else ""
    print(f"ok: {catalog.source}: {len(catalog.gpus)} GPU options ({names}){cpus}, {form}, "
          f"pricing {catalog.pricing}")
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


def _model_table(decision: Decision, calibration: Calibration) -> str:
    """The runtime model's table: GPUs and CPU-only machines side by side, each with its terms."""
    machine = calibration.machine
    deadline = f", deadline {decision.deadline_s:g} s" if decision.deadline_s is not None else ""
    lines = [
        f"Video {decision.video_length_s:g} s at {decision.size}, pricing: model "
        f"(calibrated on {machine['cpu_model']}, {machine['cores']} cores, {machine['date']}){deadline}",
        f"{'OPTION':<20} {'KIND':<9} {'VCPU':>4} {'RUNTIME':>9} {'COST':>8}  "
        f"{'FRAMES':>6} {'COMPOSE/CORES':>13} {'ENCODE':>18} {'OTHER':>6} {'BOOT':>5} {'XFER':>5}",
    ]
    assumed = False
    for option in decision.options:
        status = "SELECTED" if option is decision.selected else (
            f"excluded: {option.excluded}" if option.excluded else "")
        if decision.deadline_s is not None and not option.excluded and not option.meets_deadline:
            status = (status + " (misses deadline)").strip()
        kind = "cpu-only" if option.cpu_only else ("gpu+nvenc" if option.has_nvenc else "gpu")
        terms = option.estimate
        if terms is None:
            detail = f"{'':>6} {option.note}"
        else:
            assumed |= terms["encode_source"] == "assumed"
            if terms["encoder"] == "h264_nvenc":
                encoder = "nvenc" + (" assumed" if terms["encode_source"] == "assumed" else " measured")
            else:
                encoder = terms["encoder"].replace("libx264 ", "x264 ")
            learned = " (learned)" if option.speed_source == "learned" else ""
            detail = (f"{terms['frames']:>6} {terms['compose_s']:>5.0f}s/{terms['usable_cores']:>4.1f}c  "
                      f"{terms['encode_s']:>5.0f}s {encoder:<14} {terms['other_s']:>4.0f}s "
                      f"{terms['boot_s']:>4.0f}s {terms['transfer_s']:>4.0f}s{learned}")
        lines.append(f"{option.label:<20} {kind:<9} {option.vcpus or '?':>4} {option.runtime_s:>7.0f} s "
                     f"{'$' + format(option.cost_usd, '.4f'):>8}  {detail}  {status}".rstrip())
    lines.append("")
    sample = next((o.estimate for o in decision.options if o.estimate), None)
    if sample is not None:
        lines.append(f"cores: usable cores of the vCPUs, {sample['scaling'].split(', extrapolated')[0]} "
                     f"(Amdahl's law beyond them); encode: libx264 on the vCPUs unless the GPU has NVENC; "
                     f"other: worker start, preparing, audio mix, mux.")
    if assumed:
        lines.append(f"NVENC {ASSUMED_NVENC_SOURCE}.")
    lines.append(f"transfer: {calibration.transfer_source}")
    lines += [f"calibration warning: {warning}" for warning in calibration.warnings]
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
