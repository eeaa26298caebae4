"""What the fallback fleet remembers across jobs, in Firestore.

* **Capacity** (``fleet/capacity``): stockouts and quota refusals seen
  recently, each with an expiry. The next job skips a zone known to be empty
  instead of paying for the same failed insert (SkyPilot forgets this between
  launches). Stockouts are short-lived, quotas last longer.
* **Spend**: the day's budget guard has a module of its own, ``budget.py``.
* **Learned speeds** (``fleet/learned-speeds``): seconds of render per
  second of video measured on each GPU type, which the selector prefers to the
  catalog's guess once it has enough samples.

Each is one small document changed in a transaction (``store.transact``).
"""

from __future__ import annotations

import json
import time

from catalog.learned import LearnedSpeeds
from catalog.select import Block
from functions.store import transact

FLEET = "fleet"


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
