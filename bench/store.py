"""Benchmark: job state as GCS objects (main before Firestore) against Firestore documents, as jobs pile up.

    .venv/bin/python bench/store.py [--sizes 1000,10000] [--with-100k] [--repeats 3] [--json PATH]

What it measures, for each N, on both stores side by side in one run:

* seeding: N finished jobs and 50 active ones, the same jobs in both stores
  (Firestore: batched writes of 500, 4 batches in flight; GCS: one upload per
  job from 16 threads);
* one watchdog pass: GCS as main's watchdog did it (``list_ids`` and, one
  after the other, ``get`` of every state; the ones it must look at kept);
  Firestore ``list(StateStore.active())``;
* "the 50 newest jobs": GCS can only read every object (16 threads), sort by
  ``updated_at`` and keep 50; Firestore ``newest(50)``, and page 2 through the
  cursor it returns;
* "jobs of the last 7 days with their costs": GCS reads every object (16
  threads) and filters on the day; Firestore ``by_day(first_day)`` (a
  projection of ``REPORT_FIELDS``);
* a transaction under contention: 10 threads, each 10 updates (``dead_letters
  += 1``) of ONE job through the store's ``update``: wall time, updates/s, the
  tries it took (calls of the change function), and the lost updates (the
  final count must have grown by exactly 100; a lost one is a failure).

The reads are timed ``--repeats`` times (median printed); each also checks
that both stores return the same jobs. The issue's targets, checked at the
end: the Firestore watchdog pass and newest-50 each under 1 s at N = 10,000,
and within 2x from N = 1,000 to N = 10,000.

It starts its own emulators on free ports and nothing else (the local
cloud's watchdog would act on the seeded jobs): fake-gcs-server (its
filesystem backend, in a temp dir; its memory backend finds an object by a
linear scan, which would slow the GCS store down with N for no reason of its
own), and the Firestore emulator (``firestore_argv``). Both are stopped at the
end, on an error, on Ctrl-C and on SIGTERM. Each size has its own Firestore
collection (``jobs-N``; the emulator's queries scan only their own) and
bucket. Every size is seeded first; then each read is timed one store at a
time, every size in turn within each repeat (after one untimed Firestore run
of each: the emulator's first queries pay for its JIT and for collecting the
seeding's garbage), so that the rest of the machine's load weighs on the
sizes alike. The load average is printed: on a busy machine every figure
runs high and varies by 2x from run to run.

Reading the figures: on the emulators a GCS request is a local round trip of
about a millisecond; real GCS takes tens of milliseconds a request, so the
GCS store's figures here are a lower bound.

The exit status is 1 if the Firestore store lost an update or the two stores
disagreed on a read; 0 otherwise. The targets are printed (ok or MISSED), not
enforced: on the emulator the ratio cannot hold (below).

The emulator and the ratio target: the Firestore emulator has no indexes; it
scans the collection for every query, and sorts it for an ordered one. An
equality on ``job_id`` with ``limit(1)`` took 0.15 s at 1,000 and 1.3 s at
30,000 on a busy machine. So on the emulator ``active()`` and ``newest(50)``
grow with N: at 10,000 they are well under 1 s (0.1-0.4 s), but 2.5-5x their
time at 1,000. The table's "its query, ids only" rows are the same queries
returning only the ids: the emulator's own part, 3-5x from 1,000 to 10,000.
The rest (reading and decoding the 50 documents) has no reason to grow, and
is within the noise here. On Firestore each query is a scan of its declared
composite index (``QUERIES`` in ``functions/store.py``), whose cost is the 50
jobs it returns.

How long it takes (the development machine, 2 CPUs, busy with other work): a
default run 5-6 min, most of it the GCS store (seeding 10,000 objects
50-125 s; each of its reads at 10,000 15-25 s, run 3 times). ``--with-100k``
adds N = 100,000 and was not run in full: seeding took 310 s for Firestore
alone and would take 8-20 min for GCS, and each of the GCS store's 9 reads
3-5 min: about an hour in all. Run on Firestore alone, N = 100,000 gave a
watchdog pass of 6.7 s and newest-50 of 4.4 s (at 1,000 on the same busy
machine: 0.65 and 0.33 s): the emulator's scan.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a file (python bench/store.py): the repo root is the package root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402
from google.cloud.firestore_v1.base_query import FieldFilter  # noqa: E402

from bench.gcs_state_store import GcsStateStore  # noqa: E402
from functions.state import Claim, FallbackRun, JobState, PrimaryRun, RenderResult, Status  # noqa: E402
from functions.store import REPORT_FIELDS, StateStore  # noqa: E402
from infra.local.emulators import (  # noqa: E402
    FIRESTORE_READY_LINE,
    close_firestore_client,
    fake_gcs_binary,
    firestore_argv,
    firestore_client,
    storage_client,
)

PROJECT = "fast-render-bench-store"
HOST = "127.0.0.1"
ACTIVE_JOBS = 50
RETENTION_DAYS = 90.0
FIRESTORE_BATCH = 500
FIRESTORE_SEED_THREADS = 4
GCS_THREADS = 16
WRITERS, UPDATES_EACH = 10, 10
READY_TIMEOUT_S = 120.0
TARGET_S, TARGET_RATIO = 1.0, 2.0
CONTENDED_JOB = "bench-active-00"


# --------------------------------------------------------------------------- emulators


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Emulators:
    """fake-gcs-server (memory) and the Firestore emulator, each in its own process group, stopped on exit."""

    def __init__(self, work_dir: Path) -> None:
        self.log_dir = work_dir  # the logs, and fake-gcs-server's objects under gcs/
        self.gcs_port, self.firestore_port = free_port(), free_port()
        self._popens: list[subprocess.Popen[bytes]] = []

    @property
    def gcs_endpoint(self) -> str:
        return f"http://{HOST}:{self.gcs_port}"

    @property
    def firestore_host(self) -> str:
        return f"{HOST}:{self.firestore_port}"

    def _spawn(self, name: str, argv: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.log_dir / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"})
        self._popens.append(popen)
        return popen, log

    def start(self) -> None:
        gcs_argv = [str(fake_gcs_binary()), "-scheme", "http", "-host", HOST, "-port", str(self.gcs_port),
                    # Not "-backend memory": it finds an object by a linear scan of the bucket (a GET
                    # took 9 ms at 10,000 objects, 1.3 at 5,000); the filesystem backend's take 2 ms.
                    "-backend", "filesystem", "-filesystem-root", str(self.log_dir / "gcs"),
                    "-external-url", self.gcs_endpoint, "-log-level", "warn"]
        gcs, gcs_log = self._spawn("gcs", gcs_argv)
        firestore, firestore_log = self._spawn("firestore", firestore_argv(HOST, self.firestore_port, PROJECT))
        deadline = time.monotonic() + READY_TIMEOUT_S
        pending = {"gcs": (gcs, gcs_log), "firestore": (firestore, firestore_log)}
        while pending:
            for name, (popen, log) in list(pending.items()):
                if popen.poll() is not None:
                    raise RuntimeError(f"{name} emulator exited at start:\n{log.read_text(errors='replace')[-2000:]}")
                ready = (_port_open(self.gcs_port) if name == "gcs"
                         else FIRESTORE_READY_LINE in log.read_text(errors="replace"))
                if ready:
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f} s: {', '.join(pending)} (logs in {self.log_dir})")
            time.sleep(0.05)

    def pids(self) -> list[int]:
        return [popen.pid for popen in self._popens]

    def stop(self) -> None:
        """SIGKILL each group (the Firestore emulator is gcloud and its java child; nothing is kept)."""
        for popen in self._popens:
            try:
                os.killpg(popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for popen in self._popens:
            popen.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_group_alive(popen.pid) for popen in self._popens) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._popens.clear()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# --------------------------------------------------------------------------- the jobs


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


GPUS = (("t4", 0.35, "n1-standard-8"), ("l4", 0.71, "g2-standard-8"), ("a100", 2.93, "a2-highgpu-1g"))
ZONES = ("us-central1-a", "us-central1-b", "us-east1-c", "us-east4-a", "europe-west4-a")


def _history(start: datetime, steps: list[tuple[Status, str, dict[str, Any]]], rng: random.Random) -> tuple[list[dict], datetime]:
    history, moment = [], start
    for status, note, details in steps:
        history.append({"status": status.value, "at": _iso(moment), "note": note, **details})
        moment += timedelta(seconds=rng.uniform(2, 240))
    return history, moment - timedelta(seconds=1)


def finished_job(index: int, now: datetime, rng: random.Random) -> JobState:
    """A finished job as the product leaves it: 6-8 history entries, a fallback VM, a result with its report."""
    job_id = f"bench-{index:06d}"
    created = now - timedelta(days=30) + timedelta(seconds=rng.uniform(0, 30 * 86400 - 3600))
    length = round(rng.uniform(5, 120), 1)
    gpu, price, machine = rng.choice(GPUS)
    provisioning = "spot" if rng.random() < 0.7 else "on-demand"
    price = round(price * (0.35 if provisioning == "spot" else 1.0), 4)
    zone = rng.choice(ZONES)
    kind = rng.choices(("vm", "hedge", "failed"), weights=(75, 15, 10))[0]
    custom_job = f"projects/{PROJECT}/locations/us-central1/customJobs/{rng.randrange(10**15, 10**16)}"
    instance = f"fast-render-{job_id}-a1"
    failure = "queued" if kind == "hedge" else "quota"
    steps: list[tuple[Status, str, dict[str, Any]]] = [
        (Status.RECEIVED, "manifest valid, assets present", {"source": "message"}),
        (Status.PRIMARY_SUBMITTING, "creating the Vertex AI job", {"attempt": 1}),
        (Status.PRIMARY_SUBMITTED, "Vertex AI job created", {"custom_job": custom_job}),
        (Status.FALLBACK_REQUESTED, "primary failed: RESOURCE_EXHAUSTED (GPU quota)" if kind != "hedge"
         else "primary queued for over 600 s: hedging with a VM", {"kind": failure}),
        (Status.VM_LAUNCHING, "launching the fallback VM", {"attempt": 1}),
        (Status.VM_RUNNING, f"VM {instance} running in {zone}", {"instance": instance, "zone": zone, "gpu": gpu}),
    ]
    steps.append((Status.FAILED, "fallback VM crashed 3 times without a video", {}) if kind == "failed"
                 else (Status.SUCCEEDED, "video delivered", {"rendered_by": "vm"}))
    if rng.random() < 0.3:  # a Spot preemption and its relaunch on the way
        steps[6:6] = [(Status.FALLBACK_REQUESTED, "VM preempted without a video: relaunching", {"attempt": 2})]
    history, ended = _history(created, steps, rng)
    runtime_s = length * rng.uniform(0.4, 2.5) + 90
    estimated = round(runtime_s / 3600 * price, 4)
    launched_at = (created + timedelta(seconds=300)).timestamp()
    state = JobState(job_id=job_id, status=Status.FAILED if kind == "failed" else Status.SUCCEEDED,
                     created_at=_iso(created), updated_at=_iso(ended), source="message", video_length_s=length,
                     deadline_s=3600.0, history=history, outcome_published=True, cleaned_up=True)
    state.primary = PrimaryRun(custom_job=custom_job, machine_type="n1-standard-8", accelerator="NVIDIA_TESLA_T4",
                               failure=failure, error="RESOURCE_EXHAUSTED: quota exceeded" if failure == "quota" else None)
    state.fallback = FallbackRun(
        tried=[{"pass": 1, "gpu": gpu, "provisioning": provisioning, "zone": ZONES[(ZONES.index(zone) + 1) % len(ZONES)],
                "kind": "stockout", "detail": "ZONE_RESOURCE_POOL_EXHAUSTED"}] if rng.random() < 0.4 else [],
        instance=instance, zone=zone, gpu=gpu, provisioning=provisioning, machine_type=machine,
        why=f"{gpu} {provisioning} in {zone}: cheapest that meets the deadline ({estimated:.3f} USD estimated)",
        launched_at=launched_at, estimated_runtime_s=round(runtime_s, 1), estimated_cost_usd=estimated,
        price_per_hour=price, reserved_usd=estimated,
    )
    if len(history) > 7:  # the preempted first attempt
        state.fallback.attempt, state.fallback.preemptions = 2, 1
        state.fallback.previous = [{"attempt": 1, "instance": instance, "zone": zone, "gpu": gpu, "provisioning": "spot",
                                    "end": "preempted"}]
        state.fallback.instance = instance = f"fast-render-{job_id}-a2"
    if kind == "failed":
        state.error = "fallback VM crashed 3 times without a video"
    else:
        wall = runtime_s * rng.uniform(0.8, 1.2)
        report = {"rendered_by": "vm", "gpu": gpu, "instance": instance, "video_s": length, "wall_s": round(wall - 40, 2),
                  "worker_wall_s": round(wall, 2), "cost_usd": round(wall / 3600 * price, 5), "frames": int(length * 24),
                  "fps": 24, "s_per_s": round((wall - 40) / length, 3), "segments": max(1, int(length // 10)),
                  "resumed_segments": 0, "zone": zone, "provisioning": provisioning, "renderer": "fast-render 1.4.2"}
        state.result = RenderResult.from_report(f"gs://fast-render-output/renders/{job_id}/video.mp4",
                                                str(rng.randrange(10**15, 10**16)), report)
    return state


ACTIVE_STATUSES = (Status.RECEIVED, Status.PRIMARY_SUBMITTED, Status.PRIMARY_RUNNING, Status.FALLBACK_REQUESTED,
                   Status.VM_LAUNCHING, Status.VM_RUNNING)
_ON_VERTEX = (Status.RECEIVED, Status.PRIMARY_SUBMITTING, Status.PRIMARY_SUBMITTED, Status.PRIMARY_RUNNING)
_ON_A_VM = (Status.RECEIVED, Status.PRIMARY_SUBMITTING, Status.PRIMARY_SUBMITTED, Status.FALLBACK_REQUESTED,
            Status.VM_LAUNCHING, Status.VM_RUNNING)
ACTIVE_PATHS = {status: _ON_VERTEX if status in _ON_VERTEX else _ON_A_VM for status in ACTIVE_STATUSES}


def active_job(index: int, now: datetime, rng: random.Random) -> JobState:
    """An unfinished job, created in the last hour, somewhere on its way."""
    job_id = f"bench-active-{index:02d}"
    created = now - timedelta(seconds=rng.uniform(600, 3600))
    status = ACTIVE_STATUSES[index % len(ACTIVE_STATUSES)]
    path = ACTIVE_PATHS[status]
    steps = [(s, f"-> {s.value}", {}) for s in path[: path.index(status) + 1]]
    history, ended = _history(created, steps, rng)
    state = JobState(job_id=job_id, status=status, created_at=_iso(created), updated_at=_iso(ended), source="upload",
                     video_length_s=round(rng.uniform(5, 120), 1), deadline_s=3600.0, history=history)
    if status is not Status.RECEIVED:
        state.primary = PrimaryRun(custom_job=f"projects/{PROJECT}/locations/us-central1/customJobs/{index}",
                                   machine_type="n1-standard-8", accelerator="NVIDIA_TESLA_T4")
    if status in (Status.FALLBACK_REQUESTED, Status.VM_LAUNCHING, Status.VM_RUNNING):
        state.primary.failure = "quota"
        state.fallback = FallbackRun(claim=Claim.new("token", ended.timestamp()) if status is Status.VM_LAUNCHING else None)
    if status is Status.VM_RUNNING:
        state.fallback.instance, state.fallback.zone, state.fallback.gpu = f"fast-render-{job_id}-a1", "us-central1-a", "l4"
        state.fallback.launched_at = ended.timestamp()
    return state


def make_jobs(n: int, seed: int = 7) -> list[JobState]:
    rng, now = random.Random(seed), datetime.now(timezone.utc)
    return [finished_job(i, now, rng) for i in range(n)] + [active_job(i, now, rng) for i in range(ACTIVE_JOBS)]


# --------------------------------------------------------------------------- seeding


def seed_firestore(store: StateStore, jobs: list[JobState]) -> float:
    def write(chunk: list[JobState]) -> None:
        batch = store.db.batch()
        for state in chunk:
            batch.set(store.ref(state.job_id), state.to_document(RETENTION_DAYS))
        batch.commit()

    started = time.perf_counter()
    pool_map(write, [jobs[i : i + FIRESTORE_BATCH] for i in range(0, len(jobs), FIRESTORE_BATCH)], FIRESTORE_SEED_THREADS)
    return time.perf_counter() - started


def seed_gcs(store: GcsStateStore, jobs: list[JobState]) -> float:
    started = time.perf_counter()
    pool_map(store.put, jobs, GCS_THREADS)
    return time.perf_counter() - started


def pool_map(fn: Callable[[Any], Any], items: list[Any], threads: int) -> list[Any]:
    """``fn`` over ``items`` on ``threads`` threads; on Ctrl-C or an error the queued calls are dropped, not waited for."""
    pool = ThreadPoolExecutor(threads)
    try:
        return list(pool.map(fn, items))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


# --------------------------------------------------------------------------- the operations


def gcs_watchdog_pass(store: GcsStateStore) -> list[str]:
    """Main's watchdog before Firestore: list every id, read each state in turn, keep the ones to look at."""
    kept = []
    for job_id in store.list_ids():
        state = store.get(job_id)
        if state is not None and state.watched:
            kept.append(state.job_id)
    return kept


