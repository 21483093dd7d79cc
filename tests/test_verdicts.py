"""ablations.verdicts: an expectation holds exactly when the 95 % seed intervals lie strictly apart."""

import json

import pandas as pd
import pytest

from ablations.study import Expectation
from ablations.verdicts import expand, judge, read_failed, seed_interval, write_verdicts

METRIC = "embed_cosine[{mode},start=true,split=test]"


def scores(values: dict[str, dict[int, list[float]]], metric: str = "m", higher: bool = True) -> pd.DataFrame:
    """Video rows: variant -> seed -> one value per video."""
    rows = [
        {"variant": variant, "seed": seed, "metric": metric, "value": value, "higher_is_better": higher,
         "prompt_id": f"v{i}"}
        for variant, per_seed in values.items() for seed, videos in per_seed.items() for i, value in enumerate(videos)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_seed_interval_averages_videos_first_then_takes_a_t_interval_over_seeds():
    frame = scores({"a": {0: [0.8, 1.0], 1: [1.0, 1.0], 2: [1.1, 1.1]}})
    got = seed_interval(frame, "a", "m")
    # per-seed means 0.9, 1.0, 1.1: sd 0.1, t(0.975, 2) = 4.3027
    assert got.mean == pytest.approx(1.0)
    assert got.high - got.mean == pytest.approx(4.302653 * 0.1 / 3**0.5, rel=1e-5)
    assert got.n_seeds == 3


def test_a_deterministic_baseline_is_a_point_and_a_separated_interval_beats_it():
    frame = scores({"model": {0: [0.90], 1: [0.92], 2: [0.91]}, "static": {0: [0.80, 0.82]}})
    [verdict] = judge(frame, [Expectation("model", ["static"], "m")])
    assert verdict.held and verdict.expectation == "model beats static"
    assert "static 0.8100 (1 run)" in verdict.detail and "over 3 seeds" in verdict.detail


def test_overlapping_intervals_fail_even_when_the_mean_is_better():
    frame = scores({"model": {0: [0.80], 1: [0.95], 2: [0.88]}, "control": {0: [0.84], 1: [0.86], 2: [0.85]}})
    [verdict] = judge(frame, [Expectation("model", ["control"], "m")])
    assert seed_interval(frame, "model", "m").mean > seed_interval(frame, "control", "m").mean
    assert not verdict.held


def test_lower_is_better_metrics_need_the_interval_below():
    frame = scores({"model": {0: [1.0], 1: [1.1]}, "static": {0: [2.0]}}, higher=False)
    assert judge(frame, [Expectation("model", ["static"], "m")])[0].held
    assert not judge(frame, [Expectation("static", ["model"], "m")])[0].held


def test_each_mode_and_each_beaten_name_is_its_own_verdict():
    exp = Expectation("model", ["static", "text_blind"], METRIC, modes=["step", "chain"])
    assert expand(exp) == [("step", METRIC.format(mode="step")), ("chain", METRIC.format(mode="chain"))]
    frame = pd.concat([
        scores({"model": {0: [0.9], 1: [0.91]}, "static": {0: [0.5]}, "text_blind": {0: [0.6], 1: [0.6]}},
               metric=METRIC.format(mode=mode)) for mode in ("step", "chain")
    ])  # fmt: skip
    verdicts = judge(frame, [exp])
    assert [v.expectation for v in verdicts] == [
        "model beats static in step mode", "model beats text_blind in step mode",
        "model beats static in chain mode", "model beats text_blind in chain mode",
    ]  # fmt: skip
    # text_blind has two identical seeds: a zero-width interval that the model clears.
    assert all(v.held for v in verdicts)


def test_a_metric_that_was_not_scored_is_named():
    frame = scores({"model": {0: [0.9]}, "static": {0: [0.5]}})
    with pytest.raises(ValueError, match=r"no rows of metric 'embed_cosine\[step"):
        judge(frame, [Expectation("model", ["static"], METRIC, modes=["step"])])


def test_written_verdicts_follow_the_results_schema_and_failures_are_read_back(tmp_path):
    frame = scores({"model": {0: [0.9], 1: [0.91]}, "static": {0: [0.95]}})
    verdicts = judge(frame, [Expectation("model", ["static"], "m")])
    path = write_verdicts(verdicts, tmp_path)
    [entry] = json.loads(path.read_text())
    assert {k: type(v) for k, v in entry.items()} == {"expectation": str, "held": bool, "metric": str, "detail": str}
    assert read_failed(tmp_path) == [entry]
    assert read_failed(tmp_path / "nowhere") == []
