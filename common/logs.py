"""Structured logging: one JSON object per line, in Cloud Logging's shape.

Cloud Logging parses JSON lines written to stdout/stderr by Cloud Functions,
Cloud Run and VMs (with the Ops Agent): ``severity`` and ``message`` become the
entry's severity and text, ``logging.googleapis.com/labels`` become labels we can
filter on (``labels.job_id="lighthouse-0042"``), and every other key lands in
``jsonPayload``.

    log = get_logger(__name__)
    log.info("fallback VM requested", job_id="x", gpu="l4", cost_usd=0.33)
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timezone
from typing import Any, TextIO

_LABEL_KEYS = ("job_id", "attempt", "component")
_lock = threading.Lock()


class StructuredLogger:
    """Writes one JSON line per call; keyword fields go into the payload.

    ``job_id`` (and ``attempt``) also go into the entry's labels, so one job's
    whole story can be found with a single label filter.
    """

    def __init__(self, component: str, stream: TextIO | None = None) -> None:
        self.component = component
        self._stream = stream

    def log(self, severity: str, message: str, **fields: Any) -> None:
        labels = {"component": self.component}
        for key in _LABEL_KEYS:
            if fields.get(key) is not None:
                labels[key] = str(fields[key])
        entry = {
            "severity": severity,
            "message": message,
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "logging.googleapis.com/labels": labels,
            **fields,
        }
        line = json.dumps(entry, default=str, ensure_ascii=False)
        stream = self._stream or sys.stderr
        with _lock:
            stream.write(line + "\n")
            stream.flush()

    def debug(self, message: str, **fields: Any) -> None:
        self.log("DEBUG", message, **fields)

    def info(self, message: str, **fields: Any) -> None:
        self.log("INFO", message, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.log("WARNING", message, **fields)

    def error(self, message: str, **fields: Any) -> None:
        self.log("ERROR", message, **fields)

    def exception(self, message: str, **fields: Any) -> None:
        """An ERROR with the traceback being handled (Error Reporting reads ``stack_trace``)."""
        import traceback

        self.log("ERROR", message, stack_trace=traceback.format_exc(), **fields)


def get_logger(component: str) -> StructuredLogger:
    """A logger whose lines carry ``component`` as a label."""
    return StructuredLogger(component)
