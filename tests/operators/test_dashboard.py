"""The dashboard (``GET /status/dashboard/``) in headless Chromium, against the local cloud with real jobs.

Debian's ``/usr/bin/chromium`` (``infra/local/setup.sh`` installs it), driven by
Playwright for Python: no browser is downloaded. Each test opens a new tab (its
own sessionStorage, so its own token) and looks at what an operator sees.
Screenshots of each page go to a temporary folder, or to the folder named by
``DASHBOARD_SCREENSHOTS`` (``DASHBOARD_SCREENSHOTS=docs/screenshots`` refreshes
the committed set).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from infra.local.testkit import admin, submit_job, wait_until

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements.txt)")
expect = playwright_api.expect

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LONG_MS = 120_000  # a job's whole life on the local cloud, at most

if not CHROMIUM.exists():  # pragma: no cover
    pytest.skip(f"{CHROMIUM} is missing: bash infra/local/setup.sh installs Debian's chromium", allow_module_level=True)


# ---------------------------------------------------------------- the browser and the pages


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """Chromium with a fresh profile (``--user-data-dir``), for the module."""
    with playwright_api.sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), args=FLAGS,
            headless=True, viewport={"width": 1400, "height": 900})
        yield context
        context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("DASHBOARD_SCREENSHOTS")
    folder = (REPO / where) if where else tmp_path_factory.mktemp("dashboard-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Tab:
    """One browser tab on the dashboard; JavaScript errors in it fail the test."""

    def __init__(self, browser, cloud, fragment: str, token: str | None) -> None:
        self.page, self.errors = browser.new_page(), []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.base = f"{cloud.env['STATUS_URL']}/dashboard/"
        self.page.goto(self.base + f"#{fragment}" + (f"&token={token}" if token else ""))

    def shot(self, folder: Path, name: str) -> None:
        self.page.evaluate("window.scrollTo(0, 0)")  # else the sticky header is drawn where the page was scrolled to
        self.page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.page.close()
        assert not self.errors, self.errors


@pytest.fixture
def tab(browser, cloud):
    opened = []

    def open_tab(fragment: str, token: str | None = None) -> Tab:
        opened.append(Tab(browser, cloud, fragment, token))
        return opened[-1]

    yield open_tab
    for each in opened:
        each.close()


# ---------------------------------------------------------------- jobs


@pytest.fixture
def vertex(cloud):
    endpoint = cloud.env["VERTEX_API_ENDPOINT"]
    yield lambda **faults: admin(endpoint, "faults", faults)
    admin(endpoint, "faults", {"mode": "ok"})


def _job_dir(parent: Path, prefix: str, scenes: int = 3) -> Path:
    from render_vm.sample_job import make_sample_job

    job_id = f"{prefix}-{time.time_ns() % 10**6:06d}"
    make_sample_job(parent / job_id, scenes=scenes, width=320, height=180, seconds_per_scene=1.0, job_id=job_id)
    return parent / job_id


def _submit(cloud, job_dir: Path) -> str:
    from functions import clients

    return submit_job(cloud, clients.storage_client().bucket(clients.config().staging_bucket), job_dir)


def _state(job_id: str):
    from functions.jobs import store

    return store().get(job_id)


@pytest.fixture(scope="module")
def vm_job(cloud, outcomes, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A job whose primary failed for quota and that a VM rendered."""
    endpoint = cloud.env["VERTEX_API_ENDPOINT"]
    admin(endpoint, "faults", {"mode": "quota", "job_id_prefix": "dash-vm-"})
    try:
        job_id = _submit(cloud, _job_dir(tmp_path_factory.mktemp("dash"), "dash-vm"))
        outcome = outcomes.wait(job_id)
    finally:
        admin(endpoint, "faults", {"mode": "ok"})
    assert outcome["status"] == "succeeded" and outcome.get("rendered_by") == "vm", outcome
    wait_until(lambda: _state(job_id).fallback.deleted_at is not None, timeout_s=60, interval_s=0.5)
    return job_id


