"""Job state and the fleet's memory in Firestore (native mode), changed only in transactions.

One document per job (``jobs/<job_id>``, its fields named in ``state.py``).
Every change has the shape it had when state was a GCS object changed by
compare-and-swap on its generation: a *change function* gets a private copy of the current state
and returns the new one, or None to leave it. It runs inside a Firestore
transaction, so two deliveries of the same event race, one commits, the other
runs again on what the first wrote and finds nothing left to do. It may run
several times: it must have no side effects.

:func:`transact` is the primitive (any documents, read and written together);
:class:`StateStore` the job documents and the queries the product needs. Each
query that needs a composite index names it in :data:`QUERIES`, and
``infra/firestore/indexes.json`` declares them for the deployment (a test keeps
the two in step).
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from google.api_core.exceptions import Aborted, Conflict, FailedPrecondition, NotFound
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from functions import timing
from functions.state import JobState

JOBS = "jobs"
# Enough for ten writers on one document (the benchmark's contention case); the
# backoff between tries spreads them out.
TRANSACTION_ATTEMPTS = 30

Docs = list[dict[str, Any] | None]
Snapshot = firestore.DocumentSnapshot


# What a conditional write that lost the race gets: changed since read (FAILED_PRECONDITION),
# created meanwhile (ALREADY_EXISTS), deleted meanwhile (NOT_FOUND), or aborted by a concurrent commit.
_LOST_RACE = (FailedPrecondition, Conflict, NotFound, Aborted)


class ContentionError(RuntimeError):
    """A transaction lost to other writers every time it tried."""


def transact(
    db: firestore.Client,
    refs: Sequence[firestore.DocumentReference],
    change: Callable[[Docs], Docs | None],
    first: Sequence[Snapshot] | None = None,
) -> tuple[Docs, bool]:
    """Read ``refs`` and write what ``change`` makes of them, atomically.

    ``change`` gets each document's data (None where it does not exist) and
    returns the new data for each (None: leave that one as it is), or None to
    change nothing. Returns ``(the documents as they are now, changed)``.
    ``first``: snapshots of ``refs`` the caller has just read (in their order),
    used instead of reading them again on the first try: the writes are
    conditional on them all the same, so a document changed since is a lost
    race like any other, and the next try reads afresh. It saves a round trip.

    The transaction is optimistic: the documents are read, and the writes are
    committed as one batch in which each write is conditional on its document
    being exactly as read (its update time; or absent, for a new one). If any
    was changed meanwhile, nothing is written and it runs again, after a short
    jittered wait, on what the winner wrote. Firestore's read-write
    transactions would lock the documents instead, and under contention its
    emulator lets racing transactions wait on each other's locks until all of
    them fail with "Transaction lock timeout" (firebase-tools issues 6758,
    8105, 8300; seen here: 10 writers, 20 of 100 updates in 70 s). A
    precondition is the same guarantee on both, without locks.
    """
    docs, changed, _ = _transact(db, refs, change, first)
    return docs, changed


def _transact(
    db: firestore.Client,
    refs: Sequence[firestore.DocumentReference],
    change: Callable[[Docs], Docs | None],
    first: Sequence[Snapshot] | None,
) -> tuple[Docs, bool, list[Snapshot]]:
    """:func:`transact`, also returning each document's snapshot as it is now (what was written, with its update time)."""
    if first is not None and [s.reference.path for s in first] != [ref.path for ref in refs]:
        raise ValueError("transact: the first snapshots are not of the documents changed")
    with timing.span("transaction"):
        return _run(db, refs, change, first)


