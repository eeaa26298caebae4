"""The daily budget in shards (functions/budget.py), on the official Firestore emulator: exact at its edge,
and a launch far from the edge writes its own shard only."""

from __future__ import annotations

import random
import threading

import pytest

from functions import budget
from functions.state import JobState, Status
from functions.store import StateStore

DAY = "2026-12-02"


@pytest.fixture
def spend(store: StateStore, monkeypatch):
    """The budget module on this test's own emulator project, on a fixed day."""
    monkeypatch.setattr(budget, "_db", lambda: store.db)
    monkeypatch.setattr(budget, "today", lambda: DAY)
    return store


def _job(store: StateStore, job_id: str) -> None:
    def create(state: JobState | None) -> JobState | None:
        if state is not None:
            return None
        new = JobState(job_id=job_id, status=Status.RECEIVED)
        new.move_to(Status.FALLBACK_REQUESTED, "test")
        return new

    store.update(job_id, create)


def _launch(store: StateStore, job_id: str, cost_usd: float, daily_usd: float) -> bool:
    """What the launcher's claim does: the job's state and its reservation in one transaction."""
    def claim(state, docs):
        new_docs, outcome = budget.reserve(docs, job_id, f"{job_id}/a1", cost_usd, daily_usd)
        if not outcome.ok:
            return None, None
        state.fallback.reserved_usd = cost_usd
        state.move_to(Status.VM_LAUNCHING, "reserved")
        return state, new_docs

    try:
        store.update_with_all(job_id, budget.refs(job_id), claim)
    except budget.NeedsEveryShard:
        store.update_with_all(job_id, budget.refs(job_id, every_shard=True), claim)
    return bool(store.get(job_id).fallback.reserved_usd)


def _reserved_keys(store: StateStore) -> dict[str, float]:
    keys: dict[str, float] = {}
    for snapshot in store.db.get_all(budget.refs("", every_shard=True, day=DAY)):
        keys.update((snapshot.to_dict() or {}).get("launches", {}) if snapshot.exists else {})
    return keys


def test_launches_racing_at_the_edge_are_exact_and_agree_with_their_jobs(spend: StateStore) -> None:
    """Twelve launches, room for four: exactly four jobs hold a reservation, and the shards hold exactly theirs."""
    jobs = [f"edge-{i}" for i in range(12)]
    for job_id in jobs:
        _job(spend, job_id)
    threads = [threading.Thread(target=_launch, args=(spend, job_id, 1.0, 4.0)) for job_id in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    holding = {f"{j}/a1" for j in jobs if spend.get(j).fallback.reserved_usd}
    assert len(holding) == 4 and set(_reserved_keys(spend)) == holding
    assert budget.spent_today_usd() == pytest.approx(4.0)


def test_far_from_the_edge_a_launch_writes_its_own_shard_only(spend: StateStore) -> None:
    root = spend.db.collection("spend").document(DAY)
    _job(spend, "first")
    assert _launch(spend, "first", 0.10, 100.0)  # the day's first launch: its shard is granted a share
    granted_at = root.get().update_time
    same_shard = [f"job-{i}" for i in range(200) if budget.shard_of(f"job-{i}") == budget.shard_of("first")][:5]
    for job_id in same_shard:
        _job(spend, job_id)
        assert _launch(spend, job_id, 0.10, 100.0)
    assert root.get().update_time == granted_at  # nobody else's document was written
    assert budget.spent_today_usd() == pytest.approx(0.60)


def test_a_spent_budget_refuses_every_shard_with_the_days_total_and_a_release_frees_it(spend: StateStore) -> None:
    budget.record_spend("earlier-jobs", 50.0)
    refusals = []
    for i in range(16):
        ok, others = budget.reserve_spend(f"probe-{i}/a1", 0.10, 50.0)
        refusals.append((ok, others))
    assert all(not ok and others == pytest.approx(50.0) for ok, others in refusals)
    assert len({budget.shard_of(f"probe-{i}") for i in range(16)}) > 1  # more than one shard asked
    budget.release_spend("earlier-jobs")
    assert budget.reserve_spend("probe-0/a1", 0.10, 50.0)[0]
    assert budget.spent_today_usd() == pytest.approx(0.10)


def test_a_lowered_daily_budget_holds_exactly(spend: StateStore) -> None:
    for i in range(3):
        assert budget.reserve_spend(f"early-{i}/a1", 1.0, 10.0)[0]  # shares of the $10 budget granted
    results = [budget.reserve_spend(f"late-{i}/a1", 1.0, 4.0)[0] for i in range(4)]  # the catalog now says $4
    assert results == [True, False, False, False] and budget.spent_today_usd() == pytest.approx(4.0)


def test_a_redelivered_reservation_counts_once_and_a_settled_one_shrinks(spend: StateStore) -> None:
    for _ in range(3):
        assert budget.reserve_spend("again/a1", 2.0, 10.0)[0]
    assert budget.spent_today_usd() == pytest.approx(2.0)
    budget.record_spend("again/a1", 0.25)  # what the VM ran, settled by the watchdog
    assert budget.spent_today_usd() == pytest.approx(0.25)


def test_any_sequence_of_reservations_keeps_the_budget(spend: StateStore) -> None:
    """Random reserve, release and record calls, one at a time: never more reserved than the budget,
    except what was recorded as spent, and every reservation that was refused had no room."""
    rng = random.Random(7)
    daily, held = 5.0, {}
    for step in range(60):
        key = f"j{rng.randrange(12)}/a1"
        action = rng.choice(["reserve", "reserve", "reserve", "release"])
        if action == "reserve":
            cost = round(rng.uniform(0.2, 1.5), 2)
            before = sum(v for k, v in held.items() if k != key)
            ok, _ = budget.reserve_spend(key, cost, daily)
            assert ok == (before + cost <= daily + 1e-9), step
            if ok:
                held[key] = cost
        else:
            budget.release_spend(key)
            held.pop(key, None)
        assert budget.spent_today_usd() == pytest.approx(sum(held.values()))
