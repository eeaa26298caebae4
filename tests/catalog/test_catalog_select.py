"""The selector: the design note's cost example, deadlines, exclusions, Spot, budgets, learned speeds."""

from __future__ import annotations

import json

import pytest

from catalog import (
    Block,
    LearnedSpeeds,
    check_daily_budget,
    format_usd,
    load_catalog,
    parse_catalog,
    select,
)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(environ={})


def seed_catalog(**top):
    """The design note's three GPUs, with no overheads unless asked, priced by the note's speed factors."""
    gpu = {"machine_type": "n1-standard-4", "zones": ["us-central1-a", "us-east1-c"], "boot_overhead_s": 0}
    return parse_catalog(
        {
            "transfer_overhead_s": 0,
            "pricing": "speed_factor",
            **top,
            "gpus": {
                "t4": {
                    **gpu,
                    "accelerator": "nvidia-tesla-t4",
                    "cost_per_hour": 0.35,
                    "speed_factor": 1.0,
                    "spot_cost_per_hour": 0.14,
                    "preemption_rate_per_hour": 0.02,
                },
                "l4": {
                    **gpu,
                    "accelerator": "nvidia-l4",
                    "cost_per_hour": 0.50,
                    "speed_factor": 1.5,
                    "spot_cost_per_hour": 0.20,
                    "preemption_rate_per_hour": 0.03,
                },
                "a100": {
                    **gpu,
                    "accelerator": "nvidia-tesla-a100",
                    "cost_per_hour": 3.00,
                    "speed_factor": 8.0,
                    "spot_cost_per_hour": 1.10,
                    "preemption_rate_per_hour": 0.05,
                },
            },
        }
    )


def by_label(decision):
    return {option.label: option for option in decision.options}


def test_seed_cost_example_reproduces_with_the_bundled_catalog(catalog):
    decision = select(catalog, 180, baseline_s_per_s=20, overhead_s=0)
    rows = by_label(decision)
    assert (rows["t4"].runtime_s, format_usd(rows["t4"].cost_usd)) == (3600, "$0.35")
    assert (rows["l4"].runtime_s, format_usd(rows["l4"].cost_usd)) == (2400, "$0.33")
    assert (rows["a100"].runtime_s, format_usd(rows["a100"].cost_usd)) == (450, "$0.38")
    assert decision.selected is rows["l4"]
    assert decision.selected.provisioning == "on-demand"
    assert decision.reasons.startswith("l4 selected: the cheapest option")


def test_bundled_catalog_still_prefers_l4_with_its_overheads_under_speed_factor_pricing(catalog):
    assert select(catalog, 180, pricing="speed_factor").selected.gpu == "l4"


def test_bundled_catalog_prices_every_option_with_the_model_by_default(catalog):
    decision = select(catalog, 180)
    assert decision.pricing == "model"
    assert {o.speed_source for o in decision.options} == {"model"}
    assert all(o.estimate and o.estimate["frames"] == 5400 for o in decision.options)


def test_a_deadline_changes_the_choice():
    catalog = seed_catalog()
    assert select(catalog, 180, deadline_s=3000).selected.gpu == "l4"  # 2400 s fits
    tight = select(catalog, 180, deadline_s=2000)  # only the A100 (450 s) fits
    assert tight.selected.gpu == "a100"
    assert not tight.deadline_missed
    assert [o.gpu for o in tight.options if o.meets_deadline] == ["a100"]


def test_an_impossible_deadline_picks_the_fastest_and_says_so():
    decision = select(seed_catalog(), 180, deadline_s=100)
    assert decision.selected.gpu == "a100"
    assert decision.deadline_missed
    assert "No option meets the deadline of 100 s" in decision.reasons


def test_equal_cost_is_broken_by_runtime():
    # Twice as fast at twice the price: both cost exactly $0.50, the faster one wins.
    cheap_l4 = parse_catalog(
        {
            "transfer_overhead_s": 0,
            "pricing": "speed_factor",
            "gpus": {
                "t4": {
                    "accelerator": "nvidia-tesla-t4",
                    "machine_type": "n1-standard-4",
                    "cost_per_hour": 0.5,
                    "speed_factor": 1.0,
                    "zones": ["us-central1-a"],
                    "boot_overhead_s": 0,
                },
                "l4": {
                    "accelerator": "nvidia-l4",
                    "machine_type": "g2-standard-8",
                    "cost_per_hour": 1.0,
                    "speed_factor": 2.0,
                    "zones": ["us-central1-a"],
                    "boot_overhead_s": 0,
                },
            },
        }
    )
    decision = select(cheap_l4, 180)
    t4, l4 = decision.options
    assert t4.cost_usd == l4.cost_usd
    assert decision.selected is l4