def _run(
    db: firestore.Client,
    refs: Sequence[firestore.DocumentReference],
    change: Callable[[Docs], Docs | None],
    first: Sequence[Snapshot] | None,
) -> tuple[Docs, bool, list[Snapshot]]:
    for attempt in range(TRANSACTION_ATTEMPTS):
        if attempt == 0 and first is not None:
            snapshots = list(first)
        else:
            with timing.span("transaction_read"):  # inside "transaction": shown apart, never added to it
                snapshots = list(db.get_all(refs))
        by_path = {snapshot.reference.path: snapshot for snapshot in snapshots}
        ordered = [by_path[ref.path] for ref in refs]
        current: Docs = [snapshot.to_dict() if snapshot.exists else None for snapshot in ordered]
        proposed = change([None if doc is None else dict(doc) for doc in current])
        if proposed is None or all(doc is None for doc in proposed):
            return current, False, ordered
        batch = db.batch()
        for snapshot, doc in zip(ordered, proposed):
            if doc is None:
                continue
            if snapshot.exists:  # every field is written, so this replaces the document
                batch.update(snapshot.reference, doc, option=db.write_option(last_update_time=snapshot.update_time))
            else:
                batch.create(snapshot.reference, doc)
        try:
            with timing.span("transaction_commit"):
                results = iter(batch.commit())
        except _LOST_RACE:
            timing.count("transaction_retries")
            time.sleep(min(0.01 * (attempt + 1), 0.2) * random.uniform(0.5, 1.5))
            continue
        # The write results come in the order of the writes.
        after = [snapshot if doc is None else _as_written(snapshot, doc, next(results).update_time)
                 for snapshot, doc in zip(ordered, proposed)]
        return [new if new is not None else old for old, new in zip(current, proposed)], True, after
    raise ContentionError(f"{[ref.path for ref in refs]}: gave up after {TRANSACTION_ATTEMPTS} tries lost to other writers")


def _as_written(before: Snapshot, doc: dict[str, Any], update_time: Any) -> Snapshot:
    """The snapshot of a document this process has just written: its data (a copy of its own) and update time."""
    return firestore.DocumentSnapshot(before.reference, copy.deepcopy(doc), exists=True, read_time=update_time,
                                      create_time=before.create_time or update_time, update_time=update_time)


@dataclass(frozen=True)
class IndexedQuery:
    """A query the product runs, and the composite index it needs (None: single-field indexes suffice)."""

    name: str
    purpose: str
    index: tuple[tuple[str, str], ...] | None  # (field, ASCENDING|DESCENDING) in order


QUERIES = (
    IndexedQuery("active", "the watchdog: every unfinished job, the longest unchanged first",
                 (("active", "ASCENDING"), ("updated_at", "ASCENDING"))),
    IndexedQuery("newest", "operators: jobs by last change, newest first, a page at a time",
                 (("updated_at", "DESCENDING"), ("job_id", "DESCENDING"))),
    IndexedQuery("by_status", "operators: jobs in one status, newest first, a page at a time",
                 (("status", "ASCENDING"), ("updated_at", "DESCENDING"), ("job_id", "DESCENDING"))),
    IndexedQuery("by_day", "reports: the jobs created on each day in a range, with method, GPU and costs", None),
)

# Fields never queried, exempt from Firestore's automatic single-field indexes
# (each indexed value costs a write and storage; a timeline can hold hundreds).
UNINDEXED_FIELDS = ("history", "primary.previous", "fallback.tried", "fallback.previous", "fallback.why", "result.report")
# Other collections' fields likewise: the budget shards' reservation maps (functions/budget.py), one
# index entry per reservation key otherwise.
UNINDEXED_ELSEWHERE = (("spend", "launches"),)
TTL_FIELD = "expire_at"


def index_config(collection: str = JOBS) -> dict[str, Any]:
    """The Firestore index configuration (``firestore.indexes.json`` format) these queries need.

    ``infra/firestore/indexes.json`` holds it for the deployment; a test checks
    they agree. It also enables the TTL policy on ``expire_at``.
    """
    return {
        "indexes": [
            {"collectionGroup": collection, "queryScope": "COLLECTION",
             "fields": [{"fieldPath": name, "order": order} for name, order in query.index]}
            for query in QUERIES if query.index
        ],
        "fieldOverrides": [
            {"collectionGroup": collection, "fieldPath": TTL_FIELD, "ttl": True, "indexes": []},
            *({"collectionGroup": collection, "fieldPath": name, "indexes": []} for name in UNINDEXED_FIELDS),
            *({"collectionGroup": group, "fieldPath": name, "indexes": []} for group, name in UNINDEXED_ELSEWHERE),
        ],
    }


