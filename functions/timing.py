"""Where one delivery's time goes: one JSON line per handler call, in Cloud Logging's shape.

Each event handler (``handlers.py``) runs inside :func:`delivery`, which logs,
when it returns or raises, one ``delivery timing`` line::

    {"message": "delivery timing", "function": "launch_fallback", "job_id": "x",
     "published_at": 1764646272.101, "received_at": 1764646272.130, "elapsed_ms": 41.2, "cpu_ms": 9.8,
     "parts_ms": {"import": 0.0, "read": 2.1, "selection": 3.0, "transaction": 6.4, "insert": 11.8, ...},
     "marks": {"insert_returned": 1764646272.150}, "path_parts_ms": {...}}

* ``published_at``: Pub/Sub's publish time of the message (the CloudEvent's),
  ``received_at``: when the handler began; the difference is the delivery's,
  not the function's.
* ``parts_ms``: the time spent in each named step (:func:`span`), summed over
  the call; ``elapsed_ms`` the whole call (what the push waits for); ``cpu_ms``
  this thread's CPU time (wall well above it means waiting: on I/O or on a busy machine).
* ``marks``: wall-clock times of named moments (:func:`mark`), e.g. the
  fallback VM's insert answered; ``path_parts_ms`` the parts as they stood at
  the first mark, i.e. the steps on the way to it.

Only measurement: nothing here changes what a handler does, and outside a
delivery (tests, scripts) :func:`span` and :func:`mark` do nothing.
Timestamps are ``time.time()`` so that they compare with other processes'.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from common.logs import get_logger

log = get_logger("timing")


class _Delivery:
    def __init__(self, function: str, published_at: float | None) -> None:
        self.function, self.published_at = function, published_at
        self.received_at = time.time()
        self._wall0, self._cpu0 = time.perf_counter(), time.thread_time()
        self.parts: dict[str, float] = {}
        self.marks: dict[str, float] = {}
        self.path_parts: dict[str, float] | None = None
        self.fields: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def fields_out(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "function": self.function,
            "published_at": self.published_at,
            "received_at": round(self.received_at, 6),
            "elapsed_ms": round((time.perf_counter() - self._wall0) * 1000, 2),
            "cpu_ms": round((time.thread_time() - self._cpu0) * 1000, 2),
            "parts_ms": {k: round(v * 1000, 2) for k, v in self.parts.items()},
            "marks": {k: round(v, 6) for k, v in self.marks.items()},
        }
        if self.counts:
            out["counts"] = dict(self.counts)
        if self.path_parts is not None:
            out["path_parts_ms"] = {k: round(v * 1000, 2) for k, v in self.path_parts.items()}
        return {**out, **self.fields}


_current: contextvars.ContextVar[_Delivery | None] = contextvars.ContextVar("delivery", default=None)


def publish_time(text: str | None) -> float | None:
    """A CloudEvent's / Pub/Sub's RFC 3339 publish time as epoch seconds (None if absent or unreadable)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


@contextlib.contextmanager
def delivery(function: str, published_at: float | None) -> Iterator[None]:
    """Time one handler call and log its line at the end (also when it raises: Pub/Sub retries those)."""
    record = _Delivery(function, published_at)
    token = _current.set(record)
    outcome = "ok"
    try:
        yield
    except BaseException:
        outcome = "raised"
        raise
    finally:
        _current.reset(token)
        log.info("delivery timing", outcome=outcome, **record.fields_out())


@contextlib.contextmanager
def span(name: str) -> Iterator[None]:
    """Add the time spent in the block to the delivery's part ``name``."""
    record = _current.get()
    if record is None:
        yield
        return
    began = time.perf_counter()
    try:
        yield
    finally:
        record.parts[name] = record.parts.get(name, 0.0) + time.perf_counter() - began


def add(name: str, seconds: float) -> None:
    """Add ``seconds`` measured elsewhere to the part ``name``."""
    record = _current.get()
    if record is not None:
        record.parts[name] = record.parts.get(name, 0.0) + seconds


def count(name: str) -> None:
    """One more of ``name`` (say, a transaction's retry), in the line's ``counts``."""
    record = _current.get()
    if record is not None:
        record.counts[name] = record.counts.get(name, 0) + 1


def mark(name: str) -> None:
    """Record the moment ``name`` (the first time only); the first mark also freezes the path's parts."""
    record = _current.get()
    if record is None or name in record.marks:
        return
    record.marks[name] = time.time()
    if record.path_parts is None:
        record.path_parts = dict(record.parts)


def note(**fields: Any) -> None:
    """Extra fields for the delivery's line (say, the job id)."""
    record = _current.get()
    if record is not None:
        record.fields.update(fields)
