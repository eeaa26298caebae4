"""The operators' view: ``avmonitor`` (``cli.py``) and the data it shares with ``/status`` (``views.py``)."""
