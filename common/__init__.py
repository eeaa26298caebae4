"""What every part of Fast Render shares.

* ``manifest`` -- the job contract's validator (``job.json``), used by every
  entry point and by the renderer.
* ``timeline`` -- the contract's timeline rules as a pure function.
* ``layout`` -- where a job's objects live in the staging and output buckets.
* ``logs`` -- one JSON object per log line, with Cloud Logging's fields.

Pure Python: nothing here talks to the cloud.
"""
