"""Cloud Functions entry module.

Cloud Functions (gen2) loads ``main.py`` from the root of the deployed source;
the handlers live in ``functions/handlers.py``. Locally, functions-framework
serves the same targets from this file (``--source main.py --target NAME``).
"""

from functions.handlers import (  # noqa: F401 -- re-exported targets
    intake_job_message,
    intake_staged_manifest,
    launch_fallback,
    on_dead_letter,
    on_output_finalized,
    on_vertex_event,
    submit_primary,
    watchdog_tick,
)
from functions.status_api import status_api  # noqa: F401 -- the HTTP function /status
