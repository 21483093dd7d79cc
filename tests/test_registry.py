"""Metric specs: names carry the protocol, rows carry the documented columns and never NaN."""

import json

import numpy as np
import pytest

from metrics.registry import (
    ROW_COLUMNS,
    MetricError,
    MetricSpec,
    NonFiniteScore,
    clip_consistency_spec,
    embedding_specs,
    fid_spec,
    fvd_spec,
    pixel_motion_spec,
    protocol_name,
)

SPEC = MetricSpec("clip_temporal_consecutive[openclip:tiny-vit]", "video", True, "1")


def test_row_has_exactly_the_results_columns_and_json_extra():
    row = SPEC.row(np.float32(0.5), 8, prompt_id="p1", sample_idx=0, gen_seed=7, extra={"encoder": "x"})
    assert tuple(row) == ROW_COLUMNS
    assert row["value"] == 0.5 and type(row["value"]) is float
    assert row["n"] == 8 and row["reliable"] is True and row["higher_is_better"] is True
    assert (row["prompt_id"], row["sample_idx"], row["gen_seed"]) == ("p1", 0, 7)
    assert json.loads(row["extra"]) == {"encoder": "x"}
    assert json.loads(SPEC.row(1.0, 1)["extra"]) == {}


def test_counterweight_metrics_say_in_their_rows_that_they_are_not_ranked():
    motion = pixel_motion_spec()
    assert not motion.ranked and SPEC.ranked
    assert json.loads(motion.row(2.5, 7, prompt_id="p", extra={"a": 1})["extra"]) == {"a": 1, "ranked": False}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -np.inf])
def test_row_rejects_non_finite_values_naming_the_metric(value):
    with pytest.raises(NonFiniteScore, match=r"clip_temporal_consecutive\[openclip:tiny-vit\]"):
        SPEC.row(value, 3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"value": "high", "n": 3},
        {"value": True, "n": 3},
        {"value": 1.0, "n": 0},
        {"value": 1.0, "n": 2.5},
        {"value": 1.0, "n": 3, "sample_idx": 1.5},
        {"value": 1.0, "n": 3, "extra": {"ci": float("nan")}},
        {"value": 1.0, "n": 3, "extra": {"obj": object()}},
    ],
)
def test_row_rejects_bad_inputs(kwargs):
    with pytest.raises(ValueError, match="clip_temporal_consecutive"):
        SPEC.row(**kwargs)


def test_set_rows_have_no_prompt_or_sample():
    spec = fvd_spec("i3d-videogpt", 16, 224)
    row = spec.row(12.5, 64, reliable=False, extra={"ci_low": 10.0, "ci_high": 15.0, "n_boot": 200})
    assert row["level"] == "set" and row["reliable"] is False and row["higher_is_better"] is False
    with pytest.raises(MetricError, match="set-level"):
        spec.row(12.5, 64, prompt_id="p1")


def test_spec_rejects_unknown_level():
    with pytest.raises(MetricError, match="level"):
        MetricSpec("x", "frame", True, "1")


def test_names_carry_every_protocol_parameter():
    assert fvd_spec("i3d-videogpt", 16, 224).name == "fvd[i3d-videogpt,16f,224]"
    assert fid_spec("inception-2048", 299).name == "fid[inception-2048,299]"
    assert clip_consistency_spec("consecutive", "openclip:ViT-L-14").name == (
        "clip_temporal_consecutive[openclip:ViT-L-14]"
    )
    names = {
        fvd_spec("i3d-videogpt", 16, 224).name,
        fvd_spec("i3d-videogpt", 16, 128).name,
        fvd_spec("i3d-videogpt", 10, 224).name,
        fvd_spec("i3d-tfhub", 16, 224).name,
        clip_consistency_spec("consecutive", "a").name,
        clip_consistency_spec("all_pairs", "a").name,
        clip_consistency_spec("consecutive", "b").name,
    }
    assert len(names) == 7
    step, chain = embedding_specs("step"), embedding_specs("chain")
    prior = embedding_specs("step", start="prior")
    assert not {s.name for s in step.values()} & {s.name for s in chain.values()}
    assert not {s.name for s in step.values()} & {s.name for s in prior.values()}
    assert step["error_growth"].higher_is_better is False and step["cosine"].higher_is_better is True


@pytest.mark.parametrize("base, params", [("FVD", ()), ("fvd", ("a,b",)), ("fvd", ("x]",)), ("fvd", ("",))])
def test_protocol_name_rejects_ambiguous_parts(base, params):
    with pytest.raises(MetricError):
        protocol_name(base, *params)


def test_unknown_consistency_mode_and_start_are_rejected():
    with pytest.raises(MetricError, match="mode"):
        clip_consistency_spec("pairs", "enc")
    with pytest.raises(MetricError, match="start"):
        embedding_specs("step", start="noise")
