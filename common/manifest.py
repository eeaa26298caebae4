"""The job manifest (``job.json``), version 1: parse and validate.

One validator for every entry point: the intake functions, the worker and the
renderer. Every problem is a :class:`ManifestError` whose text is one line that
names the field, e.g. ``scenes[3].image: file not found: images/004.png``.
Unknown fields are errors, so a typo never passes silently.

The rules are those of ``shared/specs/job-manifest.md``; defaults are filled in,
so code downstream never has to know them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

from common.layout import JOB_ID_PATTERN

MANIFEST_VERSION = 1
MAX_SCENES = 500


class ManifestError(ValueError):
    """A manifest problem: ``str(err)`` is ``"<field>: <problem>"``, one line."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True)
class Output:
    width: int = 1920
    height: int = 1080
    fps: int = 30


@dataclass(frozen=True)
class Transition:
    type: str = "crossfade"  # "crossfade" or "cut"
    duration_s: float = 0.5

    @property
    def crossfade_s(self) -> float:
        """The crossfade length asked for (0 for a cut), before clamping."""
        return self.duration_s if self.type == "crossfade" else 0.0


@dataclass(frozen=True)
class Music:
    src: str
    volume: float = 0.2
    duck: bool = True


@dataclass(frozen=True)
class Scene:
    image: str
    narration: str | None = None
    caption: str | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class Manifest:
    version: int
    job_id: str
    scenes: tuple[Scene, ...]
    title: str | None = None
    output: Output = Output()
    transition: Transition = Transition()
    motion: str = "kenburns"  # "kenburns" or "none"
    music: Music | None = None
    deadline_s: float | None = None

    def asset_paths(self) -> Iterator[tuple[str, str]]:
        """Every file the manifest names, as ``(field, relative path)``."""
        for i, scene in enumerate(self.scenes):
            yield f"scenes[{i}].image", scene.image
            if scene.narration is not None:
                yield f"scenes[{i}].narration", scene.narration
        if self.music is not None:
            yield "music.src", self.music.src

    def known_length_s(self) -> float | None:
        """The video's length if every scene has an explicit duration, else None."""
        if all(s.duration_s is not None for s in self.scenes):
            return sum(s.duration_s for s in self.scenes)  # type: ignore[misc]
        return None


# --------------------------------------------------------------------------
# Field readers: each returns the typed value or raises ManifestError(field).


