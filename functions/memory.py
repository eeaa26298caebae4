"""What the fallback fleet remembers across jobs, in the staging bucket.

* **Capacity** (``system/capacity.json``): stockouts and quota refusals seen
  recently, each with an expiry. The next job skips a zone known to be empty
  instead of paying for the same failed insert (SkyPilot forgets this between
  launches). Stockouts are short-lived, quotas last longer.
* **Spend** (``system/spend/<day>.json``): the estimated cost of every VM
  launched that day (UTC), for the daily budget guard.
* **Learned speeds** (``system/learned-speeds.json``): seconds of render per
  second of video measured on each GPU type, which the selector prefers to the
  catalog's guess once it has enough samples.

Each is one small JSON object changed by compare-and-swap (``state.cas_update``).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from catalog.learned import LearnedSpeeds
from catalog.select import Block
from common import layout
from functions.state import cas_update

def _bucket():
    from functions import clients

    return clients.storage_client().bucket(clients.config().staging_bucket)


def _read_json(name: str) -> dict | None:
    from google.api_core.exceptions import NotFound

    try:
        return json.loads(_bucket().blob(name).download_as_bytes())
    except (NotFound, ValueError):
        return None


# ---------------------------------------------------------------- capacity


def known_blocks(now: float | None = None) -> list[Block]:
    """Blocks that have not expired yet."""
    now = time.time() if now is None else now
    doc = _read_json(layout.CAPACITY_OBJECT) or {}
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

    def change(raw: bytes | None) -> bytes:
        blocks = [b for b in (json.loads(raw).get("blocks", []) if raw else []) if b.get("until", 0) > now]
        same = [b for b in blocks if (b["gpu"], b["location"], b["provisioning"]) == (block.gpu, block.location, block.provisioning)]
        for old in same:
            blocks.remove(old)
        return json.dumps({"blocks": [*blocks, entry]}, indent=1).encode()

    cas_update(_bucket(), layout.CAPACITY_OBJECT, change)


# ---------------------------------------------------------------- spend


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def spent_today_usd() -> float:
    doc = _read_json(layout.spend_object(today())) or {}
    return float(sum(doc.get("launches", {}).values()))


def record_spend(key: str, cost_usd: float) -> None:
    """Add one launch's estimated cost, once per key (job and attempt): redeliveries do not double it."""

    def change(raw: bytes | None) -> bytes | None:
        doc = json.loads(raw) if raw else {"launches": {}}
        if key in doc["launches"]:
            return None
        doc["launches"][key] = round(cost_usd, 6)
        return json.dumps(doc, indent=1).encode()

    cas_update(_bucket(), layout.spend_object(today()), change)


def reserve_spend(key: str, cost_usd: float, daily_usd: float) -> tuple[bool, float]:
    """Reserve ``cost_usd`` of today's budget under ``key`` before a launch, atomically.

    The check and the reservation are one compare-and-swap, so launches racing
    at the edge of the budget cannot all pass it. A key reserved already (a
    redelivery, another option for the same attempt) is replaced, not added.
    Returns ``(reserved, spent by the others)``.
    """
    outcome = {"ok": False, "others": 0.0}

    def change(raw: bytes | None) -> bytes | None:
        doc = json.loads(raw) if raw else {"launches": {}}
        others = sum(v for k, v in doc["launches"].items() if k != key)
        outcome.update(others=others, ok=others + cost_usd <= daily_usd + 1e-9)
        if not outcome["ok"] or doc["launches"].get(key) == round(cost_usd, 6):
            return None
        doc["launches"][key] = round(cost_usd, 6)
        return json.dumps(doc, indent=1).encode()

    cas_update(_bucket(), layout.spend_object(today()), change)
    return bool(outcome["ok"]), float(outcome["others"])


def release_spend(key: str) -> None:
    """Give back a reservation whose launch did not happen."""

    def change(raw: bytes | None) -> bytes | None:
        doc = json.loads(raw) if raw else {"launches": {}}
        if key not in doc["launches"]:
            return None
        del doc["launches"][key]
        return json.dumps(doc, indent=1).encode()

    cas_update(_bucket(), layout.spend_object(today()), change)


# ---------------------------------------------------------------- learned speeds


def learned_speeds() -> LearnedSpeeds:
    doc = _read_json(layout.LEARNED_SPEEDS_OBJECT)
    return LearnedSpeeds.from_json(json.dumps(doc)) if doc else LearnedSpeeds()


def learn_speed(gpu: str, render_s: float, video_s: float) -> None:
    """One more measured render on ``gpu``."""

    def change(raw: bytes | None) -> bytes:
        speeds = LearnedSpeeds.from_json(raw.decode()) if raw else LearnedSpeeds()
        speeds.add(gpu, render_s, video_s)
        return speeds.to_json().encode()

    cas_update(_bucket(), layout.LEARNED_SPEEDS_OBJECT, change)
