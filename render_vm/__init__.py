"""Fast Render's video side: the renderer and the worker that runs it in the cloud.

``python -m render_vm render JOB_DIR -o OUT.mp4`` renders a job folder (see
``render_vm.renderer``); ``python -m render_vm worker`` is the VM / Vertex AI
worker. This package is imported by Cloud Functions, so it imports nothing heavy.
"""