def _object(value: Any, field: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(field, f"must be an object, got {_kind(value)}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        where = f"{field}.{unknown[0]}" if field != "job.json" else unknown[0]
        raise ManifestError(where, "unknown field (allowed: " + ", ".join(sorted(allowed)) + ")")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _integer(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise ManifestError(field, f"must be an integer, got {_kind(value)} {value!r}")
    number = int(value)
    if not low <= number <= high:
        raise ManifestError(field, f"must be between {low} and {high}, got {number}")
    return number


def _number(value: Any, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ManifestError(field, f"must be a number, got {_kind(value)} {value!r}")
    if not low <= value <= high:
        raise ManifestError(field, f"must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def _text(value: Any, field: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise ManifestError(field, f"must be a string, got {_kind(value)}")
    if len(value) > max_length:
        raise ManifestError(field, f"must be at most {max_length} characters, got {len(value)}")
    return value


def _choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ManifestError(field, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ManifestError(field, f"must be true or false, got {_kind(value)}")
    return value


def _relative_path(value: Any, field: str) -> str:
    """A path inside the job folder: no absolute paths, ``..``, schemes or backslashes."""
    if not isinstance(value, str) or not value:
        raise ManifestError(field, f"must be a non-empty path string, got {_kind(value)}")
    if "\\" in value:
        raise ManifestError(field, f"backslashes are not allowed in paths: {value!r}")
    if "://" in value or value.split("/", 1)[0].endswith(":"):
        raise ManifestError(field, f"must be a path relative to the job folder, not a URL: {value!r}")
    if value.startswith("/"):
        raise ManifestError(field, f"must be relative to the job folder, not absolute: {value!r}")
    if any(c in value for c in "\0\n\r"):
        raise ManifestError(field, f"control characters are not allowed in paths: {value!r}")
    parts = PurePosixPath(value).parts
    if ".." in parts:
        raise ManifestError(field, f"'..' is not allowed in paths: {value!r}")
    return str(PurePosixPath(*parts))


# --------------------------------------------------------------------------


def _output(value: Any) -> Output:
    data = _object(value, "output", {"width", "height", "fps"})
    output = Output(
        width=_integer(data.get("width", 1920), "output.width", 128, 3840),
        height=_integer(data.get("height", 1080), "output.height", 128, 2160),
        fps=_integer(data.get("fps", 30), "output.fps", 1, 60),
    )
    for name in ("width", "height"):
        if getattr(output, name) % 2:
            raise ManifestError(f"output.{name}", f"must be even (H.264 yuv420p), got {getattr(output, name)}")
    return output


def _transition(value: Any) -> Transition:
    data = _object(value, "transition", {"type", "duration_s"})
    return Transition(
        type=_choice(data.get("type", "crossfade"), "transition.type", ("crossfade", "cut")),
        duration_s=_number(data.get("duration_s", 0.5), "transition.duration_s", 0, 2),
    )


def _music(value: Any) -> Music:
    data = _object(value, "music", {"src", "volume", "duck"})
    if "src" not in data:
        raise ManifestError("music.src", "required")
    return Music(
        src=_relative_path(data["src"], "music.src"),
        volume=_number(data.get("volume", 0.2), "music.volume", 0, 1),
        duck=_boolean(data.get("duck", True), "music.duck"),
    )


def _scene(value: Any, index: int) -> Scene:
    field = f"scenes[{index}]"
    data = _object(value, field, {"image", "narration", "caption", "duration_s"})
    if "image" not in data:
        raise ManifestError(f"{field}.image", "required")
    scene = Scene(
        image=_relative_path(data["image"], f"{field}.image"),
        narration=_relative_path(data["narration"], f"{field}.narration") if data.get("narration") is not None else None,
        caption=_text(data["caption"], f"{field}.caption", 500) if data.get("caption") is not None else None,
        duration_s=_number(data["duration_s"], f"{field}.duration_s", 0.2, 600) if data.get("duration_s") is not None else None,
    )
    if scene.duration_s is None and scene.narration is None:
        raise ManifestError(f"{field}.duration_s", "required when the scene has no narration")
    return scene


_TOP_LEVEL = {"version", "job_id", "title", "output", "transition", "motion", "music", "deadline_s", "scenes"}


def parse_manifest(raw: dict[str, Any] | bytes | str) -> Manifest:
    """Validate a manifest (parsed JSON, or its text) and fill in the defaults."""
    if isinstance(raw, (bytes, str)):
        try:
            raw = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ManifestError("job.json", f"not valid JSON: {err}") from None
    data = _object(raw, "job.json", _TOP_LEVEL)
    if "version" not in data:
        raise ManifestError("version", "required")
    if data["version"] != MANIFEST_VERSION or isinstance(data["version"], bool):
        raise ManifestError("version", f"must be {MANIFEST_VERSION}, got {data['version']!r}")
    if "job_id" not in data:
        raise ManifestError("job_id", "required")
    job_id = data["job_id"]
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
        raise ManifestError(
            "job_id", f"must be 1-40 of a-z, 0-9 and '-', starting and ending with a letter or digit, got {job_id!r}"
        )
    scenes = data.get("scenes")
    if scenes is None:
        raise ManifestError("scenes", "required")
    if not isinstance(scenes, list):
        raise ManifestError("scenes", f"must be a list, got {_kind(scenes)}")
    if not 1 <= len(scenes) <= MAX_SCENES:
        raise ManifestError("scenes", f"must have 1 to {MAX_SCENES} scenes, got {len(scenes)}")
    return Manifest(
        version=MANIFEST_VERSION,
        job_id=job_id,
        title=_text(data["title"], "title", 200) if data.get("title") is not None else None,
        output=_output(data.get("output", {})),
        transition=_transition(data.get("transition", {})),
        motion=_choice(data.get("motion", "kenburns"), "motion", ("kenburns", "none")),
        music=_music(data["music"]) if data.get("music") is not None else None,
        deadline_s=_number(data["deadline_s"], "deadline_s", 1, 7 * 24 * 3600) if data.get("deadline_s") is not None else None,
        scenes=tuple(_scene(scene, i) for i, scene in enumerate(scenes)),
    )


def check_assets_exist(manifest: Manifest, exists: Callable[[str], bool]) -> None:
    """Raise for the first named file for which ``exists(relative_path)`` is false."""
    for field, path in manifest.asset_paths():
        if not exists(path):
            raise ManifestError(field, f"file not found: {path}")


def load_manifest(job_dir: Path) -> Manifest:
    """Read ``JOB_DIR/job.json``, validate it, and check that every named file is there."""
    manifest_path = Path(job_dir) / "job.json"
    try:
        text = manifest_path.read_bytes()
    except FileNotFoundError:
        raise ManifestError("job.json", f"file not found in {job_dir}") from None
    manifest = parse_manifest(text)
    check_assets_exist(manifest, lambda rel: (Path(job_dir) / rel).is_file())
    return manifest
