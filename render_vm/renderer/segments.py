"""The segment plan: the timeline cut at scene boundaries, each piece named by its inputs.

Segment *k* holds scene *k* from the end of the crossfade into it to the end of
the crossfade out of it, so every crossfade lies inside one segment and the
joins are plain cuts that stream copy can make. Frame *n* shows time
``n / fps``; which scenes it blends, and how, depends only on the timeline, so
any frame range renders the same pixels wherever it is cut.

A segment's name is a SHA-256 of everything that decides its pixels: the
renderer's version, size, rate, frame range, encoder, preset and CRF, and per
visible scene the still's bytes, the caption, the times and the motion. A
restarted render finds finished segments by name and reuses them; change any
input and the name changes with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from common.manifest import Manifest
from common.timeline import SceneSlot, Timeline
from render_vm.renderer.encoder import Encoder
from render_vm.renderer.motion import STILL, KenBurns, kenburns_for

RENDERER_VERSION = "2"  # bump when the pixels a given input makes change


@dataclass(frozen=True)
class SceneSpec:
    """What a worker needs to draw one scene (it crosses a process boundary: keep it plain)."""

    index: int
    image: str  # absolute path
    image_sha256: str
    caption: str | None
    start_s: float
    end_s: float
    fade_in_s: float
    fade_out_s: float
    motion: KenBurns

    @property
    def visible_from_s(self) -> float:
        return self.start_s - self.fade_in_s / 2

    @property
    def visible_until_s(self) -> float:
        return self.end_s + self.fade_out_s / 2


@dataclass(frozen=True)
class Segment:
    number: int
    first_frame: int
    end_frame: int  # exclusive
    scenes: tuple[SceneSpec, ...]  # every scene visible in the range, in order
    width: int
    height: int
    fps: int
    encoder: Encoder

    @property
    def frames(self) -> int:
        return self.end_frame - self.first_frame

    @property
    def key(self) -> str:
        settings = {
            "renderer": RENDERER_VERSION,
            "size": [self.width, self.height],
            "fps": self.fps,
            "frames": [self.first_frame, self.end_frame],
            "encoder": [self.encoder.name, self.encoder.preset, self.encoder.quality],
            "scenes": [
                {**dataclasses.asdict(scene), "image": None, "index": None} for scene in self.scenes
            ],
        }
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]

    @property
    def file_name(self) -> str:
        return f"{self.key}.mp4"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scene_specs(manifest: Manifest, timeline: Timeline, job_dir: Path) -> list[SceneSpec]:
    """One spec per scene; each distinct still is hashed once."""
    hashes: dict[str, str] = {}

    def spec(slot: SceneSlot) -> SceneSpec:
        path = Path(job_dir, slot.image).resolve()
        if slot.image not in hashes:
            hashes[slot.image] = file_sha256(path)
        motion = kenburns_for(manifest.job_id, slot.index, slot.image) if manifest.motion == "kenburns" else STILL
        return SceneSpec(
            index=slot.index,
            image=str(path),
            image_sha256=hashes[slot.image],
            caption=slot.caption,
            start_s=slot.start_s,
            end_s=slot.end_s,
            fade_in_s=slot.fade_in_s,
            fade_out_s=slot.fade_out_s,
            motion=motion,
        )

    return [spec(slot) for slot in timeline.scenes]


def plan_segments(manifest: Manifest, timeline: Timeline, job_dir: Path, encoder: Encoder) -> list[Segment]:
    """Cut the timeline into per-scene frame ranges; empty ranges (tiny scenes at low fps) vanish."""
    specs = scene_specs(manifest, timeline, job_dir)
    fps = timeline.fps
    cuts = [0] + [round((s.start_s + s.fade_in_s / 2) * fps) for s in specs[1:]] + [timeline.total_frames]
    segments = []
    for first, end in zip(cuts, cuts[1:]):
        if end <= first:
            continue
        t0, t1 = first / fps, end / fps
        visible = tuple(s for s in specs if s.visible_from_s < t1 and s.visible_until_s > t0)
        segments.append(
            Segment(
                number=len(segments),
                first_frame=first,
                end_frame=end,
                scenes=visible,
                width=manifest.output.width,
                height=manifest.output.height,
                fps=fps,
                encoder=encoder,
            )
        )
    return segments