def test_blocking_a_gpu_type_excludes_it_with_a_reason():
    decision = select(seed_catalog(), 180, blocked=[Block(gpu="l4", reason="quota NVIDIA_L4_GPUS")])
    rows = by_label(decision)
    assert rows["l4"].excluded == "blocked in every zone (quota NVIDIA_L4_GPUS)"
    assert decision.selected.gpu == "t4"
    assert "Excluded l4: blocked in every zone (quota NVIDIA_L4_GPUS)." in decision.reasons


def test_blocking_a_zone_keeps_the_gpu_in_its_other_zones():
    decision = select(seed_catalog(), 180, blocked=[Block(gpu="l4", location="us-central1-a", reason="stockout")])
    assert decision.selected.gpu == "l4"
    assert decision.selected.zones == ("us-east1-c",)


def test_blocking_regions_removes_every_gpu_there():
    blocks = [Block(location="us-central1"), Block(location="us-east1")]
    decision = select(seed_catalog(), 180, blocked=blocks)
    assert decision.selected is None
    assert all(o.excluded == "blocked in every zone" for o in decision.options)
    assert decision.reasons.startswith("No option can be selected")


def test_a_spot_block_leaves_on_demand_alone():
    block = Block.parse("l4:spot@us-central1")
    assert block == Block(gpu="l4", location="us-central1", provisioning="spot", reason="l4:spot@us-central1")
    rows = by_label(select(seed_catalog(), 180, spot=True, blocked=[block]))
    assert rows["l4 spot"].zones == ("us-east1-c",)
    assert rows["l4"].zones == ("us-central1-a", "us-east1-c")


@pytest.mark.parametrize("text", ["", "l4:cheap", ":@"])
def test_block_parse_rejects_nonsense(text):
    with pytest.raises(ValueError, match="block"):
        Block.parse(text)


def test_spot_is_cheaper_but_priced_with_expected_rework():
    catalog = seed_catalog(spot={"segment_s": 120})
    decision = select(catalog, 180, spot=True, overhead_s=60)
    rows = by_label(decision)
    on_demand, spot = rows["l4"], rows["l4 spot"]
    # Each preemption loses half a segment (60 s) plus a new VM's overhead (60 s);
    # at 0.03 per hour that is 0.1 % of the time.
    wasted = 0.03 * (60 + 60) / 3600
    assert spot.runtime_s == pytest.approx(on_demand.runtime_s / (1 - wasted))
    assert spot.runtime_s > on_demand.runtime_s
    assert spot.expected_preemptions == pytest.approx(0.03 * spot.runtime_s / 3600)
    assert spot.cost_usd == pytest.approx(spot.runtime_s / 3600 * 0.20)
    assert decision.selected.provisioning == "spot"


def test_more_preemption_risk_costs_more():
    calm = by_label(select(seed_catalog(spot={"segment_s": 60}), 600, spot=True))["t4 spot"]
    risky = by_label(select(seed_catalog(spot={"segment_s": 1200}), 600, spot=True))["t4 spot"]
    assert risky.runtime_s > calm.runtime_s
    assert risky.cost_usd > calm.cost_usd


def test_spot_is_refused_when_rework_would_eat_half_the_time():
    data = {
        "transfer_overhead_s": 0,
        "spot": {"segment_s": 3600},
        "gpus": {
            "t4": {
                "accelerator": "nvidia-tesla-t4",
                "machine_type": "n1-standard-4",
                "cost_per_hour": 0.35,
                "spot_cost_per_hour": 0.1,
                "preemption_rate_per_hour": 1.0,
                "speed_factor": 1,
                "zones": ["us-central1-a"],
            }
        },
    }
    decision = select(parse_catalog(data), 180, spot=True)
    assert by_label(decision)["t4 spot"].excluded.startswith("spot: preemptions would waste")
    assert decision.selected.label == "t4"


