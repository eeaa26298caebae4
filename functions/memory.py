"""What the fallback fleet remembers across jobs, in Firestore.

* **Capacity** (``fleet/capacity``): stockouts and quota refusals seen
  recently, each with an expiry. The next job skips a zone known to be empty
  instead of paying for the same failed insert (SkyPilot forgets this between
  launches). Stockouts are short-lived, quotas last longer.
* **Spend** (``spend/<day>``): the estimated cost of every VM launched that
  day (UTC), for the daily budget guard; a launch's reservation is written in
  the same transaction as its job's state (``fallback.py``).
* **Learned speeds** (``fleet/learned-speeds``): seconds of render per
  second of video measured on each GPU type, which the selector prefers to the
  catalog's guess once it has enough samples.

Each is one small document changed in a transaction (``store.transact``).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from catalog.learned import LearnedSpeeds
from catalog.select import Block
from functions.store import transact

FLEET, SPEND = "fleet", "spend"


def _db():
    from functions import clients

    return clients.firestore_client()


def _ref(collection: str, name: str):
    return _db().collection(collection).document(name)


def _read(collection: str, name: str) -> dict | None:
    snapshot = _ref(collection, name).get()
    return snapshot.to_dict() if snapshot.exists else None


def _change(collection: str, name: str, change) -> tuple[dict | None, bool]:
    """One document changed in a transaction: ``change(doc or None)`` returns the new doc, or None."""
    docs, changed = transact(_db(), [_ref(collection, name)], lambda docs: [change(docs[0])])
    return docs[0], changed


# ---------------------------------------------------------------- capacity


def capacity_ref():
    """The capacity document (for a caller that reads it with others in one round trip)."""
    return _ref(FLEET, "capacity")


def known_blocks(now: float | None = None) -> list[Block]:
    """Blocks that have not expired yet."""
    return blocks_in(_read(FLEET, "capacity"), now)


def blocks_in(doc: dict | None, now: float | None = None) -> list[Block]:
    """The blocks of a capacity document (as read) that have not expired yet."""
    now = time.time() if now is None else now
    doc = doc or {}
    return [
        Block(gpu=b.get("gpu"), location=b.get("location"), provisioning=b.get("provisioning"), reason=b.get("reason", ""))
        for b in doc.get("blocks", [])
        if b.get("until", 0) > now
    ]


def remember_block(block: Block, kind: str) -> None:
    """Record a stockout or quota refusal for the next jobs (expired entries are dropped)."""
    from functions import clients

    cfg = clients.config()
    ttl = cfg.stockout_ttl_s if kind == "stockout" else cfg.quota_ttl_s
    now = time.time()
    entry = {"gpu": block.gpu, "location": block.location, "provisioning": block.provisioning, "reason": block.reason,
             "kind": kind, "seen": now, "until": now + ttl}

    def change(doc: dict | None) -> dict:
        blocks = [b for b in (doc or {}).get("blocks", []) if b.get("until", 0) > now]
        same = [b for b in blocks if (b["gpu"], b["location"], b["provisioning"]) == (block.gpu, block.location, block.provisioning)]
        for old in same:
            blocks.remove(old)
        return {"blocks": [*blocks, entry]}

    _change(FLEET, "capacity", change)


# ---------------------------------------------------------------- spend


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def spend_key(job_id: str, attempt: int) -> str:
    """The key a VM attempt's reservation is kept under in the day's spend."""
    return f"{job_id}/a{attempt}"


def spend_ref(day: str | None = None):
    """The day's spend document (today's by default): ``launches`` maps job/attempt -> estimated USD."""
    return _ref(SPEND, day or today())


def spent_today_usd() -> float:
    doc = _read(SPEND, today()) or {}
    return float(sum(doc.get("launches", {}).values()))


def with_reservation(doc: dict | None, key: str, cost_usd: float, daily_usd: float) -> tuple[dict | None, bool, float]:
    """``doc`` (a day's spend) with ``cost_usd`` reserved under ``key``, if the day's budget allows it.

    A plain function, for a transaction that also writes the job's state
    (``fallback.py``). A key reserved already (a redelivery, another option
    for the same attempt) is replaced, not added. Returns ``(the new document,
    or None if nothing changes; reserved; spent by the others)``.
    """
    launches = dict((doc or {}).get("launches", {}))
    others = float(sum(v for k, v in launches.items() if k != key))
    ok = others + cost_usd <= daily_usd + 1e-9
    if not ok or launches.get(key) == round(cost_usd, 6):
        return None, ok, others
    launches[key] = round(cost_usd, 6)
    return {"launches": launches}, ok, others


def without_reservation(doc: dict | None, key: str) -> dict | None:
    """``doc`` with ``key``'s reservation given back (None if it holds none)."""
    launches = dict((doc or {}).get("launches", {}))
    if launches.pop(key, None) is None:
        return None
    return {"launches": launches}


def record_spend(key: str, cost_usd: float) -> None:
    """Add one launch's estimated cost, once per key (job and attempt): redeliveries do not double it."""
    _change(SPEND, today(), lambda doc: None if key in (doc or {}).get("launches", {})
            else with_reservation(doc, key, cost_usd, float("inf"))[0])


def reserve_spend(key: str, cost_usd: float, daily_usd: float) -> tuple[bool, float]:
    """Reserve ``cost_usd`` of today's budget under ``key``, atomically; returns ``(reserved, spent by the others)``.

    The check and the reservation are one transaction, so launches racing at
    the edge of the budget cannot all pass it.
    """
    outcome = {"ok": False, "others": 0.0}

    def change(doc: dict | None) -> dict | None:
        new, outcome["ok"], outcome["others"] = with_reservation(doc, key, cost_usd, daily_usd)
        return new

    _change(SPEND, today(), change)
    return bool(outcome["ok"]), float(outcome["others"])


def release_spend(key: str) -> None:
    """Give back a reservation whose launch did not happen."""
    _change(SPEND, today(), lambda doc: without_reservation(doc, key))


# ---------------------------------------------------------------- learned speeds


def learned_ref():
    """The learned speeds' document (for a caller that reads it with others in one round trip)."""
    return _ref(FLEET, "learned-speeds")


def learned_speeds() -> LearnedSpeeds:
    return learned_from(_read(FLEET, "learned-speeds"))


def learned_from(doc: dict | None) -> LearnedSpeeds:
    """The learned speeds of their document, as read (None: nothing learned yet)."""
    return LearnedSpeeds.from_json(json.dumps(doc)) if doc else LearnedSpeeds()


def learn_speed(gpu: str, render_s: float, video_s: float) -> None:
    """One more measured render on ``gpu``."""

    def change(doc: dict | None) -> dict:
        speeds = LearnedSpeeds.from_json(json.dumps(doc)) if doc else LearnedSpeeds()
        speeds.add(gpu, render_s, video_s)
        return json.loads(speeds.to_json())

    _change(FLEET, "learned-speeds", change)
