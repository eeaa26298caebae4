"""Malformed messages for every topic a function listens on: hand-written edge cases and hypothesis's.

Each message is ``(topic, data, attributes)``. None names a job the campaign
started (``avoid``): a message about a real job is not malformed, it is an order.
The shapes follow what each function reads (functions/handlers.py): job
messages on render-jobs, ``{"job_id"}`` on render-primary / render-fallback,
Cloud Logging entries on vertex-events, GCS notifications on staging-events /
output-events, anything at all on dead-letters.
"""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

Message = tuple[str, bytes, dict[str, str]]
TOPICS = ("render-jobs", "render-primary", "render-fallback", "vertex-events", "output-events", "staging-events", "dead-letters")

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=24),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=10,
)
# Job ids that break the pattern, or follow it and name no job.
_job_ids = (
    st.text(max_size=60)
    | st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,45}\Z")
    | st.sampled_from(["", "-", "A", "../x", "x" * 300, "job id", "ünïcode", "0"])
)
_attr_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
_attributes = st.dictionaries(_attr_text.filter(lambda k: k and not k.startswith("goog")), _attr_text, max_size=4)


def _data(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def _strategy(topic: str) -> st.SearchStrategy[tuple[bytes, dict[str, str]]]:
    garbage = st.tuples(st.binary(max_size=200) | _json.map(_data), _attributes)
    if topic == "render-jobs":
        shaped = st.tuples(
            st.fixed_dictionaries({"manifest": _json}) .map(_data)
            | st.fixed_dictionaries({"job_id": _job_ids, "manifest_object": _json}).map(_data)
            | st.fixed_dictionaries({"manifest": st.fixed_dictionaries({"job_id": _job_ids, "scenes": _json})}).map(_data),
            _attributes,
        )
    elif topic in ("render-primary", "render-fallback"):
        shaped = st.tuples(
            st.fixed_dictionaries({"job_id": _job_ids | _json}).map(_data),
            st.fixed_dictionaries({}, optional={"job_id": _job_ids}),
        )
    elif topic == "vertex-events":
        payload = st.fixed_dictionaries({}, optional={
            "customJob": st.text(max_size=80) | st.just("projects/1/locations/us-central1/customJobs/999"),
            "state": st.sampled_from(["JOB_STATE_FAILED", "JOB_STATE_SUCCEEDED", "JOB_STATE_RUNNING", "nonsense"]) | _json,
            "error": _json,
        })
        shaped = st.tuples(
            st.fixed_dictionaries({"jsonPayload": payload | _json}, optional={"labels": st.dictionaries(_attr_text, _json, max_size=3),
                                                                              "resource": _json}).map(_data),
            _attributes,
        )
    elif topic in ("output-events", "staging-events"):
        prefix = "renders/" if topic == "output-events" else "jobs/"
        tail = "/video.mp4" if topic == "output-events" else "/job.json"
        attributes = st.fixed_dictionaries({}, optional={
            "eventType": st.sampled_from(["OBJECT_FINALIZE", "OBJECT_DELETE", "OBJECT_METADATA_UPDATE", ""]) | _attr_text,
            "objectId": _attr_text | _job_ids.map(lambda j: f"{prefix}{j}{tail}"),
            "bucketId": _attr_text,
            "objectGeneration": _attr_text | st.integers().map(str),
        })
        shaped = st.tuples(st.binary(max_size=80) | _json.map(_data), attributes)
    else:  # dead-letters: whatever a function could not take, and more
        shaped = garbage
    return shaped | garbage


def generated(topic: str, count: int, seed: int) -> list[tuple[bytes, dict[str, str]]]:
    """``count`` hypothesis-generated (data, attributes) for ``topic``, reproducibly."""
    found: list[tuple[bytes, dict[str, str]]] = []

    @settings(max_examples=count, database=None, phases=[Phase.generate], derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(_strategy(topic))
    def collect(message: tuple[bytes, dict[str, str]]) -> None:
        found.append(message)

    collect()
    random.Random(seed).shuffle(found)
    return found[:count]


def hand_written() -> list[Message]:
    """The edge cases a person thinks of first, on every topic."""
    cases: list[Message] = []
    for topic in TOPICS:
        cases += [
            (topic, b"", {}),
            (topic, b"not json", {}),
            (topic, b"[]", {}),
            (topic, b"null", {}),
            (topic, b'{"job_id": null}', {}),
            (topic, b'{"job_id": 7}', {"job_id": ""}),
            (topic, json.dumps({"job_id": "x" * 300}).encode(), {}),
            (topic, b"\xff\xfe\x00garbage", {"eventType": "OBJECT_FINALIZE"}),
        ]
    cases += [
        ("output-events", b"{}", {"eventType": "OBJECT_FINALIZE", "objectId": "renders/no-such-job/video.mp4", "objectGeneration": "1"}),
        ("output-events", b"{}", {"eventType": "OBJECT_FINALIZE", "objectId": "renders//video.mp4"}),
        ("staging-events", b"{}", {"eventType": "OBJECT_FINALIZE", "objectId": "jobs/no-such-job/job.json"}),
        ("staging-events", b"{}", {"eventType": "OBJECT_FINALIZE", "objectId": "jobs/../state/x.json"}),
        ("vertex-events", json.dumps({"jsonPayload": {"customJob": "projects/1/locations/us-central1/customJobs/424242",
                                                       "state": "JOB_STATE_FAILED"}}).encode(), {}),
        ("vertex-events", json.dumps({"jsonPayload": {"customJob": "../../etc/passwd", "state": "JOB_STATE_SUCCEEDED"}}).encode(), {}),
        ("render-fallback", b'{"job_id": "no-such-job"}', {"job_id": "no-such-job"}),
        ("render-primary", b'{"job_id": "no-such-job"}', {"job_id": "no-such-job"}),
        ("render-jobs", json.dumps({"manifest": {"job_id": "bad-manifest-job", "scenes": "none"}}).encode(), {}),
        ("dead-letters", b'{"job_id": "no-such-job"}', {"CloudPubSubDeadLetterSourceSubscription": "x"}),
    ]
    return cases


def malformed_messages(per_topic: int, avoid: set[str], seed: int = 0) -> list[Message]:
    """Hand-written cases plus ``per_topic`` generated ones per topic, none naming a job in ``avoid``."""
    messages = hand_written()
    for i, topic in enumerate(TOPICS):
        messages += [(topic, data, attributes) for data, attributes in generated(topic, per_topic, seed + i)]

    def names_a_real_job(message: Message) -> bool:
        text = message[1].decode("utf-8", "replace") + " ".join(message[2].values())
        return any(job_id in text for job_id in avoid)

    return [message for message in messages if not names_a_real_job(message)]
