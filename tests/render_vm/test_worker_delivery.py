"""The worker's create-only delivery: a lost race is told from a refusal, whether Cloud Storage says 412 or 403.

The render account may only create objects in the output bucket
(roles/storage.objectCreator) and read them (objectViewer). Over an existing
object a create-only upload may be answered 412 or 403 (overwriting needs
storage.objects.delete; which Cloud Storage checks first is not documented), so
both must read as "another renderer won" when the video is there, and a 403
over nothing must still fail the render.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.api_core.exceptions import Forbidden, PreconditionFailed

from common import layout
from render_vm.worker import _deliver


class FakeBlob:
    def __init__(self, bucket: "FakeBucket", name: str) -> None:
        self.bucket, self.name, self.metadata = bucket, name, None

    def _create(self) -> None:
        refusal = self.bucket.refusals.get(self.name)
        if refusal is not None:
            raise refusal
        if self.name in self.bucket.objects:
            raise PreconditionFailed("At least one of the pre-conditions you specified did not hold.")
        self.bucket.objects[self.name] = self.metadata

    def upload_from_filename(self, filename: str, content_type: str, if_generation_match: int) -> None:
        assert if_generation_match == 0
        self._create()

    def upload_from_string(self, data: str, content_type: str, if_generation_match: int) -> None:
        assert if_generation_match == 0
        self._create()

    def exists(self) -> bool:
        if self.bucket.cannot_read:
            raise Forbidden("caller does not have storage.objects.get access")
        return self.name in self.bucket.objects


class FakeBucket:
    def __init__(self) -> None:
        self.objects: dict[str, object] = {}
        self.refusals: dict[str, Exception] = {}
        self.cannot_read = False

    def blob(self, name: str) -> FakeBlob:
        return FakeBlob(self, name)


VIDEO, REPORT = layout.video_object("job-1"), layout.render_report_object("job-1")
FORBIDDEN = Forbidden("fast-render-render does not have storage.objects.delete access to the Google Cloud Storage object.")


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "video.mp4"
    path.write_bytes(b"\0" * 16)
    return path


def test_the_first_renderer_delivers_its_video_and_report(video) -> None:
    bucket = FakeBucket()
    assert _deliver(bucket, "job-1", video, {"job_id": "job-1"}) is True
    assert set(bucket.objects) == {VIDEO, REPORT}


def test_a_second_renderer_told_412_has_lost_the_race(video) -> None:
    bucket = FakeBucket()
    bucket.objects[VIDEO] = "the winner's"
    assert _deliver(bucket, "job-1", video, {}) is False
    assert bucket.objects == {VIDEO: "the winner's"}


def test_a_second_renderer_told_403_over_the_winners_video_has_lost_the_race_too(video) -> None:
    bucket = FakeBucket()
    bucket.objects[VIDEO] = "the winner's"
    bucket.refusals[VIDEO] = FORBIDDEN
    assert _deliver(bucket, "job-1", video, {}) is False


def test_a_403_over_nothing_is_a_real_refusal_and_fails_the_render(video) -> None:
    bucket = FakeBucket()
    bucket.refusals[VIDEO] = FORBIDDEN
    with pytest.raises(Forbidden):
        _deliver(bucket, "job-1", video, {})


def test_a_403_that_cannot_be_checked_stands(video) -> None:
    bucket = FakeBucket()
    bucket.objects[VIDEO] = "someone's"
    bucket.refusals[VIDEO] = FORBIDDEN
    bucket.cannot_read = True  # no objectViewer: whether the video is there cannot be told
    with pytest.raises(Forbidden):
        _deliver(bucket, "job-1", video, {})


def test_a_report_already_there_does_not_undo_a_delivered_video(video) -> None:
    bucket = FakeBucket()
    bucket.objects[REPORT] = "left by an earlier try"
    bucket.refusals[REPORT] = FORBIDDEN
    assert _deliver(bucket, "job-1", video, {}) is True
    assert VIDEO in bucket.objects
