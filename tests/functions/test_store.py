"""The Firestore store on the official emulator: transactions under races, and the queries the product runs."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from functions.state import JobState, Status
from functions.store import StateStore, transact


def _create(job_id: str, status: Status = Status.RECEIVED, created_at: str | None = None):
    def change(state: JobState | None) -> JobState | None:
        if state is not None:
            return None
        new = JobState(job_id=job_id, status=Status.RECEIVED, **({"created_at": created_at} if created_at else {}))
        if status is not Status.RECEIVED:
            new.move_to(status, "test")
        return new

    return change


def test_racing_writers_lose_no_update(store: StateStore) -> None:
    store.update("race", _create("race"))

    def bump(state: JobState | None) -> JobState:
        state.dead_letters += 1
        return state

    threads = [threading.Thread(target=lambda: [store.update("race", bump) for _ in range(10)]) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get("race").dead_letters == 100


def test_of_racing_creates_exactly_one_wins(store: StateStore) -> None:
    created: list[bool] = []
    threads = [threading.Thread(target=lambda: created.append(store.update("once", _create("once"))[1])) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(created) == [False] * 7 + [True]


def test_a_change_that_raises_writes_nothing(store: StateStore) -> None:
    store.update("raises", _create("raises"))

    def broken(state: JobState | None) -> JobState:
        state.error = "half-done"
        raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        store.update("raises", broken)
    assert store.get("raises").error is None


def test_the_job_and_another_document_change_in_one_commit(store: StateStore) -> None:
    store.update("pair", _create("pair"))
    other = store.db.collection("spend").document("pair-day")

    def reserve(state, doc):
        state.fallback.reserved_usd = 1.0
        return state, {"launches": {"pair/a1": 1.0}}

    state, doc, changed = store.update_with("pair", other, reserve)
    assert changed and state.fallback.reserved_usd == 1.0 and other.get().to_dict() == doc == {"launches": {"pair/a1": 1.0}}
    # Both sides refuse: nothing is written, and the documents come back as they are.
    state, doc, changed = store.update_with("pair", other, lambda s, d: (None, None))
    assert not changed and doc == {"launches": {"pair/a1": 1.0}}


def test_transact_reads_absent_documents_as_none_and_creates_them(store: StateStore) -> None:
    refs = [store.db.collection("fleet").document("t-a"), store.db.collection("fleet").document("t-b")]
    seen: list = []
    docs, changed = transact(store.db, refs, lambda docs: (seen.append(docs), [{"n": 1}, None])[1])
    assert seen[0] == [None, None] and changed and docs == [{"n": 1}, None]
    assert refs[0].get().to_dict() == {"n": 1} and not refs[1].get().exists


def test_the_watchdog_query_returns_unfinished_jobs_and_finished_ones_still_owing_work(store: StateStore) -> None:
    store.update("w-running", _create("w-running", Status.VM_RUNNING))
    store.update("w-owed", _create("w-owed", Status.SUCCEEDED))  # not yet cleaned up and announced
    store.update("w-done", _create("w-done", Status.FAILED))

    def finished(state):
        state.cleaned_up = state.outcome_published = True
        return state

    store.update("w-done", finished)
    ids = [s.job_id for s in store.active() if not isinstance(s, ValueError)]
    assert "w-running" in ids and "w-owed" in ids and "w-done" not in ids


def test_an_unreadable_document_is_reported_not_fatal_to_the_pass(store: StateStore) -> None:
    store.update("w-good", _create("w-good", Status.VM_RUNNING))
    store.db.collection("jobs").document("w-broken").set({"job_id": "w-broken", "status": "???", "active": True,
                                                           "updated_at": "2000-01-01T00:00:00+00:00"})
    results = list(store.active())
    assert any(isinstance(r, ValueError) and "w-broken" in str(r) for r in results)
    assert any(not isinstance(r, ValueError) for r in results)


def test_pages_of_newest_jobs_cover_every_job_once_in_order(store: StateStore) -> None:
    for i in range(7):
        store.update(f"p-{i}", _create(f"p-{i}", Status.PRIMARY_SUBMITTED))
    seen, cursor = [], None
    while True:
        page = store.newest(limit=3, cursor=cursor, status="primary_submitted")
        seen += [job.job_id for job in page.jobs]
        if page.cursor is None:
            break
        cursor = page.cursor
    stamps = [store.get(job_id).updated_at for job_id in seen]
    assert sorted(seen) == [f"p-{i}" for i in range(7)] and stamps == sorted(stamps, reverse=True)


def test_the_report_query_reads_a_range_of_days_with_its_fields(store: StateStore) -> None:
    now = datetime.now(timezone.utc)
    old = (now - timedelta(days=20)).isoformat(timespec="milliseconds")
    store.update("d-old", _create("d-old", Status.SUCCEEDED, created_at=old))
    store.update("d-new", _create("d-new", Status.SUCCEEDED))
    week_ago = (now - timedelta(days=7)).date().isoformat()
    rows = {row["job_id"]: row for row in store.by_day(week_ago)}
    assert "d-new" in rows and "d-old" not in rows
    assert rows["d-new"]["method"] == "vertex" and "history" not in rows["d-new"]


def test_reservations_racing_at_the_budget_edge_agree_with_their_jobs(store: StateStore) -> None:
    """Ten launches, room for four: exactly four jobs hold a reservation, and the day's spend holds exactly theirs.
    (One document for the day, to test the store; the product shards it: tests/functions/test_budget.py.)"""

    def with_reservation(doc, key, cost_usd, daily_usd):
        launches = dict((doc or {}).get("launches", {}))
        ok = sum(launches.values()) + cost_usd <= daily_usd
        return ({"launches": {**launches, key: cost_usd}} if ok else None), ok, None

    spend = store.db.collection("spend").document("edge-day")
    for i in range(10):
        store.update(f"edge-{i}", _create(f"edge-{i}", Status.FALLBACK_REQUESTED))

    def launch(i: int) -> None:
        def change(state, doc):
            new_doc, ok, _ = with_reservation(doc, f"edge-{i}/a1", 1.0, daily_usd=4.0)
            if not ok:
                return None, None
            state.fallback.reserved_usd = 1.0
            state.move_to(Status.VM_LAUNCHING, "reserved")
            return state, new_doc

        store.update_with(f"edge-{i}", spend, change)

    threads = [threading.Thread(target=launch, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    holding = {f"edge-{i}/a1" for i in range(10) if store.get(f"edge-{i}").fallback.reserved_usd}
    assert len(holding) == 4 and set(spend.get().to_dict()["launches"]) == holding


def _bump(state: JobState | None) -> JobState:
    state.dead_letters += 1
    return state


def test_a_change_after_its_own_write_starts_from_it_and_loses_nothing_to_a_writer_between(store: StateStore) -> None:
    other = StateStore(store.db)  # another process: it has not seen our write
    store.update("own", _create("own"))
    store.update("own", _bump, after_own_write=True)  # from our own write: no read needed
    other.update("own", _bump)  # someone else writes between our write and our next change
    state, changed = store.update("own", _bump, after_own_write=True)  # our snapshot is stale: the retry reads
    assert changed and state.dead_letters == 3
    assert other.get("own").dead_letters == 3


def test_racing_writers_after_their_own_writes_lose_no_update(store: StateStore) -> None:
    store.update("race-own", _create("race-own"))
    stores = [StateStore(store.db) for _ in range(4)]
    threads = [threading.Thread(target=lambda s=s: [s.update("race-own", _bump, after_own_write=True) for _ in range(10)])
               for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get("race-own").dead_letters == 40


def test_a_read_with_other_documents_feeds_the_transaction_and_a_change_since_is_retried(store: StateStore) -> None:
    store.update("batched", _create("batched"))
    spend = store.db.collection("spend").document("day")
    state, first = store.read_with("batched", [spend])
    assert state.job_id == "batched" and [s.exists for s in first] == [True, False]
    store.update("batched", _bump)  # changed after our read

    def change(state: JobState | None, doc: dict | None):
        return _bump(state), {"launches": {"batched/a1": 1.0}}

    state, doc, changed = store.update_with("batched", spend, change, first=first)
    assert changed and state.dead_letters == 2 and doc == {"launches": {"batched/a1": 1.0}}
    assert store.get("batched").dead_letters == 2


def test_a_change_after_its_own_write_reads_nothing_when_nobody_wrote_between(store: StateStore, monkeypatch) -> None:
    store.update("no-read", _create("no-read"))
    reads: list[int] = []
    real = type(store.db).get_all
    monkeypatch.setattr(type(store.db), "get_all", lambda db, refs, *a, **k: reads.append(1) or real(db, refs, *a, **k))
    state, changed = store.update("no-read", _bump, after_own_write=True)
    assert changed and state.dead_letters == 1 and reads == []
    assert store.get("no-read").dead_letters == 1
