"""The operators' errors, by what went wrong, so ``/status`` answers the right HTTP status.

``OperatorError`` is bad input or an unreachable dependency: one line for the
operator, a non-zero exit in the CLI, 400 from ``/status``. Its subclasses say
more: ``NotFoundError`` (no such job: 404) and ``ConflictError`` (the job's
state does not allow the control, e.g. cancelling a finished job: 409). Each
changes nothing.
"""

from __future__ import annotations


class OperatorError(RuntimeError):
    """Bad input or an unreachable dependency: one line for the operator, a non-zero exit."""


class NotFoundError(OperatorError):
    """The job (or other thing named) does not exist."""


class ConflictError(OperatorError):
    """A control the job's current state refuses; nothing was changed."""
