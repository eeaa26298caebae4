"""The functions' own account of a failover: their ``delivery timing`` lines (``functions/timing.py``).

The local cloud writes each function's output to ``<state dir>/logs/fn-<name>.log``.
Two deliveries carry a job from Vertex's failure to its VM's insert:

1. ``on_vertex_event`` (vertex-events): reads the Vertex job, moves the job to
   ``fallback_requested`` in a transaction, publishes to ``render-fallback``
   (its line's mark ``fallback_published``);
2. ``launch_fallback`` (fallback-launcher): reads the job and the fleet's
   memory, selects, claims in a transaction, sends the insert (mark
   ``insert_returned``), then waits for the operation and records the VM.

For each, delivery = its handler's start - its message's publish time (the
emulator and the local push relay; for the first, counted from the Vertex
failure when the message was published earlier, as the QUEUED entry's is),
and the product's part = its handler's start to its mark, split into the
named parts up to that mark.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERTEX_LOG, FALLBACK_LOG = "fn-vertex-events.log", "fn-fallback-launcher.log"
# The parts on the way (timing.span names), as printed.
PARTS = {
    "import": "import (first call only)",
    "read": "state reads (job; after: with the fleet memory)",
    "memory": "fleet memory reads (before: apart)",
    "transaction": "state transaction(s)",
    "selection": "selection",
    "publish": "publish to render-fallback",
    "insert": "insert request (build + call)",
}
# Inside the transactions (not added to the parts above).
SUBPARTS = {"transaction_read": "(of those: their reads)", "transaction_commit": "(of those: their commits)"}


@dataclass
class Hop:
    """One delivery's line, the parts that matter here."""

    published_at: float | None
    received_at: float
    mark_at: float | None  # fallback_published / insert_returned
    elapsed_ms: float  # the whole call: what the push subscription waits for
    cpu_ms: float
    path_parts_ms: dict[str, float] = field(default_factory=dict)
    retries: int = 0

    @property
    def own_ms(self) -> float | None:
        return None if self.mark_at is None else (self.mark_at - self.received_at) * 1000


def _lines(path: Path) -> list[dict[str, Any]]:
    found = []
    if not path.exists():
        return found
    for line in path.read_text(errors="replace").splitlines():
        if '"delivery timing"' not in line:
            continue
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def _hop(entry: dict[str, Any], mark: str) -> Hop:
    return Hop(
        published_at=entry.get("published_at"),
        received_at=entry["received_at"],
        mark_at=(entry.get("marks") or {}).get(mark),
        elapsed_ms=entry["elapsed_ms"],
        cpu_ms=entry["cpu_ms"],
        path_parts_ms=entry.get("path_parts_ms") or {},
        retries=(entry.get("counts") or {}).get("transaction_retries", 0),
    )


def hops(log_dir: Path, function_log: str, function: str, mark: str) -> dict[str, Hop]:
    """Job id -> the first delivery of ``function`` that reached ``mark`` for it."""
    found: dict[str, Hop] = {}
    for entry in _lines(log_dir / function_log):
        job_id = entry.get("job_id")
        if entry.get("function") != function or not job_id or mark not in (entry.get("marks") or {}):
            continue
        hop = _hop(entry, mark)
        if job_id not in found or (hop.mark_at or 0) < (found[job_id].mark_at or 0):
            found[job_id] = hop
    return found


def service_times_ms(log_dir: Path, function_log: str, function: str) -> list[float]:
    """Every delivery's whole call (ms): the time the function's push subscription waited for its answer."""
    return [e["elapsed_ms"] for e in _lines(log_dir / function_log) if e.get("function") == function]


@dataclass
class Split:
    """One job's failover time, split: the emulator's delivery vs the product's own code."""

    delivery_ms: float
    vertex_hop_ms: float  # Vertex's entry -> on_vertex_event began (redeliveries after a NotYet included)
    fallback_hop_ms: float  # render-fallback message -> launch_fallback began
    product_ms: float
    parts_ms: dict[str, float]  # PARTS keys, plus "other" (the Vertex read, the code between the parts)
    cpu_ms: float
    retries: int


def split(vertex_failed: float, ve: Hop, fl: Hop) -> Split | None:
    if ve.own_ms is None or fl.own_ms is None or fl.published_at is None:
        return None
    # The handler of the job's QUEUED entry may have begun before Vertex failed
    # (it then reads the job FAILED): its delivery is not on the path, and its own time counts from the failure.
    start = max(ve.published_at or vertex_failed, vertex_failed)
    ve_began = max(ve.received_at, vertex_failed)
    hop1, hop2 = (ve_began - start) * 1000, (fl.received_at - fl.published_at) * 1000
    product = (ve.mark_at - ve_began) * 1000 + fl.own_ms
    parts = {key: ve.path_parts_ms.get(key, 0.0) + fl.path_parts_ms.get(key, 0.0) for key in PARTS}
    parts["other"] = product - sum(parts.values())
    parts.update({key: ve.path_parts_ms.get(key, 0.0) + fl.path_parts_ms.get(key, 0.0) for key in SUBPARTS})
    return Split(hop1 + hop2, hop1, hop2, product, parts, ve.cpu_ms + fl.cpu_ms, ve.retries + fl.retries)


def outcomes(log_dir: Path, function_log: str, function: str) -> dict[str, int]:
    """How many of ``function``'s calls returned and how many raised (Pub/Sub delivers those again)."""
    counts: dict[str, int] = {}
    for entry in _lines(log_dir / function_log):
        if entry.get("function") == function:
            counts[entry.get("outcome", "?")] = counts.get(entry.get("outcome", "?"), 0) + 1
    return counts
