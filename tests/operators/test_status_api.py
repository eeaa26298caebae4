"""``/status`` against the local cloud, over HTTP as a client calls it: real jobs, real tokens, the schema.

Jobs for the module: one rendered on Vertex AI, one failed at intake for its
bad manifest. Every answer is validated against infra/status.schema.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from functions.state import Status
from infra.local.testkit import admin, submit_job, wait_until

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "infra" / "status.schema.json").read_text())
TOKEN = object()  # "the cloud's token"


def valid(kind: str, data: Any) -> Any:
    """``data`` if it is a valid ``kind`` ($defs entry of the schema); else the schema's complaint."""
    schema = {"$schema": SCHEMA["$schema"], "$ref": f"#/$defs/{kind}", "$defs": SCHEMA["$defs"]}
    jsonschema.Draft202012Validator(schema).validate(data)
    return data


class Api:
    """A client of the cloud's ``/status``, with its token unless told otherwise."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def _headers(self, token: Any) -> dict[str, str]:
        token = self.token if token is TOKEN else token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str = "", *, token: Any = TOKEN, **params: Any) -> requests.Response:
        return requests.get(self.url + path, params=params, headers=self._headers(token), timeout=30)

    def post(self, path: str, body: Any = None, *, token: Any = TOKEN, raw: str | None = None) -> requests.Response:
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        return requests.post(self.url + path, data=data, headers=self._headers(token), timeout=60)


def error_of(response: requests.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    return valid("error", response.json())["error"]


@pytest.fixture(scope="module")
def api(cloud) -> Api:
    return Api(cloud.env["STATUS_URL"], cloud.env["AVMONITOR_TOKEN"])


@pytest.fixture(scope="module")
def jobs(cloud, outcomes, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A job rendered on Vertex AI (``good``) and one failed for its bad manifest (``bad``)."""
    from functions import clients
    from render_vm.sample_job import make_sample_job

    stamp = format(time.time_ns() % 10**6, "06d")
    folder = tmp_path_factory.mktemp("status-jobs") / f"status-good-{stamp}"
    make_sample_job(folder, scenes=3, width=320, height=180, seconds_per_scene=1.0, job_id=folder.name)
    good = submit_job(cloud, clients.storage_client().bucket(clients.config().staging_bucket), folder)
    bad = f"status-bad-{stamp}"
    make_sample_job(folder.parent / bad, scenes=2, width=320, height=180, seconds_per_scene=1.0, job_id=bad)
    manifest = {**json.loads((folder.parent / bad / "job.json").read_text()), "scenes": "none"}
    cloud.publish("render-jobs", json.dumps({"manifest": manifest}).encode(), job_id=bad)
    assert outcomes.wait(good, timeout_s=180)["job_id"] == good
    assert outcomes.wait(bad, timeout_s=60)["job_id"] == bad
    assert _state(good) == "succeeded" and _state(bad) == "failed"
    return {"good": good, "bad": bad}


def _state(job_id: str) -> str:
    from functions.jobs import store

    return store().get(job_id).status.value


def _history(job_id: str) -> list[dict]:
    from functions.jobs import store

    return store().get(job_id).history


# ---------------------------------------------------------------- reads


def test_list_shows_each_job_with_a_schema_valid_row(api: Api, jobs: dict[str, str]) -> None:
    response = api.get()
    assert response.status_code == 200, response.text
    page = valid("job_list", response.json())
    rows = {row["job_id"]: row for row in page["jobs"]}
    good, bad = rows[jobs["good"]], rows[jobs["bad"]]
    assert (good["state"], good["method"], good["progress"]) == ("succeeded", "vertex", 1.0)
    assert good["video"].startswith("gs://") and good["video"].endswith(f"/{jobs['good']}/video.mp4")
    assert bad["state"] == "failed" and "scenes" in bad["error"]
    assert response.headers["Cache-Control"] == "no-store"


def test_detail_gives_the_jobs_timeline(api: Api, jobs: dict[str, str]) -> None:
    response = api.get(f"/{jobs['good']}")
    assert response.status_code == 200, response.text
    detail = valid("job_detail", response.json())
    states = [entry["status"] for entry in detail["timeline"]]
    assert states[0] == "received" and states[-1] == "succeeded"
    assert "primary_submitted" in states
    assert detail["result"]["rendered_by"] == "vertex"
    failed = valid("job_detail", api.get(f"/{jobs['bad']}").json())
    assert [entry["status"] for entry in failed["timeline"]] == ["failed"]


def test_pages_of_one_walk_every_job_once(api: Api, jobs: dict[str, str]) -> None:
    everything = [row["job_id"] for row in valid("job_list", api.get(limit=1000).json())["jobs"]]
    walked, cursor = [], None
    for _ in range(len(everything) + 1):
        page = valid("job_list", api.get(limit=1, **({"cursor": cursor} if cursor else {})).json())
        walked += [row["job_id"] for row in page["jobs"]]
        cursor = page["cursor"]
        if cursor is None:
            break
        assert len(page["jobs"]) == 1
    assert cursor is None, "the pages did not end"
    assert walked == everything  # each job once, newest change first
    assert {jobs["good"], jobs["bad"]} <= set(walked)