# What a report needs of each job: read as a projection, not the whole document.
REPORT_FIELDS = (
    "job_id", "status", "day", "method", "created_at", "updated_at", "video_length_s", "cleaned_up",
    "primary.custom_job", "primary.previous", "primary.machine_type", "primary.accelerator", "primary.failure",
    "fallback.instance", "fallback.attempt", "fallback.gpu", "fallback.provisioning", "fallback.price_per_hour",
    "fallback.launched_at", "fallback.deleted_at", "fallback.estimated_cost_usd", "fallback.previous",
    "fallback.preemptions", "fallback.hedge_failed",
    "result.rendered_by", "result.gpu", "result.wall_s", "result.worker_wall_s", "result.video_s", "result.cost_usd",
    "experiment",  # the A/B arm (avmonitor ab)
)


@dataclass(frozen=True)
class Page:
    jobs: list[JobState]
    cursor: str | None  # pass it back for the next page; None: this was the last


class StateStore:
    """Job documents: read, changed in transactions, and queried."""

    def __init__(self, db: firestore.Client, *, retention_days: float = 90.0, collection: str = JOBS) -> None:
        self._db = db
        self._jobs = db.collection(collection)
        self._retention_days = retention_days
        # Job document path -> its snapshot as this process last wrote it (see update(after_own_write=)).
        self._own_writes: dict[str, Snapshot] = {}

    @property
    def db(self) -> firestore.Client:
        return self._db

    def ref(self, job_id: str) -> firestore.DocumentReference:
        return self._jobs.document(job_id)

    def get(self, job_id: str) -> JobState | None:
        with timing.span("read"):
            snapshot = self.ref(job_id).get()
        return JobState.from_document(snapshot.to_dict()) if snapshot.exists else None

    def read_with(
        self, job_id: str, others: Sequence[firestore.DocumentReference]
    ) -> tuple[JobState | None, list[Snapshot]]:
        """The job's state and other documents, read in one round trip.

        Returns the state (None if unknown) and the snapshots, the job's first
        then ``others`` in order: pass them on as ``update_with(..., first=)``.
        """
        refs = [self.ref(job_id), *others]
        with timing.span("read"):
            by_path = {snapshot.reference.path: snapshot for snapshot in self._db.get_all(refs)}
        snapshots = [by_path[ref.path] for ref in refs]
        job = snapshots[0]
        return (JobState.from_document(job.to_dict()) if job.exists else None), snapshots

    def update(
        self, job_id: str, change: Callable[[JobState | None], JobState | None], *, after_own_write: bool = False
    ) -> tuple[JobState | None, bool]:
        """Apply ``change`` to the job's state in one transaction; returns ``(state, changed)``.

        ``change`` gets a private copy of the current state (None if the job is
        unknown) and returns the new state, or None to leave it as it is.
        ``after_own_write``: the caller wrote this job's state last, moments ago
        (say, the launch's claim): the first try starts from that write instead
        of reading it back, conditional on it being unchanged since (else a lost
        race: the next try reads), which saves a round trip.
        """
        first = None
        if after_own_write:
            own = self._own_writes.pop(self.ref(job_id).path, None)
            first = [own] if own is not None else None
        state, _, changed = self.update_with(job_id, None, lambda current, _: (change(current), None), first=first)
        return state, changed

    def update_with(
        self,
        job_id: str,
        other: firestore.DocumentReference | None,
        change: Callable[[JobState | None, dict[str, Any] | None], tuple[JobState | None, dict[str, Any] | None]],
        first: Sequence[Snapshot] | None = None,
    ) -> tuple[JobState | None, dict[str, Any] | None, bool]:
        """Change the job and one other document in the same transaction.

        ``change(state, other_doc)`` returns ``(new state or None, new other_doc or None)``.
        Returns ``(state, other_doc, changed)`` as they are now. ``first``: the
        two documents' snapshots as just read (:meth:`read_with`), for the first try.
        """
        others = [other] if other is not None else []

        def on_docs(state: JobState | None, docs: list[dict[str, Any] | None]):
            new_state, new_other = change(state, docs[0] if others else None)
            return new_state, [new_other] if others else []

        state, docs, changed = self.update_with_all(job_id, others, on_docs, first)
        return state, (docs[0] if others else None), changed

    def update_with_all(
        self,
        job_id: str,
        others: Sequence[firestore.DocumentReference],
        change: Callable[[JobState | None, list[dict[str, Any] | None]],
                         tuple[JobState | None, Sequence[dict[str, Any] | None] | None]],
        first: Sequence[Snapshot] | None = None,
    ) -> tuple[JobState | None, list[dict[str, Any] | None], bool]:
        """Change the job and other documents (say, the day's budget shards) in the same transaction.

        ``change(state, other_docs)`` returns ``(new state or None, new other_docs or None)``, a None
        in the list for a document left as it is. Returns ``(state, other_docs, changed)`` as they are
        now. ``first``: the documents' snapshots as just read (:meth:`read_with`), for the first try.
        """
        refs = [self.ref(job_id), *others]

        def on_docs(docs: Docs) -> Docs | None:
            state = JobState.from_document(docs[0]) if docs[0] is not None else None
            new_state, new_others = change(state, list(docs[1:]))
            new_job = new_state.to_document(self._retention_days) if new_state is not None else None
            return [new_job, *(new_others if new_others is not None else [None] * len(others))]

        docs, changed, after = _transact(self._db, refs, on_docs, first)
        if changed:
            if len(self._own_writes) > 256:  # a few in flight per process; never grows without bound
                self._own_writes.clear()
            self._own_writes[after[0].reference.path] = after[0]
        state = JobState.from_document(docs[0]) if docs[0] is not None else None
        return state, list(docs[1:]), changed

    # ---------------------------------------------------------- queries

    def active(self) -> Iterator[JobState | ValueError]:
        """Every unfinished job, the longest unchanged first (the watchdog's pass).

        A document that is not a valid state is yielded as its ValueError, so
        one bad document cannot stop the pass.
        """
        query = self._jobs.where(filter=FieldFilter("active", "==", True)).order_by("updated_at")
        for snapshot in query.stream():
            try:
                yield JobState.from_document(snapshot.to_dict())
            except ValueError as err:
                yield err

    def newest(self, limit: int = 50, cursor: str | None = None, status: str | None = None) -> Page:
        """Jobs by last change, newest first; ``cursor`` (from the previous page) continues after it."""
        query = self._jobs
        if status is not None:
            query = query.where(filter=FieldFilter("status", "==", status))
        query = query.order_by("updated_at", direction=firestore.Query.DESCENDING).order_by(
            "job_id", direction=firestore.Query.DESCENDING)
        if cursor:
            updated_at, _, job_id = cursor.partition("|")
            query = query.start_after({"updated_at": updated_at, "job_id": job_id})
        jobs = [JobState.from_document(s.to_dict()) for s in query.limit(limit).stream()]
        more = len(jobs) == limit
        return Page(jobs, f"{jobs[-1].updated_at}|{jobs[-1].job_id}" if more and jobs else None)

    def by_day(self, first_day: str, last_day: str | None = None) -> list[dict[str, Any]]:
        """The report fields (:data:`REPORT_FIELDS`) of every job created from ``first_day`` to ``last_day`` (YYYY-MM-DD)."""
        query = self._jobs.where(filter=FieldFilter("day", ">=", first_day))
        if last_day is not None:
            query = query.where(filter=FieldFilter("day", "<=", last_day))
        return [s.to_dict() for s in query.select(list(REPORT_FIELDS)).stream()]