def gcs_read_all(store: GcsStateStore) -> list[JobState]:
    return [state for state in pool_map(store.get, store.list_ids(), GCS_THREADS) if state is not None]


def gcs_newest(store: GcsStateStore, limit: int = 50) -> list[str]:
    states = sorted(gcs_read_all(store), key=lambda s: (s.updated_at, s.job_id), reverse=True)
    return [state.job_id for state in states[:limit]]


def project(doc: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """The dotted ``paths`` of ``doc``, nested as a Firestore projection returns them."""
    out: dict[str, Any] = {}
    for path in paths:
        *parents, leaf = path.split(".")
        source, target = doc, out
        for name in parents:
            source, target = source.get(name) or {}, target.setdefault(name, {})
        if leaf in source:
            target[leaf] = source[leaf]
    return out


def gcs_by_day(store: GcsStateStore, first_day: str) -> list[dict[str, Any]]:
    docs = (state.to_document(RETENTION_DAYS) for state in gcs_read_all(store))
    return [project(doc, REPORT_FIELDS) for doc in docs if doc["day"] >= first_day]


def _ids(query: Any) -> list[str]:
    return [snapshot.get("job_id") for snapshot in query.select(["job_id"]).stream()]


def firestore_watchdog_pass(store: StateStore) -> list[str]:
    states = list(store.active())
    bad = [s for s in states if isinstance(s, ValueError)]
    if bad:
        raise RuntimeError(f"active() yielded {len(bad)} unreadable documents: {bad[0]}")
    return [s.job_id for s in states]  # type: ignore[union-attr]


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The median wall time of ``repeats`` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


@dataclass
class Contention:
    wall_s: float
    updates_per_s: float
    tries: int  # calls of the change function (1 per update without contention)
    errors: int  # update calls that raised (gave up)
    lost: int  # 100 minus what the counter grew by
    first_error: str = ""

    def as_text(self) -> str:
        return (f"{self.wall_s:.2f} s, {self.updates_per_s:.0f}/s, {self.tries} tries, "
                f"{self.errors} gave up, {self.lost} lost")


def contention(update: Callable[[str, Callable[[JobState | None], JobState | None]], Any],
               get: Callable[[str], JobState | None], job_id: str) -> Contention:
    before = get(job_id).dead_letters  # type: ignore[union-attr]
    tries, errors, first_error, lock = 0, 0, "", threading.Lock()
    barrier = threading.Barrier(WRITERS)

    def change(state: JobState | None) -> JobState | None:
        nonlocal tries
        with lock:
            tries += 1
        if state is None:
            return None
        state.dead_letters += 1
        return state

    def writer() -> None:
        nonlocal errors, first_error
        barrier.wait()
        for _ in range(UPDATES_EACH):
            try:
                update(job_id, change)
            except Exception as err:  # noqa: BLE001 -- a writer that gave up is counted, not fatal
                with lock:
                    errors += 1
                    first_error = first_error or f"{type(err).__name__}: {err}"

    started = time.perf_counter()
    threads = [threading.Thread(target=writer, daemon=True) for _ in range(WRITERS)]  # Ctrl-C does not wait for them
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    grown = get(job_id).dead_letters - before  # type: ignore[union-attr]
    total = WRITERS * UPDATES_EACH
    return Contention(wall, grown / wall, tries, errors, total - grown, first_error)


# --------------------------------------------------------------------------- one size


@dataclass
class SizeResult:
    n: int
    gcs: dict[str, Any] = field(default_factory=dict)
    firestore: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)  # what each read returned (jobs), for the table
    mismatches: list[str] = field(default_factory=list)


