"""The daily budget guard, in shards: launches racing at its edge cannot all pass it, and launches far
from it do not contend with each other.

Every launch reserves its VM's estimated cost in the day's spend, in the same transaction as its job's
state (``fallback.py``). Kept in one document for the whole day, that document takes every launch's
write, and Firestore cannot update one document at an unlimited rate ("If you have a counter based on
single document and frequent enough increments to it you will eventually see contention": Firestore's
distributed-counters page). Measured here before this module, in bursts of 10 jobs a second
(``bench/failover.py``): one launcher call in five lost its transaction to another launch and ran it again.

So a day's reservations live in ``SHARDS`` documents, ``spend/<day>-s<k>``, a job's always in the same
one (crc32 of its id), each with an **allowance**: the part of the daily budget it may hand out on its
own. The day's root document, ``spend/<day>``, records what it has granted to each shard. Two rules keep
the budget exact: the allowances add up to at most the daily budget, and no shard's reservations pass its
allowance. Then:

- a launch within its shard's allowance writes its shard alone (the common case);
- one past it takes a grant from the root, in one transaction with its shard: what it needs, and at
  least ``GRANT_SHARE`` of the budget, so that the launches after it on that shard need none;
- when the root has nothing left to grant, the launch reads every shard: if the day's reservations and
  its own fit the budget, it takes back the other shards' unused allowances and is granted the rest, in
  one transaction over all of them; else it is refused, with the day's total. Only launches at the edge
  of the budget contend, which is where being exact matters.

A change of the daily budget (the catalog's) goes through that last, exact, step once, which re-divides
it. The functions here are plain: they take the documents as a transaction read them and return the
documents to write, so that the caller commits them with the job's state.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from functions.store import transact

COLLECTION = "spend"
SHARDS = 8
GRANT_SHARE = 1 / (2 * SHARDS)  # half a shard's even share: a few grants a day per shard, not one per launch
_EPS = 1e-9

Doc = dict[str, Any] | None


class NeedsEveryShard(Exception):
    """The root has no budget left to grant: run the change again over ``refs(job_id, every_shard=True)``."""


@dataclass(frozen=True)
class Reservation:
    ok: bool
    others_usd: float | None = None  # the day's other reservations, where they were counted (always when refused)


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def spend_key(job_id: str, attempt: int) -> str:
    """The key a VM attempt's reservation is kept under in the day's spend."""
    return f"{job_id}/a{attempt}"


def shard_of(job_id: str) -> int:
    return zlib.crc32(job_id.encode()) % SHARDS


def _db():
    from functions import clients

    return clients.firestore_client()


def refs(job_id: str, *, every_shard: bool = False, day: str | None = None) -> list:
    """The documents a change of ``job_id``'s reservations reads: its shard, the root, then (every_shard) the rest."""
    day, own = day or today(), shard_of(job_id)
    chosen = [_shard(day, own), _root(day)]
    if every_shard:
        chosen += [_shard(day, k) for k in range(SHARDS) if k != own]
    return chosen


def _root(day: str):
    return _db().collection(COLLECTION).document(day)


def _shard(day: str, k: int):
    return _db().collection(COLLECTION).document(f"{day}-s{k}")


