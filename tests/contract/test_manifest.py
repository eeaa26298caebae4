"""The job contract's validator: defaults, and one clear line naming the field for every bad input."""

from __future__ import annotations

import copy
import json

import pytest

from common.manifest import Manifest, ManifestError, load_manifest, parse_manifest

VALID = {
    "version": 1,
    "job_id": "lighthouse-0042",
    "title": "The Lighthouse Keeper",
    "output": {"width": 1920, "height": 1080, "fps": 30},
    "transition": {"type": "crossfade", "duration_s": 0.5},
    "motion": "kenburns",
    "music": {"src": "audio/music.mp3", "volume": 0.2, "duck": True},
    "deadline_s": 3600,
    "scenes": [
        {"image": "images/001.png", "narration": "audio/001.mp3", "caption": "Once, on a rock in the sea..."},
        {"image": "images/002.jpg", "duration_s": 3.0, "caption": "Silence."},
    ],
}


def with_change(path: str, value: object) -> dict:
    """A copy of VALID with one field set (value ...) or removed (value is DELETE)."""
    data = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


DELETE = object()


def test_the_spec_example_is_valid_and_typed() -> None:
    manifest = parse_manifest(VALID)
    assert isinstance(manifest, Manifest)
    assert manifest.scenes[0].narration == "audio/001.mp3"
    assert manifest.music is not None and manifest.music.duck is True
    assert manifest.deadline_s == 3600


def test_defaults_are_filled_in() -> None:
    manifest = parse_manifest({"version": 1, "job_id": "a", "scenes": [{"image": "i.png", "duration_s": 1}]})
    assert (manifest.output.width, manifest.output.height, manifest.output.fps) == (1920, 1080, 30)
    assert (manifest.transition.type, manifest.transition.duration_s) == ("crossfade", 0.5)
    assert manifest.motion == "kenburns" and manifest.music is None and manifest.title is None


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("version", 2, "version"),
        ("version", DELETE, "version"),
        ("job_id", "Upper", "job_id"),
        ("job_id", "-starts-with-dash", "job_id"),
        ("job_id", "a" * 41, "job_id"),
        ("job_id", "has/slash", "job_id"),
        ("title", "x" * 201, "title"),
        ("output.width", 1921, "output.width"),
        ("output.width", 4000, "output.width"),
        ("output.height", 100, "output.height"),
        ("output.fps", 0, "output.fps"),
        ("output.fps", 29.97, "output.fps"),
        ("output.fps", True, "output.fps"),
        ("transition.type", "wipe", "transition.type"),
        ("transition.duration_s", 2.5, "transition.duration_s"),
        ("motion", "zoom", "motion"),
        ("music.volume", 1.5, "music.volume"),
        ("music.duck", "yes", "music.duck"),
        ("music.src", "http://example.com/a.mp3", "music.src"),
        ("deadline_s", -1, "deadline_s"),
        ("scenes", [], "scenes"),
        ("scenes", "x", "scenes"),
        ("scenes.1.duration_s", 0.1, "scenes[1].duration_s"),
        ("scenes.1.duration_s", 601, "scenes[1].duration_s"),
        ("scenes.1.duration_s", DELETE, "scenes[1].duration_s"),
        ("scenes.0.image", DELETE, "scenes[0].image"),
        ("scenes.0.image", "/etc/passwd", "scenes[0].image"),
        ("scenes.0.image", "../secret.png", "scenes[0].image"),
        ("scenes.0.image", "images\\001.png", "scenes[0].image"),
        ("scenes.0.image", "gs://bucket/x.png", "scenes[0].image"),
        ("scenes.0.caption", "x" * 501, "scenes[0].caption"),
        ("scenes.0.narration", 5, "scenes[0].narration"),
        ("scenes.0.captoin", "typo", "scenes[0].captoin"),
        ("colour", "red", "colour"),
        ("output.depth", 8, "output.depth"),
    ],
)
def test_each_bad_field_is_named_in_one_line(path: str, value: object, field: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(with_change(path, value))
    assert caught.value.field == field
    message = str(caught.value)
    assert message.startswith(f"{field}: ") and "\n" not in message


def test_too_many_scenes() -> None:
    data = with_change("scenes", [{"image": "i.png", "duration_s": 1}] * 501)
    with pytest.raises(ManifestError, match=r"^scenes: must have 1 to 500 scenes, got 501$"):
        parse_manifest(data)


def test_not_json_is_a_clear_error() -> None:
    with pytest.raises(ManifestError, match=r"^job\.json: not valid JSON"):
        parse_manifest(b"{not json")


def test_load_manifest_names_the_missing_file(tmp_path) -> None:
    (tmp_path / "job.json").write_text(json.dumps(VALID))
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "001.png").write_bytes(b"x")
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path)
    assert str(caught.value) == "scenes[0].narration: file not found: audio/001.mp3"
