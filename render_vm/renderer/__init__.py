"""The renderer: a job folder (``job.json`` + stills + audio) in, an MP4 out.

    from render_vm.renderer import render_job
    report = render_job(Path("jobs/lighthouse-0042"), Path("video.mp4"), workers=2)

How it is fast: each still is decoded, cover-cropped and converted to yuv420p
once per scene; every frame is then a float affine warp of those three planes
(sub-pixel Ken Burns, no shake), a crossfade blend and a pre-rendered caption
overlay, piped raw to the encoder. The timeline is cut into segments at scene
boundaries that render in parallel processes, are kept under a name that hashes
their inputs (a restarted render reuses them), and are joined with stream copy;
the audio is mixed once and muxed at the end.

Modules: ``pipeline`` (``render_job``), ``cli`` (the command line), ``segments``
(the plan and its hashes), ``compose`` (a segment's frames, in a worker
process), ``stills``, ``motion``, ``captions``, ``encoder``, ``progress``, and
``audio`` (narration + music mix).
"""

from render_vm.renderer.pipeline import RenderError, RenderReport, render_job

__all__ = ["RenderError", "RenderReport", "render_job"]