@dataclass
class Seeded:
    """One size's jobs, in both stores: its own Firestore collection (``jobs-N``) and bucket."""

    n: int
    collection: str
    firestore: StateStore
    gcs: GcsStateStore
    result: SizeResult


def seed_size(n: int, db: Any, gcs_client: Any, log: Callable[[str], None]) -> Seeded:
    log(f"N={n:,}: making {n:,} + {ACTIVE_JOBS} jobs")
    jobs = make_jobs(n)
    bucket = f"bench-state-{n}"
    gcs_client.create_bucket(bucket)
    # A collection per size: the emulator's queries scan their own collection only (checked), so
    # the sizes do not slow each other down, and can be timed in turn (see measure).
    seeded = Seeded(n, f"jobs-{n}", StateStore(db, retention_days=RETENTION_DAYS, collection=f"jobs-{n}"),
                    GcsStateStore(gcs_client, bucket, retention_days=RETENTION_DAYS), SizeResult(n))
    log(f"N={n:,}: seeding Firestore")
    seeded.result.firestore["seed_s"] = seed_firestore(seeded.firestore, jobs)
    log(f"N={n:,}: seeding GCS")
    seeded.result.gcs["seed_s"] = seed_gcs(seeded.gcs, jobs)
    return seeded


def _canonical_report(docs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((d["job_id"], d.get("fallback", {}).get("estimated_cost_usd"), d.get("result", {}).get("cost_usd"),
                   d.get("method")) for d in docs)


def measure(sizes: list[Seeded], repeats: int, log: Callable[[str], None]) -> None:
    """Time every read on every size, the sizes in turn within each repeat.

    Interleaved so that whatever else the machine is doing weighs on every size
    alike (the ratios between sizes are targets); the median of ``repeats``,
    after one untimed run of each Firestore read on each size.
    """
    first_day = (datetime.now(timezone.utc) - timedelta(days=6)).date().isoformat()
    cursors = {s.n: s.firestore.newest(50).cursor for s in sizes}
    reads: list[tuple[str, Callable[[Seeded], Any], Callable[[Seeded], Any] | None, Callable[[Any], Any]]] = [
        ("watchdog", lambda s: firestore_watchdog_pass(s.firestore), lambda s: gcs_watchdog_pass(s.gcs), sorted),
        ("newest50", lambda s: [j.job_id for j in s.firestore.newest(50).jobs], lambda s: gcs_newest(s.gcs), list),
        ("newest50_page2", lambda s: [j.job_id for j in s.firestore.newest(50, cursor=cursors[s.n]).jobs], None, list),
        ("last7days", lambda s: s.firestore.by_day(first_day), lambda s: gcs_by_day(s.gcs, first_day), _canonical_report),
        # Not the product's: the same two queries returning only the ids (their shape as in
        # functions/store.py): what the emulator itself spends on them (it has no indexes; it
        # scans and sorts the collection), without reading and decoding the 50 documents.
        ("watchdog_ids", lambda s: _ids(s.firestore.db.collection(s.collection).where(
            filter=FieldFilter("active", "==", True)).order_by("updated_at")), None, sorted),
        ("newest50_ids", lambda s: _ids(s.firestore.db.collection(s.collection).order_by(
            "updated_at", direction="DESCENDING").order_by("job_id", direction="DESCENDING").limit(50)), None, list),
    ]
    for name, on_fs, on_gcs, canonical in reads:
        times: dict[tuple[int, str], list[float]] = {}
        outs: dict[tuple[int, str], Any] = {}
        for s in sizes:  # untimed: the emulator's first queries after seeding pay its JIT and its GC of the seeding
            on_fs(s)
        for store, fn in (("firestore", on_fs), ("gcs", on_gcs)):  # one store at a time: no overlap of their load
            if fn is None:
                continue
            for repeat in range(repeats):
                for s in sizes:
                    log(f"{name}: {store}, N={s.n:,}, run {repeat + 1} of {repeats}")
                    started = time.perf_counter()
                    outs[s.n, store] = fn(s)
                    times.setdefault((s.n, store), []).append(time.perf_counter() - started)
        for s in sizes:
            s.result.firestore[f"{name}_s"] = statistics.median(times[s.n, "firestore"])
            s.result.rows[name] = len(outs[s.n, "firestore"])
            if on_gcs is None:
                continue
            s.result.gcs[f"{name}_s"] = statistics.median(times[s.n, "gcs"])
            if canonical(outs[s.n, "firestore"]) != canonical(outs[s.n, "gcs"]):
                s.result.mismatches.append(f"{name}: Firestore {len(outs[s.n, 'firestore'])} rows, "
                                           f"GCS {len(outs[s.n, 'gcs'])}, not the same jobs")
    allowed = {path.split(".")[0] for path in REPORT_FIELDS}
    for s in sizes:
        extra = {key for doc in s.firestore.by_day(first_day) for key in doc} - allowed
        if extra:
            s.result.mismatches.append(f"by_day: the projection returned fields it did not ask for: {sorted(extra)}")
        if [j.job_id for j in s.firestore.newest(50, cursor=cursors[s.n]).jobs] != gcs_newest(s.gcs, 100)[50:]:
            s.result.mismatches.append("newest 50, page 2: not the GCS store's jobs 51-100")


def measure_contention(sizes: list[Seeded], log: Callable[[str], None]) -> None:
    for s in sizes:
        log(f"contention: N={s.n:,}, {WRITERS} writers x {UPDATES_EACH} updates on {CONTENDED_JOB}")
        for name, store in (("firestore", s.firestore), ("gcs", s.gcs)):
            getattr(s.result, name)["contention"] = contention(store.update, store.get, CONTENDED_JOB).__dict__


def run(sizes: list[int], emulators: Emulators, repeats: int, log: Callable[[str], None]) -> list[SizeResult]:
    db = firestore_client(emulators.firestore_host, PROJECT)
    gcs_client = storage_client(emulators.gcs_endpoint, PROJECT)
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=GCS_THREADS * 2)
    gcs_client._http.mount("http://", adapter)  # the default pool (10) is smaller than the threads
    try:
        seeded = [seed_size(n, db, gcs_client, log) for n in sizes]
        measure(seeded, repeats, log)
        measure_contention(seeded, log)
        return [s.result for s in seeded]
    finally:
        close_firestore_client(db)
        gcs_client._http.close()