def reserve(docs: Sequence[Doc], job_id: str, key: str, cost_usd: float,
            daily_usd: float | None) -> tuple[list[Doc] | None, Reservation]:
    """``docs`` (as ``refs(job_id, ...)`` read them) with ``cost_usd`` reserved under ``key``, if the budget allows.

    A key reserved already (a redelivery, another option for the same attempt) is replaced, not added.
    ``daily_usd`` None records the cost whatever the budget (a VM's actual cost, settled afterwards).
    Returns the documents to write (None for one left as it is; None for all: nothing changes) and the
    outcome. Raises NeedsEveryShard when only every shard can tell.
    """
    own = shard_of(job_id)
    shard, root = dict(docs[0] or {}), dict(docs[1] or {})
    launches = dict(shard.get("launches", {}))
    cost = round(cost_usd, 6)
    if launches.get(key) == cost:
        return None, Reservation(True)
    launches[key] = cost
    used, allowance = sum(launches.values()), float(shard.get("allowance", 0.0))
    granted = {k: float(v) for k, v in root.get("granted", {}).items()}
    same_budget = daily_usd is None or root.get("daily_usd") == daily_usd
    keep = [None] * (len(docs) - 2)
    if same_budget and used <= allowance + _EPS:
        return [{**shard, "launches": launches}, None, *keep], Reservation(True)
    if daily_usd is not None and (same_budget or not granted):  # a new day's first grant sets its budget
        need, room = used - allowance, daily_usd - sum(granted.values()) - _legacy(root)
        if need <= room + _EPS:
            grant = min(room, max(need, daily_usd * GRANT_SHARE))
            granted[str(own)] = round(granted.get(str(own), 0.0) + grant, 6)
            return ([{"allowance": round(allowance + grant, 6), "launches": launches},
                     {**root, "granted": granted, "daily_usd": daily_usd}, *keep], Reservation(True))
    if len(docs) < SHARDS + 1:
        raise NeedsEveryShard(job_id)
    # Every shard read: the day's truth.
    others = [k for k in range(SHARDS) if k != own]
    used_by = {k: sum((doc or {}).get("launches", {}).values()) for k, doc in zip(others, docs[2:])}
    elsewhere = sum(used_by.values()) + _legacy(root)
    if daily_usd is not None and elsewhere + used > daily_usd + _EPS:
        return None, Reservation(False, others_usd=elsewhere + used - cost)
    allowances = {k: round(u, 6) for k, u in used_by.items()}  # the others keep what they have reserved
    allowances[own] = round(used if daily_usd is None else daily_usd - elsewhere, 6)
    # Every shard is written, changed or not: each write is conditional on the shard as read.
    new_others = [{**(doc or {}), "allowance": allowances[k]} for k, doc in zip(others, docs[2:])]
    new_root = {**root, "granted": {str(k): v for k, v in allowances.items()}}
    if daily_usd is not None:
        new_root["daily_usd"] = daily_usd
    return [{"allowance": allowances[own], "launches": launches}, new_root, *new_others], Reservation(True)


def without(docs: Sequence[Doc], key: str) -> list[Doc] | None:
    """``docs`` with ``key``'s reservation given back (its shard keeps the allowance); None if none is held."""
    shard = dict(docs[0] or {})
    launches = dict(shard.get("launches", {}))
    if launches.pop(key, None) is None:
        return None
    return [{**shard, "launches": launches}, *([None] * (len(docs) - 1))]


def _legacy(root: dict) -> float:
    """Reservations made before the shards, in the root document itself (a deployment upgraded mid-day)."""
    return float(sum(root.get("launches", {}).values()))


# ---------------------------------------------------------------- on their own (no job state with them)


def _change(job_id: str, change: Callable[[list[Doc]], list[Doc] | None]) -> None:
    try:
        transact(_db(), refs(job_id), change)
    except NeedsEveryShard:
        transact(_db(), refs(job_id, every_shard=True), change)


def _job_of(key: str) -> str:
    return key.split("/", 1)[0]  # spend_key's "<job>/a<attempt>"; a job id has no "/"


def reserve_spend(key: str, cost_usd: float, daily_usd: float) -> tuple[bool, float | None]:
    """Reserve ``cost_usd`` of today's budget under ``key``, atomically: ``(reserved, the others' total if counted)``."""
    outcome: dict[str, Reservation] = {}

    def change(docs: list[Doc]) -> list[Doc] | None:
        new, outcome["r"] = reserve(docs, _job_of(key), key, cost_usd, daily_usd)
        return new

    _change(_job_of(key), change)
    return outcome["r"].ok, outcome["r"].others_usd


def record_spend(key: str, cost_usd: float) -> None:
    """Record ``cost_usd`` under ``key`` whatever the budget (a cost that has been spent)."""
    _change(_job_of(key), lambda docs: reserve(docs, _job_of(key), key, cost_usd, None)[0])


def release_spend(key: str) -> None:
    """Give back a reservation whose launch did not happen."""
    _change(_job_of(key), lambda docs: without(docs, key))


def spent_today_usd(day: str | None = None) -> float:
    """Every reservation of the day, all shards."""
    day = day or today()
    snapshots = _db().get_all([_root(day), *(_shard(day, k) for k in range(SHARDS))])
    docs = [s.to_dict() if s.exists else {} for s in snapshots]
    return float(sum(sum(doc.get("launches", {}).values()) for doc in docs))
