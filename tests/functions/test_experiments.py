"""A/B experiments: deterministic assignment, the share and the arms' balance, the loader's one-line errors,
the arm recorded on the job, and the launcher's preference that never forbids (no cloud needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.model import load_catalog
from catalog.select import Block
from functions import experiments, fallback
from functions.experiments import (
    Arm,
    Experiment,
    ExperimentError,
    assign,
    load_experiments,
    parse_experiments,
)
from functions.state import EXPERIMENT, ExperimentArm, JobState, Status

GPUS = tuple(load_catalog().gpus)


def experiment(name: str = "route", share: float = 1.0, arms: tuple[Arm, ...] | None = None, active: bool = True):
    arms = arms or (Arm("vertex-first"), Arm("vm-first", route="vm-first"))
    return Experiment(name=name, description="test", share=share, active=active, arms=arms)


IDS = [f"story-{i:05d}" for i in range(10_000)]


# ---------------------------------------------------------------- assignment


def test_the_same_job_always_gets_the_same_arm_and_records_what_the_arm_changes() -> None:
    e = experiment(arms=(Arm("a"), Arm("b", route="vm-first", gpu="l4", provisioning="on-demand")))
    first = [assign(job_id, [e]) for job_id in IDS[:200]]
    assert first == [assign(job_id, [e]) for job_id in IDS[:200]]
    in_b = next(a for a in first if a and a.arm == "b")
    assert in_b == ExperimentArm(name="route", arm="b", route="vm-first", gpu="l4", provisioning="on-demand")


def test_the_share_takes_that_fraction_of_new_jobs_and_growing_it_keeps_the_jobs_already_in() -> None:
    small, large = experiment(share=0.2), experiment(share=0.5)
    in_small = {j for j in IDS if assign(j, [small])}
    in_large = {j for j in IDS if assign(j, [large])}
    assert abs(len(in_small) / len(IDS) - 0.2) < 0.02 and abs(len(in_large) / len(IDS) - 0.5) < 0.02
    assert in_small <= in_large
    assert all(assign(j, [small]) == assign(j, [large]) for j in in_small)  # the arm does not depend on the share
    assert not any(assign(j, [experiment(share=0.0)]) for j in IDS)
    assert not any(assign(j, [experiment(active=False)]) for j in IDS)


@pytest.mark.parametrize("arms", [2, 3])
def test_the_arms_split_jobs_evenly(arms: int) -> None:
    e = experiment(arms=tuple(Arm(f"arm-{i}") for i in range(arms)))
    counts = {a.name: 0 for a in e.arms}
    for job_id in IDS:
        counts[assign(job_id, [e]).arm] += 1
    assert all(abs(n / len(IDS) - 1 / arms) < 0.03 for n in counts.values()), counts


def test_a_job_is_in_at_most_one_experiment_the_first_active_one_whose_share_takes_it() -> None:
    first, second = experiment("first", share=0.3), experiment("second", share=1.0)
    assigned = [assign(j, [first, second]) for j in IDS]
    assert {a.name for a in assigned} == {"first", "second"}
    assert all(a.name == "first" for j, a in zip(IDS, assigned) if assign(j, [first]))
    # Two experiments split independently: the first's arm tells nothing of the second's.
    both = [(assign(j, [experiment("x")]).arm, assign(j, [experiment("y")]).arm) for j in IDS]
    assert abs(sum(x == y for x, y in both) / len(both) - 0.5) < 0.03


# ---------------------------------------------------------------- the file


def test_the_bundled_file_is_valid_and_changes_nothing_until_turned_on() -> None:
    bundled = load_experiments(experiments.DEFAULT_EXPERIMENTS_PATH)
    assert bundled and not any(e.active for e in bundled)
    assert not any(assign(j, bundled) for j in IDS[:1000])
    assert {arm.route for arm in bundled[0].arms} == {"vertex-first", "vm-first"}


def test_experiments_file_points_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "x.yml"
    path.write_text("experiments:\n  t4-vs-l4:\n    description: which GPU\n    share: 0.5\n    active: true\n"
                    "    arms:\n      t4: {gpu: t4}\n      l4: {gpu: l4, route: vm-first}\n      control:\n")
    [e] = load_experiments(environ={"EXPERIMENTS_FILE": str(path)})
    assert (e.name, e.share, e.active) == ("t4-vs-l4", 0.5, True)
    assert e.arms == (Arm("t4", gpu="t4"), Arm("l4", route="vm-first", gpu="l4"), Arm("control"))
    assert e.arms[1].changes == "VM first, l4 first" and e.arms[2].changes == "Vertex AI first"


def _doc(**arm_fields) -> dict:
    experiment_fields = {"description": "d", "share": 0.1, "active": False,
                         "arms": {"a": {"route": "vertex-first"}, "b": {"route": "vm-first", **arm_fields}}}
    return {"version": 1, "experiments": {"e1": experiment_fields}}


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["experiments"]["e1"].update(shares=0.1), "experiments: experiments.e1.shares: unknown field (did you mean share?)"),
    (lambda d: d["experiments"]["e1"]["arms"]["b"].update(gpus="l4"), "experiments: experiments.e1.arms.b.gpus: unknown field (did you mean gpu?)"),
    (lambda d: d.update(experiment={}), "experiments: experiment: unknown field (did you mean experiments?)"),
    (lambda d: d["experiments"]["e1"].pop("active"), "experiments: experiments.e1.active: required field is missing"),
    (lambda d: d["experiments"]["e1"].update(share=1.5), "experiments: experiments.e1.share: must be a number from 0 to 1 (the share of new jobs), got 1.5"),
    (lambda d: d["experiments"]["e1"].update(active="yes"), "experiments: experiments.e1.active: must be true or false, got 'yes'"),
    (lambda d: d["experiments"]["e1"]["arms"].pop("a"), "experiments: experiments.e1.arms: must be a mapping of two or more arm names to what each changes"),
    (lambda d: d["experiments"]["e1"]["arms"]["b"].update(route="vm"), "experiments: experiments.e1.arms.b.route: must be vertex-first or vm-first, got 'vm'"),
    (lambda d: d["experiments"]["e1"]["arms"]["b"].update(gpu="k80"), "experiments: experiments.e1.arms.b.gpu: must be one of the catalog's options ("),
    (lambda d: d["experiments"]["e1"]["arms"]["b"].update(provisioning="preemptible"), "experiments: experiments.e1.arms.b.provisioning: must be on-demand or spot, got 'preemptible'"),
    (lambda d: d.update(version=2), "experiments: version: must be 1, got 2"),
    (lambda d: d["experiments"].update({"Bad Name": d["experiments"]["e1"]}), "experiments: experiments.Bad Name: names are"),
])
def test_a_bad_file_is_one_line_naming_the_field(change, message) -> None:
    document = _doc()
    change(document)
    with pytest.raises(ExperimentError) as raised:
        parse_experiments(document, GPUS)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_duplicate_names_and_broken_yaml_are_one_line_too(tmp_path: Path) -> None:
    path = tmp_path / "e.yml"
    path.write_text("experiments:\n  e1:\n    description: d\n    share: 1\n    active: true\n"
                    "    arms:\n      a: {}\n      a: {route: vm-first}\n")
    with pytest.raises(ExperimentError, match=r"^experiments: line 8: duplicate key 'a'$"):
        load_experiments(path, gpus=GPUS)
    path.write_text("experiments: [unclosed\n")
    with pytest.raises(ExperimentError, match=r"not valid YAML \(line"):
        load_experiments(path, gpus=GPUS)
    with pytest.raises(ExperimentError, match="cannot read"):
        load_experiments(tmp_path / "missing.yml", gpus=GPUS)


def test_an_invalid_file_never_stops_a_job_it_only_leaves_it_out(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("experiments: {e1: {share: 1}}\n")
    monkeypatch.setenv("EXPERIMENTS_FILE", str(path))
    assert experiments.for_new_job("story-1") is None


# ---------------------------------------------------------------- the job's record and the primary's turn


def test_the_arm_is_stored_on_the_job_document_and_read_back() -> None:
    state = JobState(job_id="story-1", status=Status.RECEIVED,
                     experiment=ExperimentArm(name="route", arm="vm-first", route="vm-first", gpu="l4"))
    doc = state.to_document(retention_days=90)
    assert doc["experiment"] == {"name": "route", "arm": "vm-first", "route": "vm-first", "gpu": "l4", "provisioning": None}
    assert JobState.from_document(doc) == state
    plain = JobState(job_id="story-2", status=Status.RECEIVED)
    assert plain.to_document(90)["experiment"] is None and JobState.from_document(plain.to_document(90)).experiment is None
    older = plain.to_document(90)
    del older["experiment"]  # written before the field existed
    assert JobState.from_document(older).experiment is None


def test_a_vm_first_job_goes_to_a_vm_until_its_vm_is_given_up_and_reads_as_vm() -> None:
    state = JobState(job_id="story-1", status=Status.RECEIVED,
                     experiment=ExperimentArm(name="route", arm="vm-first", route="vm-first"))
    assert experiments.sends_to_vm_first(state)
    state.primary.failure = EXPERIMENT
    state.move_to(Status.FALLBACK_REQUESTED, "a VM first")
    assert not experiments.sends_to_vm_first(state) and state.method == "vm"
    state.primary.failure, state.fallback.hedge_failed = None, "no GPU VM could be launched"
    state.move_to(Status.RECEIVED, "to Vertex AI")
    assert not experiments.sends_to_vm_first(state) and state.method == "vertex"
    control = JobState(job_id="story-2", status=Status.RECEIVED, experiment=ExperimentArm(name="route", arm="vertex-first"))
    assert not experiments.sends_to_vm_first(control)


# ---------------------------------------------------------------- the launcher: preferred, never pinned


def _fallback_job(**arm_fields) -> JobState:
    state = JobState(job_id="story-1", status=Status.FALLBACK_REQUESTED, video_length_s=3.0)
    if arm_fields:
        state.experiment = ExperimentArm(name="gpus", arm="x", **arm_fields)
    return state


def test_an_arms_gpu_is_tried_first_and_when_it_cannot_be_had_any_other_is() -> None:
    cheapest = fallback.plan(_fallback_job(), [], None, use_spot=True).selected
    other = next(g for g in GPUS if g != cheapest.gpu)
    preferred = fallback.plan(_fallback_job(gpu=other), [], None, use_spot=True).selected
    assert preferred.gpu == other
    every_zone = [Block(gpu=other, reason="stockout")]
    after = fallback.plan(_fallback_job(gpu=other), every_zone, None, use_spot=True).selected
    assert after is not None and after.gpu != other  # the arm's GPU is out: the job still gets a VM
    assert after == fallback.plan(_fallback_job(), every_zone, None, use_spot=True).selected


def test_an_arms_provisioning_is_tried_first_but_an_operators_pin_stays_a_hard_choice() -> None:
    assert fallback.plan(_fallback_job(provisioning="on-demand"), [], None, use_spot=True).selected.provisioning == "on-demand"
    assert fallback.plan(_fallback_job(provisioning="spot"), [], None, use_spot=False).selected.provisioning == "spot"
    no_on_demand = [Block(provisioning="on-demand", reason="quota")]
    assert fallback.plan(_fallback_job(provisioning="on-demand"), no_on_demand, None, use_spot=True).selected.provisioning == "spot"

    pinned = _fallback_job(gpu="l4")
    pinned.fallback.pinned_gpu, pinned.fallback.pinned_provisioning = "t4", "on-demand"
    choice = fallback.plan(pinned, [], None, use_spot=True).selected
    assert (choice.gpu, choice.provisioning) == ("t4", "on-demand")  # the operator's word over the arm's
    assert fallback.plan(pinned, [Block(gpu="t4", reason="stockout")], None, use_spot=True).selected is None
