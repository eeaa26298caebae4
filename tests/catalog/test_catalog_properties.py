"""Property: over random catalogs, deadlines and blocks, `select` picks what brute force picks.

The brute force below restates the rules from scratch (runtime, Spot rework,
blocks, budget, then "cheapest in time, else fastest") over every option, so a
bug in the selector's bookkeeping cannot hide behind the same bug here.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from catalog import Block, parse_catalog, select

ZONES = ["us-central1-a", "us-central1-b", "us-east1-c", "europe-west4-a", "asia-east1-a"]
prices = st.one_of(st.none(), st.floats(min_value=0.05, max_value=15, allow_nan=False))


@st.composite
def gpu_entries(draw, name):
    on_demand, spot_price = draw(prices), draw(prices)
    if on_demand is None and spot_price is None:
        on_demand = 1.0
    entry = {
        "accelerator": "nvidia-test",
        "machine_type": "n1-standard-4",
        "speed_factor": draw(st.floats(min_value=0.2, max_value=20)),
        "zones": draw(st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True)),
        "boot_overhead_s": draw(st.floats(min_value=0, max_value=600)),
    }
    if on_demand is not None:
        entry["cost_per_hour"] = on_demand
    if spot_price is not None:
        entry["spot_cost_per_hour"] = spot_price
        rate = draw(st.one_of(st.none(), st.floats(min_value=0, max_value=3)))
        if rate is not None:
            entry["preemption_rate_per_hour"] = rate
    return entry


@st.composite
def catalogs(draw):
    names = draw(
        st.lists(
            st.sampled_from(["t4", "l4", "v100", "a100", "h100", "p4", "x1", "x2"]), min_size=1, max_size=8, unique=True
        )
    )
    return {
        "pricing": "speed_factor",  # the brute force below restates the speed-factor formula
        "baseline_s_per_s": draw(st.floats(min_value=1, max_value=60)),
        "transfer_overhead_s": draw(st.floats(min_value=0, max_value=300)),
        "budget": {"per_job_usd": draw(st.floats(min_value=0.05, max_value=20)), "daily_usd": 100},
        "spot": {
            "max_preemptions": draw(st.integers(0, 3)),
            "segment_s": draw(st.floats(min_value=0, max_value=3600)),
            "default_preemption_rate_per_hour": draw(st.floats(min_value=0, max_value=2)),
        },
        "gpus": {name: draw(gpu_entries(name)) for name in names},
    }


blocks = st.lists(
    st.builds(
        Block,
        gpu=st.one_of(st.none(), st.sampled_from(["t4", "l4", "a100", "x1"])),
        location=st.one_of(st.none(), st.sampled_from(ZONES + ["us-central1", "europe-west4"])),
        provisioning=st.one_of(st.none(), st.sampled_from(["on-demand", "spot"])),
    ),
    max_size=3,
)


def brute_force(doc, length, deadline, spot, preemptions, blocked):
    """[(label, cost, runtime, meets)] of the eligible options, from the rules alone."""
    eligible = []
    for name, gpu in doc["gpus"].items():
        for provisioning, price in (("on-demand", gpu.get("cost_per_hour")), ("spot", gpu.get("spot_cost_per_hour"))):
            if price is None or (provisioning == "spot" and not spot):
                continue
            overhead = gpu["boot_overhead_s"] + doc["transfer_overhead_s"]
            runtime = length * doc["baseline_s_per_s"] / gpu["speed_factor"] + overhead
            if provisioning == "spot":
                if preemptions >= doc["spot"]["max_preemptions"]:
                    continue
                rate = gpu.get("preemption_rate_per_hour", doc["spot"]["default_preemption_rate_per_hour"])
                wasted = rate * (doc["spot"]["segment_s"] / 2 + overhead) / 3600
                if wasted >= 0.5:
                    continue
                runtime = runtime / (1 - wasted)
            cost = runtime / 3600 * price
            usable = [z for z in gpu["zones"] if not any(b.matches(name, z, provisioning) for b in blocked)]
            if usable and cost <= doc["budget"]["per_job_usd"]:
                meets = deadline is None or runtime <= deadline
                eligible.append(((name, provisioning), cost, runtime, meets))
    return eligible


@settings(max_examples=300, deadline=None, database=None)  # leaves no .hypothesis folder
@given(
    doc=catalogs(),
    length=st.floats(min_value=1, max_value=3600),
    deadline=st.one_of(st.none(), st.floats(min_value=60, max_value=50_000)),
    spot=st.booleans(),
    preemptions=st.integers(0, 3),
    blocked=blocks,
)
def test_selection_equals_brute_force(doc, length, deadline, spot, preemptions, blocked):
    decision = select(
        parse_catalog(doc), length, deadline_s=deadline, spot=spot, preemptions_so_far=preemptions, blocked=blocked
    )
    eligible = brute_force(doc, length, deadline, spot, preemptions, blocked)
    assert {(o.gpu, o.provisioning) for o in decision.options if o.excluded is None} == {e[0] for e in eligible}
    if not eligible:
        assert decision.selected is None
        return
    in_time = [e for e in eligible if e[3]]
    if in_time:
        best = min((cost, runtime) for _, cost, runtime, _ in in_time)
        assert not decision.deadline_missed
    else:
        best = min((runtime, cost) for _, cost, runtime, _ in eligible)[::-1]
        assert decision.deadline_missed == (deadline is not None)
    chosen = decision.selected
    assert chosen is not None and chosen.excluded is None
    assert (chosen.cost_usd, chosen.runtime_s) == best
