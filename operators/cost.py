"""``avmonitor cost [--since 7d] [--csv]``: what each job was estimated to cost, what it cost, and what Vertex AI would have.

The design note claims "60-80% savings" against rendering on Vertex AI; this
report measures it per job, from what the job's state and Vertex AI record,
not from catalog price x a guessed duration (SkyPilot's ``sky cost-report``
does that, and is wrong for stopped and spot clusters: skypilot issues 2769, 1670).

The rules, one per figure (USD; "price" is the catalog's list price, us-central1):

* **A VM attempt** costs ``(end - launched_at) x its price_per_hour``, the
  price it was launched at (the Spot price for Spot). ``launched_at`` is when
  the insert succeeded, so its boot is included; the few seconds before the
  insert succeeded are not counted (Compute Engine does not bill a VM before
  it runs). ``end`` is ``deleted_at`` (clean-up deleted it, or found it gone: an
  upper bound for a VM that deleted itself), else the attempt's ``ended_at``
  (the watchdog saw it preempted, crashed, lost or hung: a preempted attempt
  still costs its time), else *now* while it may still run (the row is
  ``open``: its figure grows). A finished, cleaned-up job with no
  ``deleted_at`` (written before the field existed) ends at the job's last
  change. Per-second billing is assumed; Compute Engine's one-minute minimum is
  not modelled (under a minute, an attempt is understated by at most that).
* **A Vertex run** (each custom job of the primary, retries included) costs
  ``(end_time - start_time) x the Vertex price`` of its machine type plus
  accelerator (``catalog/gpu_catalog.yml``, ``vertex:``). ``start_time`` is when
  it started running: a job refused for quota never ran and costs nothing;
  one still running costs up to now.
* **Actual** = every VM attempt + every Vertex run: a hedge pays both. Unknown
  (None) if any part has no price, never a partial sum passed off as the total.
* **Estimate** = ``fallback.estimated_cost_usd`` (the launch's estimate), plus,
  if the primary ran, its estimate at the Vertex price: under the catalog's
  ``pricing: model`` (the default) the runtime model's render and transfer on
  Vertex's machine type (its vCPUs, and NVENC as its GPU has it), under
  ``speed_factor`` ``video_length_s x baseline_s_per_s / speed_factor(Vertex's
  GPU) + transfer_overhead_s`` (operators/cost_basis.py).
  **Estimate error** = actual / estimate - 1, for finished jobs only (a running
  job's actual is still growing); the totals give its median.
* **Vertex equivalent**, what the same render would have cost on Vertex AI:
  for a video a VM rendered, its *measured* render time (``result.wall_s``)
  scaled from the option it ran on (a GPU or a CPU-only machine) to Vertex's:
  by the runtime model's ratio of the two machines' renders under ``model``, by
  the speed factors (ours / Vertex's GPU's) under ``speed_factor``; plus its
  measured transfer time (``worker_wall_s - wall_s``), at the Vertex price.
  Vertex's own provisioning is not added, so the figure favours Vertex. Without
  a measured render that can be scaled (no report, an option the catalog lacks,
  a CPU-only machine under ``speed_factor``, which has no speed factor) the
  Vertex estimate above is used (``basis`` says which). For a video Vertex
  rendered it is what its runs cost. **Saving** = vertex equivalent - actual
  (negative: Vertex would have been cheaper), for succeeded jobs only.
* **Days** are the jobs' creation days (UTC): a VM that ran past midnight counts
  on the day its job came in. **Speeds**: the render seconds per video second
  learned per option (``functions.memory.learned_speeds()``, median of the kept
  samples) against the catalog's: the runtime model's for a 180 s video under
  ``model``, ``baseline_s_per_s / speed_factor`` under ``speed_factor`` (none for
  a CPU-only machine there). Every option is listed, CPU-only machines too.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from catalog.learned import LearnedSpeeds
from catalog.model import Catalog
from functions.state import JobState, Status
from operators import views
from operators.cost_basis import (
    speeds,
    vertex_equivalent,
    vertex_estimate_usd,
    vertex_price,
)
from operators.output import console, emit, fail, percent
from operators.views import OperatorError

# What the report reads of each job. While functions/store.py's REPORT_FIELDS
# lacks some of them, whole documents are read instead (correct, slower).
COST_FIELDS = (
    "job_id", "status", "day", "created_at", "updated_at", "video_length_s", "cleaned_up",
    "primary.custom_job", "primary.previous", "primary.machine_type", "primary.accelerator", "primary.failure",
    "fallback.instance", "fallback.attempt", "fallback.gpu", "fallback.provisioning", "fallback.price_per_hour",
    "fallback.launched_at", "fallback.deleted_at", "fallback.estimated_cost_usd", "fallback.previous",
    "fallback.preemptions", "fallback.hedge_failed",
    "result.rendered_by", "result.gpu", "result.wall_s", "result.worker_wall_s", "result.video_s", "result.cost_usd",
)
CSV_COLUMNS = ("job_id", "day", "status", "method", "rendered_by", "gpu", "provisioning", "video_length_s",
               "vm_attempts", "vm_s", "vm_usd", "vertex_s", "vertex_usd", "actual_usd", "estimate_usd",
               "estimate_error", "vertex_equivalent_usd", "vertex_equivalent_basis", "saving_usd", "saving_fraction",
               "worker_cost_usd", "open", "notes")


@dataclass(frozen=True)
class VertexRun:
    """What Vertex AI says of one custom job (epoch seconds; None: not reached)."""

    name: str
    state: str
    start: float | None
    end: float | None


# ---------------------------------------------------------------- the rules (pure)


def vm_attempts(state: JobState, catalog: Catalog, now: float) -> list[dict[str, Any]]:
    """Every VM attempt of the job with its billed seconds and cost (None: no price known)."""
    fb, rows = state.fallback, []
    current = ([{"attempt": fb.attempt, "instance": fb.instance, "gpu": fb.gpu, "provisioning": fb.provisioning,
                 "launched_at": fb.launched_at, "price_per_hour": fb.price_per_hour, "deleted_at": fb.deleted_at,
                 "end": "current"}] if fb.instance and fb.launched_at else [])
    for attempt in [*fb.previous, *current]:
        start, price = attempt.get("launched_at"), attempt.get("price_per_hour")
        # An adopted VM: no launch recorded its price. Its name may be a GPU's or a CPU-only machine's.
        if price is None and attempt.get("gpu") in catalog.options:
            price = catalog.options[attempt["gpu"]].price(attempt.get("provisioning") or "on-demand")
        end, basis = attempt.get("deleted_at"), "deleted"
        if end is None and attempt.get("ended_at") is not None:
            end, basis = attempt["ended_at"], str(attempt.get("end") or "ended")
        if end is None and state.status.terminal and state.cleaned_up:
            end, basis = datetime.fromisoformat(state.updated_at).timestamp(), "job end (no deletion time recorded)"
        if end is None:
            end, basis = now, "running"
        seconds = max(0.0, end - start) if start is not None else None
        cost = seconds / 3600 * price if seconds is not None and price is not None else None
        rows.append({"attempt": attempt.get("attempt"), "instance": attempt.get("instance"), "gpu": attempt.get("gpu"),
                     "provisioning": attempt.get("provisioning"), "price_per_hour": price,
                     "seconds": _round(seconds, 1), "cost_usd": _round(cost), "end": basis, "open": basis == "running"})
    return rows


def vertex_runs(state: JobState, catalog: Catalog, runs: dict[str, VertexRun], shape: tuple[str, str],
                now: float) -> list[dict[str, Any]]:
    """Every custom job of the primary with its run time and cost (None: unknown)."""
    machine, accelerator = state.primary.machine_type or shape[0], state.primary.accelerator or shape[1]
    price = vertex_price(catalog, machine, accelerator)
    names = [p.get("custom_job") for p in state.primary.previous] + [state.primary.custom_job]
    rows = []
    for name in filter(None, names):
        run = runs.get(name)
        row: dict[str, Any] = {"custom_job": name, "state": run.state if run else None, "price_per_hour": price,
                               "seconds": None, "cost_usd": None, "open": False}
        if run is None:
            row["note"] = "Vertex AI did not answer for this job"
        elif run.start is None:
            row.update(seconds=0.0, cost_usd=0.0)  # it never ran (refused for quota, cancelled while queued)
        else:
            seconds = max(0.0, (run.end or now) - run.start)
            row.update(seconds=round(seconds, 1), open=run.end is None,
                       cost_usd=None if price is None else round(seconds / 3600 * price, 6))
            if price is None:
                row["note"] = f"no Vertex price in the catalog for {machine} + {accelerator}"
        rows.append(row)
    return rows


def job_cost(state: JobState, catalog: Catalog, runs: dict[str, VertexRun], shape: tuple[str, str],
             now: float) -> dict[str, Any]:
    """One job's row: its VM attempts and Vertex runs, actual against estimate, and the saving against Vertex AI."""
    machine, accelerator = state.primary.machine_type or shape[0], state.primary.accelerator or shape[1]
    attempts, vertex = vm_attempts(state, catalog, now), vertex_runs(state, catalog, runs, shape, now)
    notes = [f"VM attempt {a['attempt']}: no price" for a in attempts if a["cost_usd"] is None]
    notes += [f"{v['custom_job'].rsplit('/', 1)[-1]}: {v['note']}" for v in vertex if v.get("note")]
    parts = [a["cost_usd"] for a in attempts] + [v["cost_usd"] for v in vertex]
    actual = None if None in parts else sum(parts)
    vm_usd = _sum(a["cost_usd"] for a in attempts)
    vertex_usd = _sum(v["cost_usd"] for v in vertex)

    ran_on_vertex = any(v["seconds"] for v in vertex)
    vertex_estimate = vertex_estimate_usd(state, catalog, machine, accelerator)
    estimate = state.fallback.estimated_cost_usd
    if ran_on_vertex:
        estimate = None if vertex_estimate is None else (estimate or 0.0) + vertex_estimate
    finished = state.status.terminal and not any(r["open"] for r in [*attempts, *vertex])
    error = actual / estimate - 1 if finished and actual is not None and estimate else None

    equivalent, basis = None, None
    if state.status is Status.SUCCEEDED:
        equivalent, basis = vertex_equivalent(state, catalog, machine, accelerator, vertex_usd, vertex_estimate)
    saving = equivalent - actual if equivalent is not None and actual is not None else None
    result = state.result
    return {
        "job_id": state.job_id, "day": state.created_at[:10], "created_at": state.created_at,
        "status": state.status.value, "method": state.method, "rendered_by": result.rendered_by,
        "gpu": result.gpu or state.fallback.gpu, "provisioning": state.fallback.provisioning,
        "video_length_s": state.video_length_s, "vertex_shape": f"{machine} + {accelerator}",
        "vm_attempts": attempts, "vertex_runs": vertex,
        "vm_s": _round(_sum(a["seconds"] for a in attempts), 1), "vm_usd": _round(vm_usd),
        "vertex_s": _round(_sum(v["seconds"] for v in vertex), 1), "vertex_usd": _round(vertex_usd),
        "actual_usd": _round(actual), "estimate_usd": _round(estimate), "estimate_error": _round(error, 4),
        "vertex_equivalent_usd": _round(equivalent), "vertex_equivalent_basis": basis,
        "saving_usd": _round(saving),
        "saving_fraction": _round(saving / equivalent, 4) if saving is not None and equivalent else None,
        "worker_cost_usd": result.cost_usd,  # the renderer's own figure (its time x its price), for comparison
        "open": not finished, "notes": notes,
    }