@pytest.fixture(scope="module")
def failed_job(cloud, outcomes, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A job failed at intake for its bad manifest."""
    folder = _job_dir(tmp_path_factory.mktemp("dash-bad"), "dash-bad", scenes=2)
    manifest = {**json.loads((folder / "job.json").read_text()), "scenes": "none"}
    cloud.publish("render-jobs", json.dumps({"manifest": manifest}).encode(), job_id=folder.name)
    assert outcomes.wait(folder.name, timeout_s=60)["status"] == "failed"
    return folder.name


# ---------------------------------------------------------------- the tests


def test_the_jobs_page_lists_the_jobs_and_follows_them_live(cloud, tab, vm_job, failed_job, shots, tmp_path) -> None:
    jobs = tab("/jobs", cloud.env["AVMONITOR_TOKEN"])
    page = jobs.page
    expect(page.locator(f"tr[data-job={vm_job}]")).to_contain_text("succeeded")
    expect(page.locator(f"tr[data-job={failed_job}]")).to_contain_text("failed")
    assert "token=" not in page.url  # the token left the address bar for the tab's sessionStorage
    expect(page.locator("#who")).to_have_text("status-token · operator")
    expect(page.locator("#age")).to_have_text(re.compile(r"^updated \d+ s ago$"))

    # A job submitted now shows up, and reaches its video, without a reload.
    page.evaluate("window.notReloaded = true")
    new = _submit(cloud, _job_dir(tmp_path, "dash-live"))
    expect(page.locator(f"tr[data-job={new}]")).to_be_visible(timeout=30_000)
    expect(page.locator(f"tr[data-job={new}]")).to_contain_text("succeeded", timeout=LONG_MS)
    assert page.evaluate("window.notReloaded") is True

    page.select_option("select[name=method]", "vm")
    expect(page.locator(f"tr[data-job={new}]")).to_have_count(0)  # rendered on Vertex AI
    expect(page.locator(f"tr[data-job={vm_job}]")).to_be_visible()
    page.select_option("select[name=method]", "")
    page.select_option("select[name=state]", "failed")
    expect(page.locator(f"tr[data-job={vm_job}]")).to_have_count(0)
    expect(page.locator(f"tr[data-job={failed_job}]")).to_be_visible()
    page.select_option("select[name=state]", "")
    page.fill("input[name=search]", vm_job[:-3])
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    page.fill("input[name=search]", "")
    expect(page.locator(f"tr[data-job={new}]")).to_be_visible()
    jobs.shot(shots, "jobs")


def test_a_jobs_timeline_shows_the_primarys_failure_and_the_vm(cloud, tab, vm_job, shots) -> None:
    job = tab(f"/job/{vm_job}", cloud.env["AVMONITOR_TOKEN"])
    page = job.page
    failure = page.locator("#lanes [data-lane=primary] [data-mark=failure] .mark-label")
    expect(failure).to_have_text("quota")
    vm = page.locator("#lanes [data-lane=vm-1]")
    state = _state(vm_job)
    expect(vm.locator(".lane-label")).to_have_text(f"VM attempt 1 · {state.fallback.gpu} {state.fallback.provisioning}")
    expect(vm.locator("[data-mark=video] .mark-label")).to_have_text("succeeded")
    expect(page.locator("#job-reasons")).to_contain_text("quota")  # the primary's failure, in Vertex AI's words
    expect(page.locator("#job-reasons")).to_contain_text(f"{state.fallback.gpu} {state.fallback.provisioning} selected")
    expect(page.locator("#job-cost-facts")).to_contain_text("estimated")
    expect(page.locator(".video-uri")).to_have_text(state.result.video)

    page.click("#play")  # the video, fetched with the token, plays in the page
    expect(page.locator("video.player")).to_be_attached(timeout=20_000)
    wait_until(lambda: (page.eval_on_selector("video.player", "v => v.duration") or 0) > 1, timeout_s=20)
    page.click("#show-logs")
    expect(page.locator("pre.log")).to_contain_text("fn-fallback-launcher")
    job.shot(shots, "job")


def test_retry_of_a_failed_job_after_confirming_ends_with_its_video_on_the_page(cloud, outcomes, vertex, tab, tmp_path,
                                                                                shots) -> None:
    from catalog.model import load_catalog
    from functions import budget

    vertex(mode="quota")
    budget.record_spend("earlier-jobs", load_catalog().budget.daily_usd)  # today's budget is spent: the VM is refused
    try:
        job_id = _submit(cloud, _job_dir(tmp_path, "dash-retry"))
        failed = outcomes.wait(job_id)
        assert failed["status"] == "failed" and failed["reason"].startswith("daily budget"), failed
    finally:
        budget.release_spend("earlier-jobs")
    vertex(mode="ok")

    job = tab(f"/job/{job_id}", cloud.env["AVMONITOR_TOKEN"])
    page = job.page
    expect(page.locator("#job-head .badge")).to_have_text("failed")
    expect(page.locator("#lanes [data-lane=vm-1] [data-mark=failure] .mark-label")).to_have_text("not launched")
    page.evaluate("window.notReloaded = true")
    dialog = page.locator("#confirm")
    page.click("[data-action=retry]")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"retry {job_id}?")
    dialog.locator("button[value=back]").click()  # backing out changes nothing
    expect(dialog).to_be_hidden()
    time.sleep(1)
    assert _state(job_id).status.value == "failed"

    page.click("[data-action=retry]")
    dialog.locator("button[value=confirm]").click()
    expect(page.locator(".video-uri")).to_have_text(re.compile(rf"^gs://.+/{job_id}/video\.mp4$"), timeout=LONG_MS)
    expect(page.locator("#job-head .badge")).to_have_text("succeeded")
    expect(page.locator("#timeline")).to_contain_text("status-token retried the job")
    expect(page.locator("[data-action=retry]")).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True
    assert _state(job_id).result.video
    job.shot(shots, "retried")


def test_a_viewer_sees_no_controls_and_a_forged_post_is_refused(cloud, browser, tab, failed_job, shots) -> None:
    url, before = cloud.env["STATUS_URL"], _state(failed_job).history

    anonymous = tab("/jobs")  # no token: the sign-in form, no data, no control
    expect(anonymous.page.locator("#token-form")).to_be_visible()
    expect(anonymous.page.locator("#jobs")).to_have_count(0)
    expect(anonymous.page.locator("[data-action]")).to_have_count(0)
    anonymous.shot(shots, "signin")

    viewer = tab(f"/job/{failed_job}", cloud.env["DASHBOARD_VIEWER_TOKEN"])
    expect(viewer.page.locator("#who")).to_have_text("viewer-token · read-only")
    expect(viewer.page.locator("#job-head .badge")).to_have_text("failed")
    expect(viewer.page.locator("#lanes")).to_be_visible()
    expect(viewer.page.locator("[data-action]")).to_have_count(0)
    refused = requests.post(f"{url}/{failed_job}/retry", timeout=30,
                            headers={"Authorization": f"Bearer {cloud.env['DASHBOARD_VIEWER_TOKEN']}"})
    assert refused.status_code == 403, refused.text

    # Another site's page, while an operator's dashboard is open in this browser: its form carries no
    # token (the token is in the dashboard tab's sessionStorage, never in a cookie), and its script
    # cannot add one (the preflight for the Authorization header is never approved).
    operator = tab(f"/job/{failed_job}", cloud.env["AVMONITOR_TOKEN"])
    expect(operator.page.locator("[data-action=retry]")).to_be_visible()
    target = f"{url}/{failed_job}/retry"
    evil = f"http://localhost:{_free_port()}/"
    form = (f'<form method="POST" action="{target}" enctype="text/plain"><input name="x" value="y"></form>'
            "<script>document.forms[0].submit()</script>")
    page = browser.new_page()
    try:
        page.route(evil + "**", lambda route: route.fulfill(status=200, content_type="text/html", body=form))
        with page.expect_response(target) as forged:
            page.goto(evil + "form.html")
        assert forged.value.status == 401 and "no credentials" in forged.value.text()
        page.route(evil + "**", lambda route: route.fulfill(status=200, content_type="text/html", body="<p>hi</p>"))
        page.goto(evil + "script.html")
        said = page.evaluate("""url => fetch(url, {method: "POST", headers: {Authorization: "Bearer guess"}})
                                .then(r => "answered " + r.status, e => "blocked: " + e.name)""", target)
        assert said.startswith("blocked"), said
    finally:
        page.close()
    crossed = requests.post(target, timeout=30, headers={"Authorization": f"Bearer {cloud.env['AVMONITOR_TOKEN']}",
                                                         "Sec-Fetch-Site": "cross-site"})
    assert crossed.status_code == 403, crossed.text  # even with a token, if a browser says another site sent it
    after = _state(failed_job)
    assert after.status.value == "failed" and after.history == before


def test_the_vms_costs_and_speeds_pages_show_the_fleet(cloud, outcomes, vertex, tab, tmp_path, vm_job, shots) -> None:
    from render_vm.sample_job import make_sample_job

    vertex(mode="quota")
    job_id = f"dash-fleet-{time.time_ns() % 10**6:06d}"  # long enough to be caught rendering
    make_sample_job(tmp_path / job_id, scenes=6, width=640, height=360, seconds_per_scene=3.0, job_id=job_id)
    _submit(cloud, tmp_path / job_id)
    auth = {"Authorization": f"Bearer {cloud.env['AVMONITOR_TOKEN']}"}
    try:
        def beating():
            rows = requests.get(f"{cloud.env['STATUS_URL']}/vms", headers=auth, timeout=30).json()["vms"]
            return next((r for r in rows if r["job_id"] == job_id and r["heartbeat_age_s"] is not None), None)

        vm = wait_until(beating, timeout_s=60, interval_s=0.5)
        vms = tab("/vms", cloud.env["AVMONITOR_TOKEN"])
        row = vms.page.locator(f"tr[data-vm={vm['name']}]")
        expect(row).to_contain_text(job_id)
        expect(row).to_contain_text("vm running")
        expect(row.locator(".flag")).to_have_count(0)  # its job's current VM, its heartbeat fresh
        # The VM freezes: its heartbeat stops. Flagged once older than the page's choice (the watchdog acts at 15 s).
        admin(cloud.env["COMPUTE_API_ENDPOINT"], f"instances/{vm['zone']}/{vm['name']}/hang", {})
        vms.page.select_option("select[name=stale_after]", "5s")
        expect(row.locator(".flag.stale")).to_have_text("stale heartbeat", timeout=20_000)
        expect(vms.page.locator("#vms-summary")).to_contain_text(re.compile(r"[1-9]\d* with a stale heartbeat"))
        vms.shot(shots, "vms")
    finally:
        requests.post(f"{cloud.env['STATUS_URL']}/{job_id}/cancel", headers=auth, timeout=30)

    costs = tab("/costs", cloud.env["AVMONITOR_TOKEN"])
    expect(costs.page.locator("#cost-per-day .bar").first).to_be_visible()
    expect(costs.page.locator("#gpu-mix")).to_contain_text(_state(vm_job).fallback.gpu)
    expect(costs.page.locator("#costs .card").nth(1)).to_contain_text("saving against Vertex AI")
    expect(costs.page.locator("#cost-days tr.total")).to_contain_text("total")
    costs.shot(shots, "costs")

    from catalog.model import load_catalog

    speeds = tab("/speeds", cloud.env["AVMONITOR_TOKEN"])
    for gpu in load_catalog().options:  # each with the catalog's figure, CPU-only machines too; the VM job's with what it measured
        expect(speeds.page.locator(f"#speeds-table tr[data-gpu={gpu}]")).to_be_visible()
    learned = speeds.page.locator(f"#speeds-table tr[data-gpu={_state(vm_job).fallback.gpu}] td").nth(2)
    expect(learned).to_have_text(re.compile(r"^\d+\.\d\d$"))
    speeds.shot(shots, "speeds")


def test_the_ab_page_shows_both_arms_of_a_seeded_experiment_with_their_intervals(cloud, tab, shots) -> None:
    from functions.experiments import load_experiments

    experiment = load_experiments()[0]  # the status function reads the same file (no EXPERIMENTS_FILE)
    seeded = _seed_experiment(experiment)
    try:
        ab = tab("/experiments", cloud.env["AVMONITOR_TOKEN"])
        section = ab.page.locator(f"[data-experiment={experiment.name}]")
        expect(section).to_be_visible()
        for arm in experiment.arms:
            expect(section.locator(f"tr[data-arm={arm.name}]")).to_be_visible()
            expect(section.locator(f"tr[data-arm={arm.name}] .ci").first).to_have_text(re.compile(r"^\d.* – \d.*s$"))
            expect(section.locator(f".interval[data-arm={arm.name}] line.ci")).to_have_count(3)  # time, cost, failures
        expect(section.locator(".verdict")).to_contain_text(f"{experiment.arms[-1].name} is faster")
        ab.shot(shots, "experiments")
    finally:
        from functions.jobs import store

        for job_id in seeded:
            store().ref(job_id).delete()


def _seed_experiment(experiment, per_arm: int = 12) -> list[str]:
    """Finished jobs of each arm, written to the job store as intake and the renderers would have left them:
    the last arm's videos come faster and cheaper, and the first arm fails one job in six."""
    from functions.jobs import store
    from functions.state import (
        ExperimentArm,
        FallbackRun,
        JobState,
        PrimaryRun,
        RenderResult,
        Status,
    )
    from functions.vm_spec import instance_name

    now, stamp, made = time.time(), time.time_ns() % 10**6, []
    for a, arm in enumerate(experiment.arms):
        for i in range(per_arm):
            job_id = f"ab-{arm.name[:16]}-{i:02d}-{stamp:06d}".lower()
            created = now - 7200 + i * 300 + a * 17
            seconds = (220 if a == 0 else 120) + 7 * i
            failed = a == 0 and i % 6 == 5
            status = Status.FAILED if failed else Status.SUCCEEDED
            state = JobState(job_id=job_id, status=status, created_at=_iso(created), updated_at=_iso(created + seconds),
                             video_length_s=60.0, cleaned_up=True, outcome_published=True,
                             experiment=ExperimentArm(name=experiment.name, arm=arm.name, route=arm.route))
            state.primary = PrimaryRun(failure="quota")
            state.fallback = FallbackRun(instance=instance_name(job_id, 1), zone="us-central1-a", gpu="l4",
                                         provisioning="spot", price_per_hour=0.3 if a == 0 else 0.2,
                                         launched_at=created + 5, deleted_at=created + seconds)
            state.result = RenderResult() if failed else RenderResult(rendered_by="vm", gpu="l4", video_s=60.0)
            state.error = "seeded: the VM failed" if failed else None
            state.history = [{"status": "received", "at": state.created_at, "note": "seeded for the dashboard's A/B test"},
                             {"status": status.value, "at": state.updated_at, "note": state.error or "video delivered by vm"}]
            store().update(job_id, lambda _, made_state=state: made_state)
            made.append(job_id)
    return made


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _free_port() -> int:
    """A port nothing listens on: another origin for the forged page (the browser's routing serves it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
