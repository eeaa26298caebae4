"""`make demo`: one story becomes a video while the primary renderer fails.

1. Start the local cloud (Pub/Sub emulator, fake GCS, the functions, the
   Compute Engine and Vertex AI stand-ins) on free ports.
2. Inject the primary's failure: Vertex AI answers with a GPU quota error.
3. Make a story job on the fly (scenes with images, narration, captions and
   music), stage its assets in the staging bucket and publish the job message,
   as the main app does.
4. Wait for ``render-completed`` (the main pipeline's resume signal), fetch the
   video into ``out/``, check it, and print the job's timeline: each state with
   its time, the GPU chosen and why, and the estimated cost; then what
   ``avmonitor status`` and ``avmonitor cost`` say about it.
5. Leave the local cloud running (in ``.local-cloud``, where ``./avmonitor``
   and ``make down`` find it), so the operator's view can be tried on it;
   ``--another`` submits one more job to it and returns at once (then
   ``./avmonitor watch JOB``).

    python -m infra.local.demo [--scenes 6] [--width 1280 --height 720] [--fault quota|timeout|queued|none]
    python -m infra.local.demo --another [--scenes 12]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import av

from common import layout
from infra.local.cloud import REPO_ROOT, LocalCloud, Ports, down, is_running, read_state, resolve_state_dir
from infra.local.testkit import admin, format_timeline, stage_job, submit_job
from infra.local.topology import load_topology


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fault", choices=("quota", "timeout", "queued", "none"), default="quota")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "out")
    parser.add_argument("--another", action="store_true", help="submit one more job to the running cloud and return")
    parser.add_argument("--stop", action="store_true", help="stop the local cloud at the end")
    args = parser.parse_args(argv)
    if args.another:
        return _submit_another(args)

    job_id = f"story-{time.strftime('%Y%m%d-%H%M%S')}"
    began = time.monotonic()
    project = os.environ.get("GOOGLE_CLOUD_PROJECT", "fast-render-local")
    state_dir = resolve_state_dir()
    if down(state_dir):
        print(f"Stopped the local cloud that was running from {state_dir}", flush=True)
    cloud = LocalCloud(project=project, ports=Ports.free(load_topology(project)), state_dir=state_dir,
                       tick_every_s=5, extra_env={"VM_WORKER_COMMAND": "python -m render_vm worker"})
    print(f"Starting the local cloud (logs: {cloud.log_dir}) ...", flush=True)
    cloud.start()
    try:
        print(f"  up in {cloud.up_seconds:.1f} s", flush=True)
        os.environ.update(cloud.env)  # this process is a client of the local cloud, like the main app
        from functions import clients  # noqa: PLC0415 -- after the env points at the local cloud
        from functions.jobs import store  # noqa: PLC0415

        if args.fault != "none":
            admin(cloud.env["VERTEX_API_ENDPOINT"], "faults", {"mode": args.fault, "queue_s": None})
            print(f"Injected into Vertex AI: {args.fault}", flush=True)

        from render_vm.sample_job import make_sample_job  # noqa: PLC0415

        with tempfile.TemporaryDirectory() as tmp:
            job_dir = Path(tmp) / job_id
            manifest = make_sample_job(job_dir, scenes=args.scenes, width=args.width, height=args.height,
                                       seconds_per_scene=3.0, job_id=job_id)
            staging = clients.storage_client().bucket(clients.config().staging_bucket)
            submit_job(cloud, staging, job_dir)
        print(f"Staged job {job_id} ({len(manifest['scenes'])} scenes, {args.width}x{args.height}) and published its job message",
              flush=True)

        outcome = _wait_for_outcome(cloud, job_id, timeout_s=600)
        state = store().get(job_id)
        print("\nTimeline:")
        print(format_timeline(state) if state else "  (no state)")
        if outcome.get("status") != "succeeded" or state is None:
            print(f"\nThe job did not succeed: {outcome.get('reason') or outcome}", file=sys.stderr)
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        video = args.out / f"{job_id}.mp4"
        clients.storage_client().bucket(clients.config().output_bucket).blob(layout.video_object(job_id)).download_to_filename(str(video))
        _print_summary(state, video)
        _print_operators_view(job_id)
    finally:
        if args.stop:
            cloud.stop()
    print(f"\nmake demo: {time.monotonic() - began:.1f} s in all; the video is {video.relative_to(REPO_ROOT)}")
    if not args.stop:
        print("The local cloud is still running: ./avmonitor status | vm-status | cost | health; "
              "python -m infra.local.demo --another, then ./avmonitor watch JOB; make down stops it.")
        print(f"Dashboard: {cloud.env['STATUS_URL']}/dashboard/#token={cloud.env['AVMONITOR_TOKEN']}")
    return 0


def _print_operators_view(job_id: str) -> None:
    """What an operator sees of this job: ``avmonitor status`` and its cost line."""
    from operators.cli import main as avmonitor  # noqa: PLC0415

    from operators.cost import cost_report  # noqa: PLC0415
    from operators.output import usd  # noqa: PLC0415

    print("\n$ avmonitor status --limit 1", flush=True)
    avmonitor(["status", "--limit", "1"])
    row = next((j for j in cost_report(86400)["jobs"] if j["job_id"] == job_id), None)
    if row is not None:
        saving = f", {row['saving_fraction'] * 100:.0f}% less" if row["saving_fraction"] is not None else ""
        print(f"cost ({job_id}): actual {usd(row['actual_usd'])} (VM {row['vm_s'] or 0:.0f} s, Vertex AI "
              f"{row['vertex_s'] or 0:.0f} s), estimated {usd(row['estimate_usd'])}; on Vertex AI about "
              f"{usd(row['vertex_equivalent_usd'])}{saving} (avmonitor cost)")


def _submit_another(args: argparse.Namespace) -> int:
    """One more story job for the running local cloud (made on the fly, staged, announced); returns at once."""
    state = read_state(resolve_state_dir())
    if state is None or not any(is_running(record) for record in state["processes"]):
        print("no local cloud is running: run make demo (or make up) first", file=sys.stderr)
        return 1
    os.environ.update(state["env"])
    from functions import clients  # noqa: PLC0415 -- after the env points at the local cloud
    from render_vm.sample_job import make_sample_job  # noqa: PLC0415

    job_id = f"story-{time.strftime('%Y%m%d-%H%M%S')}"
    with tempfile.TemporaryDirectory() as tmp:
        job_dir = Path(tmp) / job_id
        make_sample_job(job_dir, scenes=args.scenes, width=args.width, height=args.height, seconds_per_scene=3.0, job_id=job_id)
        _stage_and_announce(clients, job_dir)
    print(f"submitted {job_id}: ./avmonitor watch {job_id}")
    return 0


def _stage_and_announce(clients, job_dir: Path) -> None:
    """Stage the job's assets and publish its job message, as the main app does."""
    manifest = json.loads((job_dir / "job.json").read_text())
    stage_job(clients.storage_client().bucket(clients.config().staging_bucket), job_dir, manifest["job_id"], with_manifest=False)
    clients.publish("render-jobs", {"manifest": manifest}, job_id=manifest["job_id"])


