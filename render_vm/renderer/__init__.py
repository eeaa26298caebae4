"""The renderer: a job folder (``job.json`` + stills + audio) in, an MP4 out.

    from render_vm.renderer import render_job
    report = render_job(Path("jobs/lighthouse-0042"), Path("video.mp4"), workers=2)

How it is fast: each still is decoded, cover-cropped and converted to yuv420p
about once per scene; every frame is then those three planes zoomed about the
Ken Burns path's fixed point (``cv2.resize`` anchored there: sub-pixel exact,
no shake, three times cheaper than a general warp), a crossfade blend and a
pre-rendered caption overlay, piped raw to the encoder. The timeline is cut into
segments at scene boundaries that render in parallel processes (a worker goes on
to the segment its last crossfade led into, whose still it already holds), are
kept under a name that hashes their inputs (a restarted render reuses them), and
are joined with stream copy; the audio is mixed once and muxed at the end.

Modules: ``pipeline`` (``render_job``), ``cli`` (the command line), ``segments``
(the plan and its hashes), ``compose`` (a segment's frames, in a worker
process), ``stills``, ``motion``, ``zoom`` (the anchored resize), ``captions``,
``encoder``, ``progress``, and ``audio`` (narration + music mix).
"""

from render_vm.renderer.pipeline import RenderError, RenderReport, render_job

__all__ = ["RenderError", "RenderReport", "render_job"]