def test_spot_is_not_offered_after_max_preemptions():
    catalog = seed_catalog(spot={"max_preemptions": 2})
    assert select(catalog, 180, spot=True, preemptions_so_far=1).selected.provisioning == "spot"
    decision = select(catalog, 180, spot=True, preemptions_so_far=2)
    assert decision.selected.label == "l4"
    spot_rows = [o for o in decision.options if o.provisioning == "spot"]
    assert spot_rows and all(o.excluded.startswith("spot not offered after 2 preemptions") for o in spot_rows)


def test_spot_only_gpus_appear_only_when_spot_is_asked_for(catalog):
    assert "h100" not in {o.gpu for o in select(catalog, 180).options}
    assert "h100 spot" in by_label(select(catalog, 180, spot=True))


def test_options_over_the_per_job_budget_are_excluded():
    decision = select(seed_catalog(), 180, per_job_budget_usd=0.34)
    rows = by_label(decision)
    assert rows["t4"].excluded == "over the per-job budget: $0.35 > $0.34"
    assert rows["a100"].excluded == "over the per-job budget: $0.38 > $0.34"
    assert decision.selected.gpu == "l4"
    # With a deadline only the over-budget A100 meets, the budget wins: the fastest allowed is chosen.
    late = select(seed_catalog(), 180, deadline_s=1000, per_job_budget_usd=0.34)
    assert late.selected.gpu == "l4" and late.deadline_missed


def test_daily_budget_helper():
    catalog = seed_catalog(budget={"daily_usd": 10})
    ok = check_daily_budget(9.50, 0.33, catalog=catalog)
    assert ok and ok.reason == "$9.50 spent today + $0.33 = $9.83, within the daily budget of $10.00"
    over = check_daily_budget(9.80, 0.33, catalog=catalog)
    assert not over and "over the daily budget" in over.reason


def test_learned_speed_takes_over_after_five_samples():
    catalog = seed_catalog()
    learned = LearnedSpeeds()
    # The T4 turns out to render at 5 s/s, four times the catalog's guess of 20 s/s.
    for _ in range(4):
        learned.add("t4", render_s=300, video_s=60)
    still_guessing = select(catalog, 180, learned=learned)
    assert {o.speed_source for o in still_guessing.options} == {"catalog"}
    assert still_guessing.selected.gpu == "l4"

    learned.add("t4", render_s=300, video_s=60)
    decision = select(catalog, 180, learned=learned)
    t4 = by_label(decision)["t4"]
    assert t4.speed_source == "learned"
    assert t4.runtime_s == pytest.approx(900)
    assert t4.speed_factor == pytest.approx(4.0)
    assert by_label(decision)["l4"].speed_source == "catalog"
    assert decision.selected is t4
    assert "learned speed: median 5.00 s/s over 5 renders" in decision.reasons


def test_to_log_is_one_json_object_with_the_choice():
    decision = select(seed_catalog(), 180, deadline_s=3000, spot=True)
    fields = decision.to_log()
    json.dumps(fields)  # plain JSON types only
    assert fields["gpu"] == "l4" and fields["provisioning"] == "spot"
    assert fields["zones"] == ["us-central1-a", "us-east1-c"]
    assert fields["deadline_s"] == 3000 and fields["deadline_missed"] is False
    assert len(fields["options"]) == 6
    assert fields["reasons"] == decision.reasons


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("video_length_s", 0, "video_length_s: must be a positive number, got 0"),
        ("deadline_s", -1, "deadline_s: must be a positive number, got -1"),
        ("baseline_s_per_s", float("nan"), "baseline_s_per_s: must be a positive number, got nan"),
        ("overhead_s", -5, "overhead_s: must be a non-negative number, got -5"),
        ("preemptions_so_far", -1, "preemptions_so_far: must be a non-negative number, got -1"),
    ],
)
def test_rejects_nonsense_arguments(argument, value, message):
    arguments = {"video_length_s": 180, argument: value}
    with pytest.raises(ValueError) as caught:
        select(seed_catalog(), **arguments)
    assert str(caught.value) == message
