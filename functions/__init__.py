"""Fast Render's Cloud Functions (gen2) and the plain modules behind them.

``handlers.py`` holds the thin CloudEvent entry points; each unpacks its event
and calls one typed function of ``intake``, ``primary``, ``vertex_events``,
``fallback``, ``completion`` or ``watchdog``. Every step reads and writes the
job's state through ``state.py``, whose transitions are idempotent, so
duplicate and reordered deliveries are harmless.
"""