def test_state_and_since_filters(api: Api, jobs: dict[str, str]) -> None:
    failed = valid("job_list", api.get(state="failed").json())["jobs"]
    assert jobs["bad"] in [row["job_id"] for row in failed] and {row["state"] for row in failed} == {"failed"}
    succeeded = valid("job_list", api.get(state="succeeded", since="1h").json())["jobs"]
    assert jobs["good"] in [row["job_id"] for row in succeeded] and jobs["bad"] not in [r["job_id"] for r in succeeded]
    assert valid("job_list", api.get(state="cancelled", since="1s").json())["jobs"] == []


def test_vms_list_is_schema_valid(api: Api, jobs: dict[str, str]) -> None:
    response = api.get("/vms")
    assert response.status_code == 200, response.text
    valid("vm_list", response.json())


def test_bad_input_is_400_and_an_unknown_job_404_each_one_line(api: Api, jobs: dict[str, str]) -> None:
    assert "not a state" in error_of(api.get(state="finished"), 400)
    assert error_of(api.get(limit=0), 400).startswith("limit:")
    assert error_of(api.get(limit="ten"), 400).startswith("limit:")
    assert error_of(api.get(since="3 days"), 400).startswith("since:")
    assert error_of(api.get(cursor="not-a-cursor"), 400).startswith("cursor:")
    assert "unknown query parameter 'status'" in error_of(api.get(status="failed"), 400)
    assert "not valid" in error_of(api.get("/Not_A_Job"), 400)
    assert "no job" in error_of(api.get("/no-such-job-here"), 404)
    assert error_of(api.get(f"/{jobs['good']}/timeline"), 404)
    assert error_of(api.post(""), 405)
    assert error_of(api.get(f"/{jobs['good']}/cancel"), 405)


# ---------------------------------------------------------------- auth


def test_requests_without_the_token_are_refused(api: Api, jobs: dict[str, str]) -> None:
    jwt_shaped = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    for token in (None, "", "wrong-token", api.token[:-1], jwt_shaped):
        for response in (api.get(token=token), api.get(f"/{jobs['good']}", token=token), api.get("/vms", token=token),
                         api.get("/no-such-job", token=token), api.post(f"/{jobs['bad']}/retry", token=token)):
            error_of(response, 401)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert jobs["good"] not in response.text  # nothing is told before the token is checked
    basic = requests.get(api.url, headers={"Authorization": f"Basic {api.token}"}, timeout=10)
    assert "Bearer" in error_of(basic, 401)
    cookie = requests.get(api.url, cookies={"token": api.token}, timeout=10)  # only the header counts
    error_of(cookie, 401)


def test_a_post_without_the_token_changes_nothing(api: Api, jobs: dict[str, str]) -> None:
    # Retrying the failed job with the token would start it again; without it, it stays failed and untouched.
    before = _history(jobs["bad"])
    error_of(api.post(f"/{jobs['bad']}/retry", token=None), 401)
    error_of(api.post(f"/{jobs['bad']}/retry", {}, token="guess"), 401)
    error_of(api.post(f"/{jobs['good']}/cancel", token=None), 401)
    assert (_state(jobs["bad"]), _history(jobs["bad"])) == ("failed", before)
    assert _state(jobs["good"]) == "succeeded"


def test_the_shared_token_is_compared_whole(api: Api, jobs: dict[str, str]) -> None:
    error_of(api.get(token=api.token + "x"), 401)
    error_of(api.get(token=api.token.upper() if api.token.upper() != api.token else api.token + "A"), 401)
    assert api.get(token=api.token).status_code == 200


# ---------------------------------------------------------------- controls


def test_cancel_of_a_finished_job_is_409_with_one_line(api: Api, jobs: dict[str, str]) -> None:
    before = _history(jobs["good"])
    message = error_of(api.post(f"/{jobs['good']}/cancel"), 409)
    assert "succeeded" in message and "\n" not in message
    assert (_state(jobs["good"]), _history(jobs["good"])) == ("succeeded", before)
    assert "no job" in error_of(api.post("/no-such-job-here/cancel"), 404)


def test_control_bodies_are_checked(api: Api, jobs: dict[str, str]) -> None:
    assert "not JSON" in error_of(api.post(f"/{jobs['bad']}/launch", raw="{gpu: l4}"), 400)
    assert "object" in error_of(api.post(f"/{jobs['bad']}/launch", ["l4"]), 400)
    assert "unknown field 'zone'" in error_of(api.post(f"/{jobs['bad']}/launch", {"zone": "x"}), 400)
    assert "takes no fields" in error_of(api.post(f"/{jobs['bad']}/cancel", {"gpu": "l4"}), 400)
    assert "string" in error_of(api.post(f"/{jobs['bad']}/launch", {"gpu": 4}), 400)
    unknown = error_of(api.post(f"/{jobs['bad']}/launch", {"gpu": "a10"}), 400)  # the choices, CPU-only ones too
    assert "'a10' is not in the catalog" in unknown and "l4" in unknown and "c3-highcpu-8" in unknown, unknown
    assert _state(jobs["bad"]) == "failed"


