"""``avmonitor ab [--since 30d]``: each A/B experiment's arms: time to video, cost, failures, with 95% intervals.

The experiments are the configured ones (``functions/experiments.py``: the
file, with inactive ones kept for their report); the jobs are those created in
the window whose recorded arm (``JobState.experiment``) is one of theirs. Per
arm, the rules:

* **Time to video** of a succeeded job: ``updated_at - created_at``, from the
  job's arrival to its video's (a succeeded job's state changes no more). Its
  median and 90th percentile.
* **Cost per minute of video** of a succeeded job: its actual cost
  (``operators.cost.job_cost``: every VM attempt and Vertex run, a hedge pays
  both) / (``video_length_s`` / 60), once settled (no VM or Vertex run still
  billing, every part priced). Its mean. A failed job's cost shows in its arm's
  failure rate, not here: it delivered no minutes.
* **Failure rate**: failed / (succeeded + failed). Cancelled jobs are left out
  (an operator's choice, not the arm's doing), and so are unfinished ones.
* **95% intervals**: a percentile bootstrap (2,000 resamples, a fixed seed, so
  the same jobs always give the same report) for the median time and the mean
  cost; the Wilson score interval for the failure rate (sound with few jobs and
  near 0%, where the normal approximation is not). None with too few values
  (under 2; under 1 finished job for the rate).
* **Verdict**: ``not enough data yet`` while any arm has fewer than
  :data:`MIN_FINISHED` finished jobs, or when, on time and on cost alike, no
  arm's interval lies wholly below every other arm's. Otherwise one sentence
  naming the arm that is faster and the one that is cheaper (the other figure
  "cannot be told apart yet" if its intervals overlap), and an arm that fails
  more where the failure intervals are apart too.

Overlapping 95% intervals are a conservative test (two medians can differ at
the 5% level while their intervals touch): the report says "not enough data"
rather than name a winner early.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from catalog.model import Catalog
from functions.experiments import Experiment, ExperimentError, load_experiments
from functions.state import JobState, Status
from operators import cost, views
from operators.output import console, emit, fail
from operators.views import OperatorError

DEFAULT_SINCE_S = 30 * 86400
MIN_FINISHED = 10  # finished jobs per arm before any verdict
RESAMPLES = 2000
SEED = 20240601  # any fixed number: the bootstrap is then a function of the data alone
Z95 = 1.959964
NOT_ENOUGH = "not enough data yet"


# ---------------------------------------------------------------- statistics (pure)


def bootstrap_ci(values: Sequence[float], statistic: Callable[..., Any], *, resamples: int = RESAMPLES,
                 seed: int = SEED) -> list[float] | None:
    """The 95% percentile-bootstrap interval of ``statistic`` (np.median, np.mean) over ``values``; None under 2."""
    import numpy as np  # here, not at the top: every avmonitor command imports this module

    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return None
    rng = np.random.default_rng(seed)
    rows = max(1, 2_000_000 // data.size)  # resample in chunks: 2,000 x n values at once is too many for big n
    stats = np.concatenate([statistic(data[rng.integers(0, data.size, size=(min(rows, resamples - done), data.size))],
                                      axis=1) for done in range(0, resamples, rows)])
    low, high = np.percentile(stats, [2.5, 97.5])
    return [float(low), float(high)]


def wilson_ci(successes: int, trials: int, z: float = Z95) -> list[float] | None:
    """The Wilson score interval of a proportion; None without trials."""
    if trials <= 0:
        return None
    p, n = successes / trials, trials
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


# ---------------------------------------------------------------- the report (pure)


def time_to_video_s(state: JobState) -> float | None:
    if state.status is not Status.SUCCEEDED:
        return None
    return (datetime.fromisoformat(state.updated_at) - datetime.fromisoformat(state.created_at)).total_seconds()


def cost_per_video_minute(state: JobState, row: dict[str, Any]) -> float | None:
    """A settled, priced, succeeded job's actual cost per minute of its video (``row`` from ``cost.job_cost``)."""
    if state.status is not Status.SUCCEEDED or row["open"] or row["actual_usd"] is None or not state.video_length_s:
        return None
    return row["actual_usd"] / (state.video_length_s / 60)