def build_report(states: list[JobState], catalog: Catalog, runs: dict[str, VertexRun], shape: tuple[str, str],
                 learned: LearnedSpeeds, now: float, since_s: float) -> dict[str, Any]:
    jobs = sorted((job_cost(s, catalog, runs, shape, now) for s in states), key=lambda j: j["created_at"])
    by_day: dict[str, list[dict]] = defaultdict(list)
    for job in jobs:
        by_day[job["day"]].append(job)
    return {"since_s": since_s, "generated_at": now, "vertex_shape": f"{shape[0]} + {shape[1]}",
            "jobs": jobs, "days": [{"day": day, **_totals(rows)} for day, rows in sorted(by_day.items())],
            "totals": _totals(jobs), "speeds": speeds(catalog, learned)}


def _totals(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    compared = [j for j in jobs if j["saving_usd"] is not None]
    equivalent = sum(j["vertex_equivalent_usd"] for j in compared)
    saving = sum(j["saving_usd"] for j in compared)
    errors = [j["estimate_error"] for j in jobs if j["estimate_error"] is not None]
    return {
        "jobs": len(jobs), "open": sum(j["open"] for j in jobs),
        "unpriced": sum(j["actual_usd"] is None for j in jobs),
        # What is known: a job without a price (counted in "unpriced") adds nothing.
        **{key: _round(sum(j[key] or 0.0 for j in jobs)) for key in ("vm_usd", "vertex_usd", "actual_usd", "estimate_usd")},
        "compared": len(compared), "vertex_equivalent_usd": _round(equivalent), "saving_usd": _round(saving),
        "saving_fraction": _round(saving / equivalent, 4) if equivalent else None,
        "median_estimate_error": _round(statistics.median(errors), 4) if errors else None,
    }


def _sum(values) -> float | None:
    """The sum, or None when any part is unknown."""
    values = list(values)
    return None if None in values else float(sum(values))


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


# ---------------------------------------------------------------- reading the cloud


def cost_report(since_s: float) -> dict[str, Any]:
    """The report for the jobs created in the last ``since_s`` seconds (plain data)."""
    from catalog.model import load_catalog
    from functions import clients, memory

    now, cfg = time.time(), clients.config()
    states = _states(views.since_day(since_s), now - since_s)
    names = {n for s in states for n in [s.primary.custom_job, *(p.get("custom_job") for p in s.primary.previous)] if n}
    with ThreadPoolExecutor(max_workers=8) as pool:
        runs = {run.name: run for run in pool.map(_vertex_run, sorted(names)) if run is not None}
    return build_report(states, load_catalog(), runs, (cfg.vertex_machine_type, cfg.vertex_accelerator),
                        memory.learned_speeds(), now, since_s)


def _states(first_day: str, cutoff: float) -> list[JobState]:
    from functions.jobs import store
    from functions.store import REPORT_FIELDS

    jobs = store()
    rows = jobs.by_day(first_day)
    if not set(COST_FIELDS) <= set(REPORT_FIELDS):  # the projection lacks some: read whole documents, in one batch
        snapshots = jobs.db.get_all([jobs.ref(row["job_id"]) for row in rows]) if rows else []
        rows = [s.to_dict() for s in snapshots if s.exists]
    states = []
    for row in rows:
        try:
            state = JobState.from_document(row)
        except ValueError:
            continue  # not a job's state: nothing to cost
        if datetime.fromisoformat(state.created_at).timestamp() >= cutoff:
            states.append(state)
    return states


def _vertex_run(name: str) -> VertexRun | None:
    """Vertex AI's times for one custom job; None when it cannot say (gone, or unreachable)."""
    from google.api_core.exceptions import GoogleAPICallError, RetryError

    from functions import clients

    try:
        job = clients.job_client().get_custom_job(name=name, timeout=10)
    except (GoogleAPICallError, RetryError, OSError):
        return None

    start, end = (t.timestamp() if t else None for t in (job.start_time, job.end_time))
    return VertexRun(name=name, state=job.state.name, start=start, end=end)


# ---------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", default="7d", help="jobs created in this window, e.g. 24h or 30d (default 7d)")
    parser.add_argument("--csv", action="store_true", help="one CSV row per job instead of tables")


def run(args: argparse.Namespace) -> int:
    as_json, as_csv = getattr(args, "json", False), getattr(args, "csv", False)
    if as_json and as_csv:
        return fail("--csv and --json: choose one")
    try:
        since_s = views.parse_duration_s(args.since)
        views.preflight()
        report = cost_report(since_s)
    except OperatorError as err:
        return fail(str(err))
    if as_csv:
        sys.stdout.write(to_csv(report))
    else:
        emit(as_json, report, _print)
    return 0


def to_csv(report: dict[str, Any]) -> str:
    """One row per job: the figures of ``report["jobs"]`` (the attempts as a count, the notes joined)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for job in report["jobs"]:
        writer.writerow({**job, "vm_attempts": len(job["vm_attempts"]), "notes": "; ".join(job["notes"])})
    return out.getvalue()


def _print(report: dict[str, Any]) -> None:
    def money(value: float | None, still_open: bool = False) -> str:
        return _money(value) + ("+" if still_open and value is not None else "")

    jobs = _table(f"{len(report['jobs'])} jobs (a + marks one still billing)", "job", "day", "state", "method", "GPU",
                  "VM", "Vertex", "actual", "estimate", "error", "on Vertex", "saving", "%")
    for j in report["jobs"]:
        gpu = f"{j['gpu']}{' spot' if j['provisioning'] == 'spot' else ''}" if j["gpu"] else "-"
        jobs.add_row(j["job_id"], j["day"], j["status"], j["method"], gpu, money(j["vm_usd"], j["open"]),
                     money(j["vertex_usd"], j["open"]), money(j["actual_usd"], j["open"]), _money(j["estimate_usd"]),
                     _signed(j["estimate_error"]), _money(j["vertex_equivalent_usd"]), _money(j["saving_usd"]),
                     percent(j["saving_fraction"]))
    days = _table("per day (jobs created that day, UTC)", "day", "jobs", "VM", "Vertex", "actual", "estimate",
                  "on Vertex", "saving", "%", "median error")
    rows = [*report["days"], {"day": "total", **report["totals"]}]
    for i, d in enumerate(rows):
        days.add_row(d["day"], str(d["jobs"]), *(_money(d[k]) for k in ("vm_usd", "vertex_usd", "actual_usd",
                     "estimate_usd", "vertex_equivalent_usd", "saving_usd")), percent(d["saving_fraction"]),
                     _signed(d["median_estimate_error"]), end_section=i == len(rows) - 2)
    basis = next((g["catalog_basis"] for g in report["speeds"] if g.get("catalog_basis")), None)
    speeds = _table("render seconds per video second" + (f" (catalog: {basis})" if basis else ""), "option",
                    "catalog", "learned", "samples", "learned vs catalog", "used by the selector")
    for g in report["speeds"]:
        speeds.add_row(g["gpu"], _number(g["catalog_s_per_s"]), _number(g["learned_s_per_s"]), str(g["samples"]),
                       _signed(g["learned_vs_catalog"]), "yes" if g["used_by_selector"] else "no")
    t = report["totals"]
    console.print(jobs, days)
    console.print(f"Saving against Vertex AI ({report['vertex_shape']}): {_money(t['saving_usd'])} of "
                  f"{_money(t['vertex_equivalent_usd'])} ({percent(t['saving_fraction'])}) over {t['compared']} "
                  f"succeeded jobs; {t['open']} still billing, {t['unpriced']} without a price.")
    console.print(speeds)


def _table(title: str, *columns: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=True)
    return table


def _money(value: float | None) -> str:
    """Dollars, with cents' fractions for the small sums of short renders, and a sign for a loss."""
    if value is None:
        return "-"
    sign, size = ("-" if value < 0 else ""), abs(value)
    return "$0" if size == 0 else f"{sign}${size:,.2f}" if size >= 0.01 else f"{sign}${size:.4f}"


def _signed(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:+.0f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