def test_speeds_list_every_catalog_option_cpu_only_machines_too(api: Api) -> None:
    from catalog.model import load_catalog

    catalog = load_catalog()
    rows = {row["gpu"]: row for row in valid("speeds", api.get("/speeds").json())["speeds"]}
    assert set(catalog.options) <= set(rows)
    for name in catalog.options:  # the dashboard offers these for a launch
        assert rows[name]["in_catalog"] and rows[name]["cpu_only"] == (name in catalog.cpus), rows[name]
    # The bundled catalog prices by the runtime model: a CPU-only machine has an expected speed like any GPU.
    assert all(rows[name]["catalog_s_per_s"] > 0 for name in catalog.cpus)


@pytest.fixture
def held_job(cloud, tmp_path: Path) -> str:
    """A job whose Vertex AI job sits in the queue (a hedge VM may start beside it after 6 s)."""
    from functions import clients
    from render_vm.sample_job import make_sample_job

    endpoint = cloud.env["VERTEX_API_ENDPOINT"]
    job_id = f"status-held-{time.time_ns() % 10**6:06d}"
    admin(endpoint, "faults", {"mode": "queued", "job_id_prefix": "status-held-"})
    try:
        make_sample_job(tmp_path / job_id, scenes=2, width=320, height=180, seconds_per_scene=1.0, job_id=job_id)
        submit_job(cloud, clients.storage_client().bucket(clients.config().staging_bucket), tmp_path / job_id)
        wait_until(lambda: _exists(job_id) and _state(job_id) != "received", timeout_s=30)
        yield job_id
    finally:
        admin(endpoint, "faults", {"mode": "ok"})


def _exists(job_id: str) -> bool:
    from functions.jobs import store

    return store().get(job_id) is not None


def test_cancel_with_the_token_stops_a_running_job_and_says_who(api: Api, held_job: str, outcomes) -> None:
    error_of(api.post(f"/{held_job}/cancel", token=None), 401)
    assert _state(held_job) != "cancelled" and not any(e.get("operator") for e in _history(held_job))

    response = api.post(f"/{held_job}/cancel")
    assert response.status_code == 200, response.text
    answer = valid("control", response.json())
    assert (answer["action"], answer["operator"], answer["job"]["state"]) == ("cancel", "status-token", "cancelled")
    assert _history(held_job)[-1]["operator"] == "status-token"
    assert outcomes.wait(held_job, timeout_s=60)["job_id"] == held_job
    detail = valid("job_detail", api.get(f"/{held_job}").json())
    assert detail["timeline"][-1]["status"] == "cancelled"
    assert "cancelled" in error_of(api.post(f"/{held_job}/cancel"), 409)  # a second click: refused, one line


def test_the_schema_knows_every_state() -> None:
    assert set(SCHEMA["$defs"]["state"]["enum"]) == {status.value for status in Status}


# ---------------------------------------------------------------- who may write (no cloud)


def test_only_listed_operators_write_and_a_reader_gets_403(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions import status_auth
    from functions.status_auth import AuthError, AuthSettings, authenticate, require_writer

    # Google's signature check cannot run offline: stand in for it, and test what is decided from its answer.
    monkeypatch.setattr(status_auth, "_verified_email", lambda token, audiences: {"a.b.c": "Ops@Example.com",
                                                                                  "d.e.f": "reader@example.com"}.get(token))
    monkeypatch.setenv("STATUS_TOKEN", "")
    monkeypatch.setenv("STATUS_AUDIENCE", "https://r-p.cloudfunctions.net/status")
    monkeypatch.setenv("STATUS_OPERATORS", "ops@example.com, lead@example.com")
    settings = AuthSettings.from_env()
    assert settings.operators == {"ops@example.com", "lead@example.com"}
    operator = authenticate("Bearer a.b.c", settings)
    assert (operator.name, operator.can_write) == ("Ops@Example.com", True)
    require_writer(operator)
    reader = authenticate("bearer d.e.f", settings)
    assert not reader.can_write
    with pytest.raises(AuthError) as refused:
        require_writer(reader)
    assert refused.value.status == 403 and "reader@example.com" in str(refused.value)
    for header in (None, "", "Bearer", "Basic a.b.c", "Bearer g.h.i", "Bearer status-token"):
        with pytest.raises(AuthError) as unknown:
            authenticate(header, settings)
        assert unknown.value.status == 401
    # No audience configured: no ID token is even looked at.
    with pytest.raises(AuthError):
        authenticate("Bearer a.b.c", AuthSettings(token="", audiences=(), operators=frozenset({"ops@example.com"})))
