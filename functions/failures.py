"""What a failed primary render means, and what to do about it: one table.

Vertex AI reports a failed custom job as ``error`` (a ``google.rpc.Status``:
a numeric code and a message). Each rule below matches a code and/or a message
pattern and names the action. The first matching rule wins; order matters.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Action(str, enum.Enum):
    FALLBACK = "fallback"  # a VM of our own can render it: launch one
    RETRY_PRIMARY = "retry-primary"  # a passing fault of Vertex's: submit again (bounded), then fall back
    FAIL = "fail"  # nobody can: the job fails with the reason


# google.rpc.Code values Vertex uses.
CANCELLED, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, PERMISSION_DENIED = 1, 3, 4, 5, 7
RESOURCE_EXHAUSTED, FAILED_PRECONDITION, INTERNAL, UNAVAILABLE, UNAUTHENTICATED = 8, 9, 13, 14, 16


@dataclass(frozen=True)
class Rule:
    kind: str  # short name shown in the job's history: quota, timeout, ...
    action: Action
    codes: frozenset[int] = frozenset()  # empty: any code
    pattern: re.Pattern[str] | None = None  # None: any message

    def matches(self, code: int, message: str) -> bool:
        return (not self.codes or code in self.codes) and (self.pattern is None or bool(self.pattern.search(message)))


def _p(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


# Vertex AI reports *every* non-zero exit of a replica as code 3 with this
# message (vertex-ai-samples issue 1898: "non-zero status of 128. Termination
# reason: StartError"; PR 1504: status 1), so code 3 alone says nothing about
# the input: the exit status decides.
REPLICA_EXIT = re.compile(r"exited with a non-zero status of (\d+)\.?\s*Termination reason: (\w+)", re.IGNORECASE)
INVALID_JOB_EXIT = 2  # the renderer's own "invalid job" exit (render_vm/renderer/cli.py)


def replica_exit(message: str) -> tuple[int, str] | None:
    """``(exit status, termination reason)`` from Vertex's replica-exit message, if it is one."""
    match = REPLICA_EXIT.search(message or "")
    return (int(match.group(1)), match.group(2)) if match else None


# The renderer exits 2 on a bad job. A VM would fail the same way, so the job
# fails, with the renderer's own line (from its heartbeat: Vertex's message
# does not carry the container's output). See vertex_events._primary_failed.
INVALID = Rule("invalid", Action.FAIL, frozenset({INVALID_ARGUMENT}), _p(r"non-zero status of 2\.?\s*Termination reason: Error\b"))
# Any other exit is a crash of the container (out of memory: 137, a CUDA error,
# a start error: 128): a VM of our own can still render the job.
CRASH = Rule("crash", Action.FALLBACK, frozenset({INVALID_ARGUMENT}), REPLICA_EXIT)

RULES: tuple[Rule, ...] = (
    INVALID,
    CRASH,
    Rule("quota", Action.FALLBACK, frozenset({RESOURCE_EXHAUSTED})),
    Rule("quota", Action.FALLBACK, pattern=_p(r"quota|resources? (are|is) insufficient|insufficient resources|stockout|no .*capacity")),
    Rule("timeout", Action.FALLBACK, frozenset({DEADLINE_EXCEEDED})),
    Rule("timeout", Action.FALLBACK, pattern=_p(r"time(d)? ?out|exceeded .*(time|duration|deadline)|maximum (allowed )?(run)?time")),
    # Our own mistakes in the request: a VM launched by the same code would not fix them.
    Rule("configuration", Action.FAIL, frozenset({PERMISSION_DENIED, UNAUTHENTICATED, NOT_FOUND, FAILED_PRECONDITION})),
    Rule("internal", Action.RETRY_PRIMARY, frozenset({INTERNAL, UNAVAILABLE})),
    Rule("cancelled", Action.FALLBACK, frozenset({CANCELLED})),
)
DEFAULT = Rule("unknown", Action.FALLBACK)


def classify(code: int, message: str) -> Rule:
    """The rule for a Vertex error; unknown failures fall back (a video beats a failure)."""
    for rule in RULES:
        if rule.matches(code, message or ""):
            return rule
    return DEFAULT
