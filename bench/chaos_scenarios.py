"""The fault campaign's scenarios: each starts jobs, injects its faults, and returns them to be judged.

Every scenario runs on the campaign's one cloud, after ``Campaign.baseline()``
(``fb-`` jobs' primaries fail on quota, nothing else misbehaves); ``run``
judges its jobs when they have ended (or the scenario's time is up), and puts
the baseline back. A fault the stand-ins do not offer yet makes the scenario
"skipped", with the reason.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.chaos_harness import Campaign, Job, StandInLacks, Verdict
from infra.local.testkit import deliver_push

# The functions a job's messages pass through (watchdog and dead-letters have their own rounds).
PATH_FUNCTIONS = {
    "intake-message": "im", "intake-upload": "iu", "primary": "pr",
    "vertex-events": "ve", "fallback-launcher": "fl", "output-finalize": "of",
}
PREEMPT_AT = (0.1, 0.5, 0.9)
BIG_JOB = {"scenes": 10, "seconds_per_scene": 2.0, "width": 1280, "height": 720}  # ~6 s of render on 2 cores


@dataclass(frozen=True)
class Size:
    name: str
    per_case: int  # jobs per case (per copies value, per killed function, per crash mode...)
    malformed_per_topic: int  # hypothesis-generated messages per topic, on top of the hand-written ones
    timeout_s: float  # how long a scenario's jobs may take to end before they count as stuck


SIZES = {
    "small": Size("small", per_case=1, malformed_per_topic=6, timeout_s=150),
    "full": Size("full", per_case=3, malformed_per_topic=40, timeout_s=300),
}


@dataclass
class Result:
    name: str
    title: str
    jobs: list[Job] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    over_budget: int = 0
    rework_frames: int = 0
    retried_forever: int = 0
    touched: int = 0  # healthy jobs a malformed message changed the course of
    wall_s: float = 0.0


# ---------------------------------------------------------------- scenarios


def duplicates(c: Campaign, size: Size, result: Result) -> None:
    """Every event type delivered twice or five times; the copies concurrent or up to 3 s late (reordered)."""
    rules = []
    for copies in (2, 5):
        for fallback in (False, True):
            for _ in range(size.per_case):
                job = c.new_job(result.name, f"dup{copies}", fallback=fallback)
                job.notes.append(f"every message x{copies}")
                rules.append({"copies": copies, "match": job.job_id, "max_delay_s": 3.0})
                result.jobs.append(job)
    rules.append({"copies": 2, "functions": ["watchdog"], "max_delay_s": 3.0})  # the ticks name no job
    c.cloud.relay.set_faults(duplicate=rules, seed=2)
    for job in result.jobs:
        c.submit(job)
    c.wait_terminal(result.jobs, size.timeout_s)
    c.outcomes.settle(3.5)  # the late copies land on finished jobs: stale events
    c.cloud.relay.clear()


def kills(c: Campaign, size: Size, result: Result) -> None:
    """Each function SIGKILLed while each of a job's messages is in flight (once per message), then all at once.

    ``before_answer``: a delivery that ends before its random kill time is
    killed as it answers, so every step of the job is killed once, somewhere
    between receiving its message and acknowledging it. Jobs go in waves of
    one per function plus one that kills every function: locally each function
    is one instance, and more killers at once would keep it down outright (an
    outage, which the cloud's many instances do not have).
    """
    for wave in range(size.per_case):
        rules, batch = [], []
        for i, (function, tag) in enumerate(PATH_FUNCTIONS.items()):
            fallback = function == "fallback-launcher" or (i + wave) % 2 == 1
            job = c.new_job(result.name, f"k{tag}", fallback=fallback)
            job.notes.append(f"kill {function}")
            rules.append({"functions": [function], "match": job.job_id, "after_ms": [0, 150], "max_per_message": 1,
                          "before_answer": True})
            batch.append(job)
        job = c.new_job(result.name, "kall", fallback=wave % 2 == 0)
        job.notes.append("kill every function")
        rules.append({"functions": ["*"], "match": job.job_id, "after_ms": [0, 150], "max_per_message": 1,
                      "before_answer": True})
        batch.append(job)
        # Ticks too: half of them, a dozen in all (the watchdog is what re-drives a step killed mid-claim).
        rules.append({"functions": ["watchdog"], "after_ms": [0, 100], "max_per_message": 1, "probability": 0.5,
                      "count": 12})
        c.cloud.relay.set_faults(kill=rules, seed=11 + wave)
        for job in batch:
            c.submit(job)
        result.jobs += batch
        c.wait_terminal(batch, size.timeout_s)
        c.cloud.relay.clear()


def primary_crashes(c: Campaign, size: Size, result: Result) -> None:
    """The primary's container crashes (exit 1, exit 137), cannot start, or is killed while hedged.

    The Vertex stand-in takes one mode at a time, so each job gets its own
    (``job_id_prefix``) and the next job waits until the primary is behind this
    one. A crash *during* a hedge cannot be one mode (``queued`` then
    ``crash``): the job is queued past PRIMARY_QUEUE_TIMEOUT_S, the watchdog
    launches the hedge VM, and when the primary leaves the queue and runs, its
    container's process group is SIGKILLed here (an OOM kill, to Vertex).
    """
    from functions.state import PRIMARY_STATES

    cases = [
        ("c1", {"mode": "crash", "exit_code": 1, "crash_after_s": 0.5}),
        ("c137", {"mode": "crash", "exit_code": 137, "crash_after_s": 0.5, "crash_oom": True}),
        ("se", {"mode": "start_error"}),
    ]
    queue_s = float(c.cloud.extra_env["PRIMARY_QUEUE_TIMEOUT_S"]) + 1.5
    hedged: list[Job] = []
    for tag, faults in [*cases, ("hedge", {"mode": "queued", "queue_s": queue_s})]:
        for _ in range(size.per_case):
            job = c.new_job(result.name, f"pc{tag}", fallback=False)
            job.notes.append(str(faults))
            c.vertex_faults(**faults, job_id_prefix=job.job_id)
            c.submit(job)
            result.jobs.append(job)
            if tag == "hedge":
                hedged.append(job)
                c.wait_for(lambda job=job: c.custom_jobs(job.job_id), 30)
            else:  # until the product has given up on this primary (its own retry included)
                c.wait_for(lambda job=job: (s := c.state(job.job_id)) and s.status not in PRIMARY_STATES, 40)
    c.baseline()
    pending = list(hedged)
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        for job in list(pending):
            running = [j for j in c.custom_jobs(job.job_id) if j["state"] == "JOB_STATE_RUNNING" and j.get("pid")]
            state = c.state(job.job_id)
            if running:
                vms = c.vms(job.job_id)
                try:
                    os.killpg(running[0]["pid"], signal.SIGKILL)
                    job.notes.append(f"primary killed while {len(vms)} hedge VM(s) existed")
                except ProcessLookupError:
                    job.notes.append("primary ended before it could be killed")
                pending.remove(job)
            elif state and state.status.terminal:
                job.notes.append("ended before the primary ran: no crash during the hedge")
                pending.remove(job)
        c.outcomes.drain(timeout_s=0.1)
        time.sleep(0.1)
    result.figures["hedge crashes"] = sum("primary killed" in j.notes[-1] and "while 0 " not in j.notes[-1] for j in hedged)
    result.figures["during the hedge"] = "; ".join(j.notes[-1] for j in hedged)
    c.wait_terminal(result.jobs, size.timeout_s)


def stale_events(c: Campaign, size: Size, result: Result) -> None:
    """The first primary fails (internal) and is retried; its events come again late, also after success.

    Only first attempts fail: the fault's prefix is matched against the
    Vertex job's label values, and the attempt label of a first attempt is "1".
    """
    c.ensure_vertex_tap()
    c.tapped_vertex_events()  # what earlier scenarios left there
    c.vertex_faults(mode="internal", job_id_prefix="1")
    batch = [c.new_job(result.name, "st", fallback=False) for _ in range(size.per_case)]
    c.cloud.relay.set_faults(duplicate=[{"functions": ["vertex-events"], "match": job.job_id, "copies": 3,
                                          "min_delay_s": 2.0, "max_delay_s": 10.0} for job in batch], seed=5)
    for job in batch:
        c.submit(job)
    result.jobs += batch
    c.wait_terminal(batch, size.timeout_s)
    c.baseline()
    # Now replay each first attempt's failure once more, two copies at once, long after the job ended.
    events = c.tapped_vertex_events()
    replayed = 0
    for job in batch:
        for message in events:
            text = message.data.decode("utf-8", "replace")
            if job.job_id in text and "JOB_STATE_FAILED" in text:
                deliver_push(c.cloud, "vertex-events", message.data, message.attributes, copies=2)
                c.cloud.publish("vertex-events", message.data, **message.attributes)
                replayed += 1
    result.figures["failure events replayed late"] = replayed
    c.outcomes.settle(4)


def hung_vm(c: Campaign, size: Size, result: Result) -> None:
    """The first VM hangs mid-render (Compute fault ``hang_after_s``): no heartbeat; the product relaunches."""
    batch = [c.new_job(result.name, "hg", fallback=True, **BIG_JOB) for _ in range(size.per_case)]
    c.compute_faults(hang_after_s=3.0)
    for job in batch:
        c.submit(job)
    result.jobs += batch
    # The fault applies to inserts made while it is set: only the first VMs hang.
    c.wait_for(lambda: all(c.vms(job.job_id) for job in batch), 60)
    c.compute_faults()
    c.wait_terminal(batch, size.timeout_s)


def lost_finalize(c: Campaign, size: Size, result: Result) -> None:
    """The video's finalize notification never reaches output-finalize (relay drop_once)."""
    batch = [c.new_job(result.name, "lf", fallback=fallback) for fallback in (False, True) for _ in range(size.per_case)]
    c.cloud.relay.set_faults(drop_once=[{"functions": ["output-finalize"], "match": f"renders/{job.job_id}/video.mp4",
                                          "count": 1} for job in batch])
    for job in batch:
        c.submit(job)
    result.jobs += batch
    c.wait_terminal(batch, size.timeout_s)
    result.figures["finalize events dropped"] = sum(r["count"] == 0 for r in c.cloud.relay.faults()["drop_once"])
    c.cloud.relay.clear()


def preemption(c: Campaign, size: Size, result: Result) -> None:
    """Spot VMs preempted at about 10 %, 50 % and 90 % of the render; the next VM reuses finished segments."""
    targets: dict[str, float] = {}
    for fraction in PREEMPT_AT:
        for _ in range(size.per_case):
            job = c.new_job(result.name, f"pe{int(fraction * 100)}", fallback=True, **BIG_JOB)
            targets[job.job_id] = fraction
            result.jobs.append(job)
    for job in result.jobs:
        c.submit(job)
    watched = {job.job_id: job for job in result.jobs}
    preempted: dict[str, dict] = {}
    deadline = time.monotonic() + size.timeout_s
    while watched and time.monotonic() < deadline:
        for job_id, job in list(watched.items()):
            done = _try_preempt(c, job, targets[job_id])
            if done is not None:
                watched.pop(job_id)
                if done:
                    preempted[job_id] = done
        c.outcomes.drain(timeout_s=0.05)
        time.sleep(0.1)
    c.wait_terminal(result.jobs, size.timeout_s)
    rework = {job_id: _rework(c, job_id, info) for job_id, info in preempted.items()}
    result.rework_frames = sum(rework.values())
    result.figures["preempted at"] = ", ".join(f"{info['fraction']:.0%}" for info in preempted.values()) or "none"
    result.figures["rework frames per job"] = ", ".join(map(str, rework.values())) or "-"


def _progress(c: Campaign, job_id: str, instance: str) -> tuple[float, dict]:
    """How far the instance is: the larger of its heartbeat's frames and the job's kept segments."""
    from common import layout

    beat = next((b for b in c.heartbeats(job_id).values() if b.get("instance") == instance), {})
    total = beat.get("frames_total") or 0
    by_frames = (beat.get("frames_done") or 0) / total if total else 0.0
    segments_total = beat.get("segments_total") or 0
    kept = sum(1 for _ in c.staging.list_blobs(prefix=layout.segments_prefix(job_id)))
    by_segments = kept / segments_total if segments_total else 0.0
    return max(by_frames, by_segments), {**beat, "segments_kept": kept}


def _try_preempt(c: Campaign, job: Job, fraction: float) -> dict | None:
    """Preempt the job's first Spot VM once it is ``fraction`` through; None while it is not there yet.

    Returns what was seen at the preemption, or {} if the moment passed (the
    render finished, or the VM is not Spot).
    """
    vms = [vm for vm in c.vms(job.job_id) if vm["status"] == "RUNNING" and not vm.get("deleted")]
    state = c.state(job.job_id)
    if state and state.status.terminal:
        job.notes.append("finished before it could be preempted")
        return {}
    if not vms:
        return None
    vm = vms[0]
    if (vm.get("scheduling") or {}).get("provisioningModel") != "SPOT":
        job.notes.append("its VM is not Spot: not preempted")
        return {}
    done, beat = _progress(c, job.job_id, vm["name"])
    if beat.get("stage") in ("uploading", "done", "lost-race"):
        job.notes.append(f"render finished before {fraction:.0%}")
        return {}
    if done < fraction:
        return None
    c.compute_action(vm, "preempt")
    job.notes.append(f"preempted {vm['name']} at {done:.0%} (target {fraction:.0%})")
    return {**beat, "fraction": done, "instance": vm["name"], "preempted_at": time.time()}


def _rework(c: Campaign, job_id: str, seen: dict) -> int:
    """Frames the preempted VM rendered that the next one rendered again.

    The preempted VM's last heartbeat says how many frames it had done when it
    was written (every 2 s) and at what speed; carried forward to the moment of
    the preemption, that is what it had done. The finished video's render
    report says how many segments (one per scene here) the last VM reused. What
    was done and not in a reused segment was rendered twice.
    """
    beats = [b for b in c.heartbeats(job_id).values() if b.get("instance") == seen["instance"]]
    last = max([seen, *beats], key=lambda b: float(b.get("updated_at") or 0))
    report = c.render_report(job_id)
    segments_total = report.get("segments_total") or seen.get("segments_total") or 0
    frames_total = report.get("frames") or seen.get("frames_total") or 0
    if not segments_total or not frames_total:
        return 0
    since = max(0.0, seen["preempted_at"] - float(last.get("updated_at") or seen["preempted_at"]))
    frames_done = min(frames_total, round(float(last.get("frames_done") or 0) + float(last.get("fps") or 0) * since))
    reused_frames = round(report.get("segments_reused", 0) * frames_total / segments_total)
    return max(0, frames_done - reused_frames)


def budget_edge(c: Campaign, size: Size, result: Result) -> None:
    """Several jobs at once whose primary fails on quota, with the day's budget nearly spent."""
    from catalog.model import load_catalog
    from catalog.select import select
    from functions import budget

    c.clear_fleet_memory()
    catalog = load_catalog()
    count = 4 * size.per_case
    batch = [c.new_job(result.name, "bu", fallback=True, expect="budget") for _ in range(count)]
    cost = select(catalog, 3.0, spot=True).selected.cost_usd  # make_sample_job(scenes=3, seconds_per_scene=1)
    daily = catalog.budget.daily_usd
    room = 2.5 * cost  # two launches fit, the third does not
    budget.record_spend("chaos-earlier-jobs", daily - room)
    for job in batch:
        c.submit(job)
    result.jobs += batch
    c.wait_terminal(batch, size.timeout_s)
    spent = budget.spent_today_usd()
    result.over_budget = int(spent > daily + 1e-9)
    launched = sum(bool(c.vms(job.job_id)) for job in batch)
    refused = sum(str(f.get("reason", "")).startswith("daily budget") for job in batch for f in c.outcomes.failed.get(job.job_id, []))
    result.figures["launched"] = f"{launched} of {count} (room for {room / cost:.1f})"
    result.figures["refused for the budget"] = refused
    result.figures["spent"] = f"${spent:.4f} of ${daily:.2f}"
    c.clear_fleet_memory()


def malformed(c: Campaign, size: Size, result: Result) -> None:
    """Malformed messages of every kind on every topic while healthy jobs are in flight; none retried forever."""
    from bench.chaos_messages import malformed_messages

    healthy = [c.new_job(result.name, "mh", fallback=fallback) for fallback in (False, True) for _ in range(size.per_case)]
    for job in healthy:
        c.submit(job)
    result.jobs += healthy
    messages = malformed_messages(size.malformed_per_topic, avoid=set(c.jobs), seed=3)
    # The dead-letters function is killed once per message too: giving up must survive a crash as well.
    c.cloud.relay.set_faults(kill={"functions": ["dead-letters"], "after_ms": [0, 30], "max_per_message": 1}, seed=2)
    published = refused = direct = 0
    before = {m["message_id"] for m in c.cloud.relay.messages()}
    for i, (topic, data, attributes) in enumerate(messages):
        try:
            c.cloud.publish(topic, data, **attributes)
            published += 1
        except Exception:  # noqa: BLE001 -- Pub/Sub itself refuses some (attribute sizes, characters)
            refused += 1
        if i % 4 == 0:  # some straight to the function, two copies at once, as concurrent pushes
            function = c.cloud.topology.functions[[f.topic for f in c.cloud.topology.functions].index(topic)].name
            deliver_push(c.cloud, function, data, attributes, copies=2, timeout_s=60)
            direct += 2
    c.wait_terminal(healthy, size.timeout_s)
    c.cloud.relay.clear()
    # A failed push is retried with backoff (1 s .. 10 s), 5 times, then dead-lettered; the dead
    # letters' own subscription retries without end. With the faults off, every message must come to
    # rest: answered 2xx, or failed 5 times on its way to dead-letters. Still failing after a minute,
    # or pushed more than 5 times to a function with a dead-letter policy: retried forever.
    max_attempts = c.cloud.topology.push_delivery.max_delivery_attempts

    def restless() -> list[dict]:
        return [m for m in c.cloud.relay.messages() if m["message_id"] not in before and m["function"] != "watchdog"
                and (m["attempts"] > max_attempts or (not _ok(m["last_status"])
                                                      and (m["function"] == "dead-letters" or m["attempts"] < max_attempts)))]

    c.wait_for(lambda: not restless(), 60, interval_s=1.0)
    forever = restless()
    result.retried_forever = len(forever)
    result.touched = sum(_touched(c, job) for job in healthy)
    result.figures["messages"] = f"{len(messages)} ({published} published, {refused} refused by Pub/Sub, {direct} pushed directly)"
    mine = [m for m in c.cloud.relay.messages() if m["message_id"] not in before and m["function"] != "watchdog"]
    result.figures["dead-lettered"] = sum(1 for m in mine if m["function"] != "dead-letters" and not _ok(m["last_status"]))
    result.figures["given up on by dead-letters"] = sum(1 for m in mine if m["function"] == "dead-letters" and _ok(m["last_status"]))
    result.figures["retried forever"] = len(forever)
    result.figures["healthy jobs touched"] = result.touched
    if forever:
        result.figures["retried forever (first)"] = forever[:3]


def _touched(c: Campaign, job: Job) -> bool:
    """Whether the healthy job took another course than its own: a VM for a primary job, a second VM or primary."""
    state = c.state(job.job_id)
    statuses = {h["status"] for h in (state.history if state else [])}
    vms, primaries = len(c.vms(job.job_id)), len(c.custom_jobs(job.job_id))
    if job.on_fallback:
        touched = vms > 1 or primaries > 1
    else:
        touched = vms > 0 or primaries > 1 or bool(statuses & {"fallback_requested", "vm_launching", "vm_running"})
    if touched:
        job.notes.append(f"touched by a malformed message: {vms} VM(s), {primaries} primaries, statuses {sorted(statuses)}")
    return touched


def _spread(values: list[float]) -> str:
    if not values:
        return ""
    values = sorted(values)
    return f"{values[len(values) // 2]:.0f} s, {values[-1]:.0f} s"


def _ok(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


SCENARIOS: dict[str, tuple[str, Callable[[Campaign, Size, Result], None]]] = {
    "duplicates": ("every event delivered 2x and 5x, reordered", duplicates),
    "kills": ("each function SIGKILLed mid-delivery, then all", kills),
    "primary-crash": ("primary container crash / start error, before and during a hedge", primary_crashes),
    "stale-events": ("an earlier attempt's events arriving late", stale_events),
    "hung-vm": ("a VM that hangs: no heartbeat", hung_vm),
    "lost-finalize": ("the video's finalize event lost", lost_finalize),
    "preemption": ("Spot preemption at 10/50/90 % of a render", preemption),
    "budget": ("concurrent launches at the edge of the daily budget", budget_edge),
    "malformed": ("malformed messages on every topic, healthy jobs in flight", malformed),
}


def run(c: Campaign, name: str, size: Size) -> Result:
    """One scenario from the baseline back to it; its jobs judged."""
    title, scenario = SCENARIOS[name]
    result = Result(name, title)
    began = time.monotonic()
    before = c.cloud.relay.stats()["functions"]
    c.baseline()
    try:
        scenario(c, size, result)
    except StandInLacks as lack:
        result.skipped = str(lack)
    finally:
        try:
            c.baseline()
        except StandInLacks:
            pass
    if result.jobs:
        c.wait_terminal(result.jobs, size.timeout_s)
        c.outcomes.settle(2)
        result.verdicts = [c.verdict(job) for job in result.jobs]
    after = c.cloud.relay.stats()["functions"]
    def change(function: str, key: str) -> int:
        return after.get(function, {}).get(key, 0) - before.get(function, {}).get(key, 0)

    delta = {key: sum(change(f, key) for f in after)
             for key in ("deliveries", "duplicates", "kills", "drops", "failures", "retries", "dead_lettered")}
    kills = {f: change(f, "kills") for f in after if change(f, "kills")}
    rendered = Counter(v.rendered_by or v.outcome for v in result.verdicts)
    result.figures = {
        "relay": ", ".join(f"{v} {k}" for k, v in delta.items() if v),
        "rendered by": ", ".join(f"{n} {k}" for k, n in sorted(rendered.items())),
        "VMs": sum(v.vms for v in result.verdicts),
        "kills by function": ", ".join(f"{f} {n}" for f, n in sorted(kills.items())),
        "job time (median, slowest)": _spread([v.duration_s for v in result.verdicts if v.duration_s is not None]),
        **result.figures,
    }
    result.wall_s = round(time.monotonic() - began, 1)
    return result