# --------------------------------------------------------------------------- the report


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def table(results: list[SizeResult]) -> list[str]:
    rows: list[tuple[str, str, str, str]] = [("operation", "N", "GCS store", "Firestore store")]
    for r in results:
        n = f"{r.n:,}"
        rows += [
            (f"seed {r.n:,} finished + {ACTIVE_JOBS} active", n, fmt_s(r.gcs["seed_s"]), fmt_s(r.firestore["seed_s"])),
            (f"watchdog pass ({r.rows['watchdog']} active)", n, fmt_s(r.gcs["watchdog_s"]), fmt_s(r.firestore["watchdog_s"])),
            ("  (its query, ids only)", n, "", fmt_s(r.firestore["watchdog_ids_s"])),
            ("the 50 newest jobs", n, fmt_s(r.gcs["newest50_s"]), fmt_s(r.firestore["newest50_s"])),
            ("  (its query, ids only)", n, "", fmt_s(r.firestore["newest50_ids_s"])),
            ("  page 2 (cursor)", n, "(read all again)", fmt_s(r.firestore["newest50_page2_s"])),
            (f"last 7 days with costs ({r.rows['last7days']} jobs)", n, fmt_s(r.gcs["last7days_s"]),
             fmt_s(r.firestore["last7days_s"])),
        ]
        for label, key in (("contention: wall", "wall_s"), ("  updates/s", "updates_per_s"),
                           ("  tries (100 updates)", "tries"), ("  gave up / lost updates", None)):
            cells = []
            for side in (r.gcs, r.firestore):
                c = side["contention"]
                if key is None:
                    cells.append(f"{c['errors']} / {c['lost']}" + ("  LOST" if c["lost"] else ""))
                elif key == "wall_s":
                    cells.append(fmt_s(c[key]))
                else:
                    cells.append(f"{c[key]:.0f}")
            rows.append((f"{label}" if label.startswith(" ") else f"{label} ({WRITERS}x{UPDATES_EACH} on one job)",
                         n, cells[0], cells[1]))
        rows.append(("", "", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for i, row in enumerate(rows[:-1]):
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]:>{widths[3]}}".rstrip())
        if i == 0:
            lines.append("-" * len(lines[0]))
    return lines


