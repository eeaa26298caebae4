"""The campaign's judging, without a cloud: when two VMs count as alive together, the summary line."""

from __future__ import annotations

from bench.chaos import failed_promises, summary_line
from bench.chaos_harness import Verdict, alive_interval, overlapping
from bench.chaos_scenarios import Result


def vm(*history: tuple[str, str]) -> dict:
    return {"status_history": [{"status": status, "time": f"2026-12-01T10:00:{second}Z"} for status, second in history]}


def test_a_vm_is_alive_from_running_until_it_stops() -> None:
    start, end = alive_interval(vm(("PROVISIONING", "00"), ("RUNNING", "01"), ("STOPPING", "09"), ("TERMINATED", "10")))
    assert end - start == 8
    assert alive_interval(vm(("PROVISIONING", "00"))) is None  # never ran


def test_a_relaunch_after_the_first_vm_stopped_is_not_a_second_vm() -> None:
    first = vm(("RUNNING", "01"), ("STOPPING", "05"))
    second = vm(("RUNNING", "05"), ("TERMINATED", "20"))
    assert not overlapping([first, second])


def test_two_vms_running_together_are() -> None:
    first = vm(("RUNNING", "01"), ("STOPPING", "30"))
    second = vm(("RUNNING", "05"), ("TERMINATED", "20"))
    third = vm(("RUNNING", "40"))
    assert overlapping([third, second, first])  # whatever the order
    assert not overlapping([first, third])


def verdict(**broken: bool) -> Verdict:
    fields = {"lost": False, "stuck": False, "second_vm": False, "double_completion": False, "healthy_failed": False}
    return Verdict("j", "s", "succeeded", "succeeded", "vm", 1, 1, **{**fields, **broken})


def test_the_summary_line_counts_every_promise_and_the_rework() -> None:
    clean = Result("a", "a", verdicts=[verdict(), verdict()], rework_frames=12)
    bad = Result("b", "b", verdicts=[verdict(stuck=True, lost=True), verdict(double_completion=True)], over_budget=1)
    assert summary_line([clean]) == ("chaos: 2 jobs, 0 lost, 0 stuck, 0 second VMs, 0 double completions, "
                                     "0 healthy jobs failed, 0 over budget, rework 12 frames")
    assert summary_line([clean, bad]) == ("chaos: 4 jobs, 1 lost, 1 stuck, 0 second VMs, 1 double completions, "
                                          "0 healthy jobs failed, 1 over budget, rework 12 frames")
    assert not failed_promises([clean])
    assert failed_promises([clean, bad]) == {"lost": 1, "stuck": 1, "double_completion": 1, "over_budget": 1}
    assert failed_promises([Result("m", "m", retried_forever=2)]) == {"retried_forever": 2}