def _wait_for_outcome(cloud: LocalCloud, job_id: str, timeout_s: float) -> dict:
    """The job's render-completed or render-failed message, as the main app would get it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for subscription in ("render-completed-main", "render-failed-main"):
            for message in cloud.pull(subscription, timeout=1.0):
                body = json.loads(message.data)
                if body.get("job_id") == job_id:
                    return body
    raise TimeoutError(f"no outcome for {job_id} after {timeout_s:.0f} s (see {cloud.log_dir})")


def _print_summary(state, video: Path) -> None:
    fallback, result = state.fallback, state.result
    if fallback.gpu:
        print(f"\nGPU chosen: {fallback.gpu} ({fallback.provisioning}, {fallback.machine_type}) "
              f"in {fallback.zone}, estimated {fallback.estimated_runtime_s} s, "
              f"${fallback.estimated_cost_usd or 0:.2f}")
        print(f"Why: {fallback.why}")
    with av.open(str(video)) as container:
        streams = {s.type: s for s in container.streams}
        duration_s = container.duration / 1_000_000 if container.duration else float("nan")
        v, a = streams.get("video"), streams.get("audio")
        print(f"\nVideo: {video.name}: {v.codec_context.name if v else '-'} {v.width}x{v.height} "
              f"+ {a.codec_context.name if a else '-'} {a.rate if a else ''} Hz, {duration_s:.2f} s "
              f"(timeline: {state.video_length_s:.2f} s)")
    print(f"Rendered by {result.rendered_by} on {result.instance} in {result.wall_s} s "
          f"({result.report.get('s_per_s')} s per second of video), cost ${result.cost_usd or 0:.4f}")


if __name__ == "__main__":
    sys.exit(main())