def arm_figures(name: str, states: list[JobState], rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One arm's line of the report."""
    import numpy as np

    times = [t for t in map(time_to_video_s, states) if t is not None]
    costs = [c for s in states if (c := cost_per_video_minute(s, rows[s.job_id])) is not None]
    succeeded = sum(s.status is Status.SUCCEEDED for s in states)
    failed = sum(s.status is Status.FAILED for s in states)
    finished = succeeded + failed
    return {
        "name": name, "jobs": len(states), "succeeded": succeeded, "failed": failed,
        "time_to_video_s": {"median": _round(np.median(times) if times else None, 1),
                            "p90": _round(np.percentile(times, 90) if times else None, 1),
                            "ci95": _round_all(bootstrap_ci(times, np.median), 1)},
        "cost_per_video_minute_usd": {"mean": _round(np.mean(costs) if costs else None, 6),
                                      "ci95": _round_all(bootstrap_ci(costs, np.mean), 6)},
        "failure_rate": {"value": _round(failed / finished if finished else None, 4),
                         "ci95": _round_all(wilson_ci(failed, finished), 4)},
    }


def verdict(arms: list[dict[str, Any]], min_finished: int = MIN_FINISHED) -> str:
    """``not enough data yet``, or one sentence naming the faster and the cheaper arm (see the module's rules)."""
    if len(arms) < 2 or any(a["succeeded"] + a["failed"] < min_finished for a in arms):
        return NOT_ENOUGH
    time_key, cost_key = ("time_to_video_s", "median"), ("cost_per_video_minute_usd", "mean")
    faster, cheaper = _lowest_apart(arms, *time_key), _lowest_apart(arms, *cost_key)
    if faster is None and cheaper is None:
        return NOT_ENOUGH
    parts = []
    if faster is not None:
        other = _runner_up(arms, faster, *time_key)
        parts.append(f"{faster['name']} is faster (median {_seconds(faster['time_to_video_s']['median'])} "
                     f"against {_seconds(other['time_to_video_s']['median'])} for {other['name']})")
    else:
        parts.append("time to video cannot be told apart yet")
    if cheaper is not None:
        other = _runner_up(arms, cheaper, *cost_key)
        figures = (f"{_money(cheaper['cost_per_video_minute_usd']['mean'])} against "
                   f"{_money(other['cost_per_video_minute_usd']['mean'])} per minute of video for {other['name']}")
        if cheaper is faster:
            parts[0] += f" and cheaper ({figures})"
        else:
            parts.append(f"{cheaper['name']} is cheaper ({figures})")
    else:
        parts.append("cost per minute of video cannot be told apart yet")
    reliable = _lowest_apart(arms, "failure_rate", "value")
    if reliable is not None:
        worst = max((a for a in arms if a is not reliable), key=lambda a: a["failure_rate"]["value"])
        parts.append(f"{worst['name']} fails more ({worst['failure_rate']['value']:.0%} against "
                     f"{reliable['failure_rate']['value']:.0%})")
    sentence = "; ".join(parts)
    return (sentence if faster else sentence[0].upper() + sentence[1:]) + "."  # an arm's name keeps its spelling


def _lowest_apart(arms: list[dict[str, Any]], key: str, point: str) -> dict[str, Any] | None:
    """The arm whose interval lies wholly below every other arm's, if one does."""
    if any(a[key]["ci95"] is None or a[key][point] is None for a in arms):
        return None
    best = min(arms, key=lambda a: a[key][point])
    return best if all(best[key]["ci95"][1] < a[key]["ci95"][0] for a in arms if a is not best) else None


def _runner_up(arms: list[dict[str, Any]], best: dict[str, Any], key: str, point: str) -> dict[str, Any]:
    return min((a for a in arms if a is not best), key=lambda a: a[key][point])


def build_report(experiments: Sequence[Experiment], states: list[JobState], catalog: Catalog,
                 runs: dict[str, cost.VertexRun], shape: tuple[str, str], now: float) -> dict[str, Any]:
    """The report for ``experiments`` from the jobs ``states`` (any; those of other experiments are ignored)."""
    rows = {s.job_id: cost.job_cost(s, catalog, runs, shape, now) for s in states if s.experiment}
    report = []
    for e in experiments:
        arms = [arm_figures(arm.name, [s for s in states if s.experiment and s.experiment.name == e.name
                                       and s.experiment.arm == arm.name], rows) for arm in e.arms]
        report.append({"name": e.name, "description": e.description, "active": e.active, "share": e.share,
                       "arms": arms, "verdict": verdict(arms)})
    return {"experiments": report}


def _round(value: Any, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _round_all(values: list[float] | None, digits: int) -> list[float] | None:
    return None if values is None else [round(v, digits) for v in values]


# ---------------------------------------------------------------- reading the cloud


def ab_report(since_s: float = DEFAULT_SINCE_S) -> dict[str, Any]:
    """The report for the jobs created in the last ``since_s`` seconds (plain data; ``GET /status/ab`` serves it)."""
    return _report(_experiments(), since_s)


def _experiments() -> tuple[Experiment, ...]:
    try:
        return load_experiments()  # read afresh: an operator may just have edited the file
    except ExperimentError as err:
        raise OperatorError(str(err)) from None


def _report(experiments: Sequence[Experiment], since_s: float) -> dict[str, Any]:
    from catalog.model import load_catalog
    from functions import clients

    now, cfg = time.time(), clients.config()
    states = _states(views.since_day(since_s), now - since_s, {e.name for e in experiments})
    names = {n for s in states for n in [s.primary.custom_job, *(p.get("custom_job") for p in s.primary.previous)] if n}
    with ThreadPoolExecutor(max_workers=8) as pool:
        runs = {run.name: run for run in pool.map(cost._vertex_run, sorted(names)) if run is not None}
    return build_report(experiments, states, load_catalog(), runs, (cfg.vertex_machine_type, cfg.vertex_accelerator), now)


def _states(first_day: str, cutoff: float, experiments: set[str]) -> list[JobState]:
    """The jobs created since ``cutoff`` in one of ``experiments``, from the report projection (one query)."""
    from functions.jobs import store

    states = []
    for row in store().by_day(first_day):
        arm = row.get("experiment")
        if not isinstance(arm, dict) or arm.get("name") not in experiments:
            continue
        try:
            state = JobState.from_document(row)
        except ValueError:
            continue  # not a job's state
        if datetime.fromisoformat(state.created_at).timestamp() >= cutoff:
            states.append(state)
    return states


# ---------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", default="30d", help="jobs created in this window, e.g. 7d or 90d (default 30d)")


def run(args: argparse.Namespace) -> int:
    try:
        since_s = views.parse_duration_s(args.since)
        experiments = _experiments()
        views.preflight()
        report = _report(experiments, since_s)
    except OperatorError as err:
        return fail(str(err))
    changes = {(e.name, arm.name): arm.changes for e in experiments for arm in e.arms}
    emit(getattr(args, "json", False), report, lambda data: _print(data, changes, args.since))
    return 0


def _print(report: dict[str, Any], changes: dict[tuple[str, str], str], since: str) -> None:
    from rich.table import Table

    if not report["experiments"]:
        console.print("No experiments are configured (catalog/experiments.yml, or $EXPERIMENTS_FILE).")
    for e in report["experiments"]:
        state = f"active, {e['share']:.0%} of new jobs" if e["active"] else "inactive"
        table = Table(title=f"{e['name']} ({state}; jobs created in the last {since}): {e['description']}",
                      title_justify="left")
        for column in ("arm", "changes", "jobs", "succeeded", "failed", "time to video: median (95% CI)", "p90",
                       "cost / video minute (95% CI)", "failure rate (95% CI)"):
            table.add_column(column, no_wrap=True)
        for a in e["arms"]:
            t, c, f = a["time_to_video_s"], a["cost_per_video_minute_usd"], a["failure_rate"]
            table.add_row(a["name"], changes.get((e["name"], a["name"]), ""), str(a["jobs"]), str(a["succeeded"]),
                          str(a["failed"]), _with_ci(t["median"], t["ci95"], _seconds), _seconds(t["p90"]),
                          _with_ci(c["mean"], c["ci95"], cost._money), _with_ci(f["value"], f["ci95"], _percent))
        console.print(table)
        console.print(f"verdict: {e['verdict']}", markup=False)


def _with_ci(value: float | None, ci: list[float] | None, show: Callable[[float | None], str]) -> str:
    if value is None:
        return "-"
    return show(value) + (f" ({show(ci[0])}–{show(ci[1])})" if ci else "")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def _money(value: float | None) -> str:
    """Dollars with three or four significant figures: a minute of video costs cents."""
    return "-" if value is None else f"${value:,.2f}" if value >= 10 else f"${value:.4f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%" if value >= 0.1 or value == 0 else f"{value * 100:.1f}%"
