"""Regime examples on a hand-built 5-frame video: every record written out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spliter.regimes import Example, RegimeConfig, build_examples, sample_combinations

TIMES = [0.0, 0.5, 1.0, 1.5, 2.0]
ALL = 1000  # a budget larger than any component's count, so every valid example is kept


def records(examples: list[Example]) -> set[tuple]:
    return {(e.way, e.start_index, e.start_source, e.target_index, e.step, e.chain) for e in examples}


def build(times=TIMES, time_scale=1.0, seed=0, **regime) -> list[Example]:
    regime.setdefault("pairs_per_video", ALL)
    return build_examples(times, RegimeConfig(**regime), time_scale, np.random.default_rng(seed))


BASE_NORMAL = {
    ("normal", 0, "prior", 1, 0.5, ()),
    ("normal", 0, "prior", 2, 1.0, ()),
    ("normal", 0, "prior", 3, 1.5, ()),
    ("normal", 0, "prior", 4, 2.0, ()),
}
BASE_BACK = {
    ("back", 4, "prior", 0, -2.0, ()),
    ("back", 4, "prior", 1, -1.5, ()),
    ("back", 4, "prior", 2, -1.0, ()),
    ("back", 4, "prior", 3, -0.5, ()),
}
ROTATE_NORMAL = {
    ("normal", 1, "rotated_prior", 2, 0.5, ()),
    ("normal", 1, "rotated_prior", 3, 1.0, ()),
    ("normal", 1, "rotated_prior", 4, 1.5, ()),
    ("normal", 2, "rotated_prior", 3, 0.5, ()),
    ("normal", 2, "rotated_prior", 4, 1.0, ()),
    ("normal", 3, "rotated_prior", 4, 0.5, ()),
}
ROTATE_BACK = {
    ("back", 3, "rotated_prior", 2, -0.5, ()),
    ("back", 3, "rotated_prior", 1, -1.0, ()),
    ("back", 3, "rotated_prior", 0, -1.5, ()),
    ("back", 2, "rotated_prior", 1, -0.5, ()),
    ("back", 2, "rotated_prior", 0, -1.0, ()),
    ("back", 1, "rotated_prior", 0, -0.5, ()),
}
DIFF1_NORMAL = {
    ("normal", 1, "prediction", 2, 0.5, (0, 1)),
    ("normal", 1, "prediction", 3, 1.0, (0, 1)),
    ("normal", 1, "prediction", 4, 1.5, (0, 1)),
    ("normal", 2, "prediction", 3, 0.5, (0, 2)),
    ("normal", 2, "prediction", 4, 1.0, (0, 2)),
    ("normal", 3, "prediction", 4, 0.5, (0, 3)),
}
DIFF1_BACK = {
    ("back", 3, "prediction", 2, -0.5, (4, 3)),
    ("back", 3, "prediction", 1, -1.0, (4, 3)),
    ("back", 3, "prediction", 0, -1.5, (4, 3)),
    ("back", 2, "prediction", 1, -0.5, (4, 2)),
    ("back", 2, "prediction", 0, -1.0, (4, 2)),
    ("back", 1, "prediction", 0, -0.5, (4, 1)),
}
DIFF2_NORMAL = {
    ("normal", 2, "prediction", 3, 0.5, (0, 1, 2)),
    ("normal", 2, "prediction", 4, 1.0, (0, 1, 2)),
    ("normal", 3, "prediction", 4, 0.5, (0, 1, 3)),
    ("normal", 3, "prediction", 4, 0.5, (0, 2, 3)),
}
DIFF2_BACK = {
    ("back", 2, "prediction", 1, -0.5, (4, 3, 2)),
    ("back", 2, "prediction", 0, -1.0, (4, 3, 2)),
    ("back", 1, "prediction", 0, -0.5, (4, 3, 1)),
    ("back", 1, "prediction", 0, -0.5, (4, 2, 1)),
}


@pytest.mark.parametrize(
    ("regime", "expected"),
    [
        ({}, BASE_NORMAL),
        ({"back": True}, BASE_NORMAL | BASE_BACK),
        ({"rotate": True}, BASE_NORMAL | ROTATE_NORMAL),
        ({"back": True, "rotate": True}, BASE_NORMAL | BASE_BACK | ROTATE_NORMAL | ROTATE_BACK),
        ({"diff": 1}, BASE_NORMAL | DIFF1_NORMAL),
        ({"diff": 2}, BASE_NORMAL | DIFF1_NORMAL | DIFF2_NORMAL),
        ({"back": True, "diff": 2}, BASE_NORMAL | BASE_BACK | DIFF1_NORMAL | DIFF1_BACK | DIFF2_NORMAL | DIFF2_BACK),
        (
            {"back": True, "rotate": True, "diff": 2},  # combined
            BASE_NORMAL | BASE_BACK | ROTATE_NORMAL | ROTATE_BACK | DIFF1_NORMAL | DIFF1_BACK | DIFF2_NORMAL | DIFF2_BACK,
        ),
    ],
    ids=["base", "back", "rotate", "back+rotate", "diff1", "diff2", "back+diff2", "combined"],
)
def test_every_regime_gives_exactly_the_hand_written_records(regime, expected):
    examples = build(**regime)
    assert len(examples) == len(expected)  # no duplicates
    assert records(examples) == expected


def test_examples_are_sorted_by_way_start_target():
    examples = build(back=True, rotate=True, diff=2)
    keys = [(0 if e.way == "normal" else 1, e.start_index, e.target_index) for e in examples]
    assert keys == sorted(keys)


def test_steps_use_one_normalisation_in_seconds_and_are_negative_on_the_back_way():
    # Uneven frame times and time_scale 0.5: every step is (t_target - t_start) / 0.5 whatever the source.
    times = [0.0, 0.2, 0.7, 1.5]
    examples = build(times=times, time_scale=0.5, back=True, rotate=True, diff=1)
    for e in examples:
        assert e.step == pytest.approx((times[e.target_index] - times[e.start_index]) / 0.5)
        assert (e.step < 0) == (e.way == "back")
        assert e.step != 0


def test_chains_step_through_frames_in_the_ways_time_order():
    for e in build(back=True, diff=3):
        if e.start_source != "prediction":
            assert e.chain == ()
            continue
        path = [*e.chain, e.target_index]
        assert e.chain[0] == (0 if e.way == "normal" else 4)
        assert e.chain[-1] == e.start_index
        diffs = np.diff(path)
        assert (diffs > 0).all() if e.way == "normal" else (diffs < 0).all()


@pytest.mark.parametrize("budget", [1, 3, 5])
def test_budget_is_per_component_and_way(budget):
    examples = build(back=True, rotate=True, diff=2, pairs_per_video=budget)
    counts: dict[tuple, int] = {}
    for e in examples:
        key = (e.way, e.start_source, len(e.chain))
        counts[key] = counts.get(key, 0) + 1
    # 4 base examples per way, 6 rotate, 6 diff-1 and 4 diff-2: each capped by the budget.
    expected = {"prior": 4, "rotated_prior": 6}
    for way in ("normal", "back"):
        assert counts[(way, "prior", 0)] == min(budget, expected["prior"])
        assert counts[(way, "rotated_prior", 0)] == min(budget, expected["rotated_prior"])
        assert counts[(way, "prediction", 2)] == min(budget, 6)
        assert counts[(way, "prediction", 3)] == min(budget, 4)
    assert records(examples) <= (
        BASE_NORMAL | BASE_BACK | ROTATE_NORMAL | ROTATE_BACK | DIFF1_NORMAL | DIFF1_BACK | DIFF2_NORMAL | DIFF2_BACK
    )


def test_same_seed_same_examples_and_other_seeds_differ():
    regime = {"back": True, "rotate": True, "diff": 1, "pairs_per_video": 3}
    assert build(seed=7, **regime) == build(seed=7, **regime)
    assert len({tuple(build(seed=s, **regime)) for s in range(6)}) > 1


def test_sampling_is_uniform_over_pairs_not_biased_to_early_starts():
    # B14: with a budget of 1 among the 6 rotate pairs, every pair is drawn about equally often.
    counts: dict[tuple, int] = {}
    rng = np.random.default_rng(0)
    for _ in range(3000):
        (e,) = [x for x in build_examples(TIMES, RegimeConfig(rotate=True, pairs_per_video=1), 1.0, rng)
                if x.start_source == "rotated_prior"]
        counts[(e.start_index, e.target_index)] = counts.get((e.start_index, e.target_index), 0) + 1
    assert set(counts) == {(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)}
    assert all(abs(c / 3000 - 1 / 6) < 0.03 for c in counts.values())


def test_sample_combinations_draws_distinct_subsets_from_huge_spaces():
    rng = np.random.default_rng(0)
    combos = sample_combinations(60, 4, 50, rng)  # C(60, 4) = 487635, never enumerated
    assert len(combos) == len(set(combos)) == 50
    assert all(len(c) == 4 and list(c) == sorted(set(c)) and 0 <= c[0] and c[-1] < 60 for c in combos)
    assert sample_combinations(4, 2, 100, rng) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert sample_combinations(2, 3, 10, rng) == []
    assert math.comb(60, 4) > 10_000


def test_short_videos_give_only_the_examples_that_exist():
    assert records(build(times=[0.0, 1.0], back=True, rotate=True, diff=2)) == {
        ("normal", 0, "prior", 1, 1.0, ()),
        ("back", 1, "prior", 0, -1.0, ()),
    }
    assert build(times=[0.0]) == []


@pytest.mark.parametrize(
    ("times", "message"),
    [([0.0, 1.0, 0.5], "strictly increasing"), ([0.0, 0.0, 1.0], "strictly increasing"), ([0.0, float("nan")], "NaN")],
)
def test_unsorted_or_bad_times_are_refused(times, message):
    with pytest.raises(ValueError, match=message):
        build(times=times)


@pytest.mark.parametrize(
    "bad",
    [{"diff": -1}, {"diff_grad": "sometimes"}, {"pairs_per_video": 0}, {"rotation_convention": "row"},
     {"back": 1}, {"rotation_power": -1.0}],
)
def test_invalid_regime_configs_are_refused(bad):
    with pytest.raises(ValueError, match="RegimeConfig"):
        RegimeConfig(**bad)


def test_time_scale_must_be_positive():
    with pytest.raises(ValueError, match="time_scale"):
        build(time_scale=0.0)


def test_config_round_trips_through_a_dict():
    config = RegimeConfig(back=True, rotate=True, diff=2, diff_grad="backprop", pairs_per_video=5)
    assert RegimeConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown fields"):
        RegimeConfig.from_dict({"bogus": 1})


@pytest.mark.parametrize("power", [0.5, 1.5, math.inf, "1"])
def test_a_fractional_rotation_power_is_refused_when_the_config_is_built(power):
    from spliter.rollout import RolloutConfig

    for config in (RegimeConfig, RolloutConfig):
        with pytest.raises(ValueError, match=rf"{config.__name__}.rotation_power must be a whole number"):
            config(rotation_power=power)
    assert RegimeConfig(rotation_power=2.0).rotation_power == 2.0 and RegimeConfig(rotation_power=0).rotation_power == 0


def test_the_start_field_sets_each_examples_anchor():
    times = np.arange(6) * 0.5
    regime = RegimeConfig(back=True, rotate=True, diff=1, pairs_per_video=4)
    prior = build_examples(times, regime, 1.0, np.random.default_rng(0))
    assert {e.anchor for e in prior} == {"prior"}
    true = build_examples(times, RegimeConfig(**{**regime.to_dict(), "start": "true"}), 1.0, np.random.default_rng(0))
    assert [(e.way, e.start_index, e.target_index, e.chain) for e in true] == [
        (e.way, e.start_index, e.target_index, e.chain) for e in prior]  # the same examples, other anchor
    assert {e.anchor for e in true} == {"true"}
    both = build_examples(times, RegimeConfig(**{**regime.to_dict(), "start": "both"}), 1.0, np.random.default_rng(0))
    assert len(both) == len(prior) and {e.anchor for e in both} == {"prior", "true"}
    again = build_examples(times, RegimeConfig(**{**regime.to_dict(), "start": "both"}), 1.0, np.random.default_rng(0))
    assert both == again
    with pytest.raises(ValueError, match="RegimeConfig.start='first' is not one of"):
        RegimeConfig(start="first")
