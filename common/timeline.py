"""The contract's timeline rules, as one pure function.

Given a manifest and the length of each narration clip, say when every scene
starts, how long it lasts and how long the crossfades at its edges are. The
renderer, the audio mixer and the GPU selector all use this, so they can never
disagree about a video's length.

Rules (``shared/specs/job-manifest.md``): a scene lasts ``duration_s`` if given,
else its narration's length plus 0.5 s; scenes follow each other with no gap; a
crossfade of *d* is centred on the boundary and clamped to half of the shorter
neighbouring scene, so it never moves a start or the total.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from common.manifest import Manifest, ManifestError

NARRATION_TAIL_S = 0.5


@dataclass(frozen=True)
class SceneSlot:
    index: int
    start_s: float
    duration_s: float
    image: str
    caption: str | None
    narration: str | None
    narration_s: float  # how long the narration plays: cut at the scene's end
    fade_in_s: float  # crossfade centred on the boundary before this scene (0 for the first)
    fade_out_s: float  # crossfade centred on the boundary after this scene (0 for the last)

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class Timeline:
    scenes: tuple[SceneSlot, ...]
    total_s: float
    fps: int

    @property
    def total_frames(self) -> int:
        return round(self.total_s * self.fps)


def scene_durations(manifest: Manifest, narration_s: Mapping[str, float]) -> list[float]:
    """Each scene's length: explicit, or its narration's plus the tail."""
    durations = []
    for i, scene in enumerate(manifest.scenes):
        if scene.duration_s is not None:
            durations.append(scene.duration_s)
        elif scene.narration is not None:
            if scene.narration not in narration_s:
                raise ManifestError(f"scenes[{i}].narration", f"length unknown: {scene.narration}")
            durations.append(narration_s[scene.narration] + NARRATION_TAIL_S)
        else:  # parse_manifest already refuses this; kept for callers building Manifests by hand
            raise ManifestError(f"scenes[{i}].duration_s", "required when the scene has no narration")
    return durations


def build_timeline(manifest: Manifest, narration_s: Mapping[str, float]) -> Timeline:
    """Place every scene on the timeline. ``narration_s`` maps narration path -> seconds."""
    durations = scene_durations(manifest, narration_s)
    wanted = manifest.transition.crossfade_s
    boundaries = [min(wanted, a / 2, b / 2) for a, b in zip(durations, durations[1:])]
    slots = []
    start = 0.0
    for i, (scene, duration) in enumerate(zip(manifest.scenes, durations)):
        narration_len = min(narration_s.get(scene.narration, 0.0), duration) if scene.narration else 0.0
        slots.append(
            SceneSlot(
                index=i,
                start_s=start,
                duration_s=duration,
                image=scene.image,
                caption=scene.caption,
                narration=scene.narration,
                narration_s=narration_len,
                fade_in_s=boundaries[i - 1] if i > 0 else 0.0,
                fade_out_s=boundaries[i] if i < len(boundaries) else 0.0,
            )
        )
        start += duration
    return Timeline(scenes=tuple(slots), total_s=start, fps=manifest.output.fps)