def verdicts(results: list[SizeResult]) -> tuple[list[str], dict[str, Any], bool, bool]:
    """The targets' lines, their figures, whether all targets hold, and whether nothing went wrong."""
    by_n = {r.n: r for r in results}
    lines, figures, ok, correct = [], {}, True, True
    ops = (("watchdog_s", "watchdog pass"), ("newest50_s", "newest 50"))
    if 10_000 in by_n:
        for key, label in ops:
            value = by_n[10_000].firestore[key]
            holds = value < TARGET_S
            ok &= holds
            figures[f"{key[:-2]}_at_10000_s"] = value
            lines.append(f"Firestore {label} at N=10,000: {fmt_s(value)} < {TARGET_S:g} s: {'ok' if holds else 'MISSED'}")
    else:
        lines.append("targets at N=10,000: not run (add 10000 to --sizes)")
    if 1_000 in by_n and 10_000 in by_n:
        for key, label in ops:
            ratio = by_n[10_000].firestore[key] / by_n[1_000].firestore[key]
            holds = ratio <= TARGET_RATIO
            ok &= holds
            figures[f"{key[:-2]}_ratio_10000_1000"] = ratio
            lines.append(f"Firestore {label}, N=10,000 / N=1,000: {ratio:.2f}x <= {TARGET_RATIO:g}: {'ok' if holds else 'MISSED'}")
        small, large = by_n[1_000].firestore, by_n[10_000].firestore
        for key, label in ops:
            ids = key.replace("_s", "_ids_s")
            lines.append(f"  {label}: the emulator's query alone (ids only) {fmt_s(small[ids])} -> {fmt_s(large[ids])} "
                         f"({large[ids] / small[ids]:.2f}x: it scans and sorts, having no indexes); the rest, reading "
                         f"and decoding the 50 jobs, {fmt_s(small[key] - small[ids])} -> {fmt_s(large[key] - large[ids])} "
                         f"({_rest_ratio(small, large, key, ids)})")
    if 1_000 in by_n and 100_000 in by_n:
        for key, label in ops:
            ratio = by_n[100_000].firestore[key] / by_n[1_000].firestore[key]
            figures[f"{key[:-2]}_ratio_100000_1000"] = ratio
            lines.append(f"(Firestore {label}, N=100,000 / N=1,000: {ratio:.2f}x; no target)")
    for r in results:
        if r.firestore["contention"]["lost"] or r.firestore["contention"]["errors"]:
            correct = False
            c = r.firestore["contention"]
            lines.append(f"FAILURE: Firestore store at N={r.n:,}: {c['lost']} lost updates, {c['errors']} gave up: {c['first_error']}")
        if r.gcs["contention"]["lost"]:
            c = r.gcs["contention"]
            lines.append(f"GCS store at N={r.n:,}: {c['lost']} lost updates ({c['errors']} gave up: {c['first_error']})")
        for mismatch in r.mismatches:
            correct = False
            lines.append(f"FAILURE: N={r.n:,}: the stores disagree: {mismatch}")
    return lines, figures, ok, correct


def _rest_ratio(small: dict[str, Any], large: dict[str, Any], key: str, ids: str) -> str:
    below, above = small[key] - small[ids], large[key] - large[ids]
    return f"{above / below:.2f}x" if below > 0 and above > 0 else "within the noise"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="finished-job counts, comma-separated (default 1000,10000)")
    parser.add_argument("--with-100k", action="store_true", help="add N = 100,000")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each read (the median is printed)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines (stderr)")
    args = parser.parse_args(argv)
    sizes = sorted({int(s.replace(",", "").replace("_", "")) for s in args.sizes.split(",") if s.strip()}
                   | ({100_000} if args.with_100k else set()))

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    def on_signal(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally below: the emulators stop

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    results: list[SizeResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        emulators = Emulators(Path(tmp))
        try:
            log(f"starting fake-gcs-server (:{emulators.gcs_port}) and the Firestore emulator (:{emulators.firestore_port})")
            emulators.start()
            log(f"emulators ready (pids {', '.join(map(str, emulators.pids()))})")
            results = run(sizes, emulators, args.repeats, log)
        except KeyboardInterrupt:
            print("interrupted: emulators stopped", file=sys.stderr)
            return 130
        finally:
            emulators.stop()
    wall = time.perf_counter() - started
    load = (load_before, os.getloadavg()[0])

    print(f"job state stores: GCS objects (main before Firestore) vs Firestore documents; "
          f"emulators, {ACTIVE_JOBS} active jobs, reads the median of {args.repeats}")
    print("\n".join(table(results)))
    print()
    lines, figures, ok, correct = verdicts(results)
    print("\n".join(lines))
    print(f"\nwall time {wall:.0f} s; load average (1 min) {load[0]:.1f} at the start, {load[1]:.1f} at the end, "
          f"{os.cpu_count()} CPUs")
    if args.json:
        payload = {"sizes": sizes, "repeats": args.repeats, "active_jobs": ACTIVE_JOBS, "wall_s": wall, "load_average": load,
                   "results": {str(r.n): {"gcs": r.gcs, "firestore": r.firestore, "rows": r.rows,
                                          "mismatches": r.mismatches} for r in results},
                   "targets": figures, "targets_hold": ok, "correct": correct}
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
