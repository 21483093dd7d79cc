"""effects: the reference variant from study.json axes, and paired differences to it per variant × metric."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_build import FVD, TEMPORAL, synthetic_scores, synthetic_study

from reports import effects, tables
from reports.load import parse_scores


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    return parse_scores(synthetic_scores(np.random.default_rng(0)), Path("scores.parquet"))


def test_the_reference_has_every_axis_at_its_first_level() -> None:
    study = synthetic_study()
    assert effects.reference_variant(study) == "base"
    study["axes"]["rotation_layer"] = ["plane", "off"]
    assert effects.reference_variant(study) == "rot"


def test_without_axes_the_reference_is_static_else_the_first_trained_variant() -> None:
    study = {**synthetic_study(), "axes": None}
    assert effects.reference_variant(study) == "static"
    assert effects.reference_variant(study, present=["base", "rot"]) == "base"


def test_each_cell_is_the_paired_difference_to_the_reference(scores: pd.DataFrame) -> None:
    study = synthetic_study()
    matrix = effects.difference_matrix(scores, study, reference="base", metrics=[TEMPORAL, FVD])
    assert list(matrix["metric"].unique()) == [TEMPORAL, FVD]
    cell = matrix.set_index(["variant", "metric"]).loc[("rot", TEMPORAL)]
    rows = tables.headline_rows(scores)
    expected = tables.paired_difference(
        rows[(rows["variant"] == "rot") & (rows["metric"] == TEMPORAL)],
        rows[(rows["variant"] == "base") & (rows["metric"] == TEMPORAL)],
    )
    assert (cell["diff"], cell["diff_low"], cell["diff_high"]) == pytest.approx((expected.mean, expected.low, expected.high))
    assert cell["gain"] == pytest.approx(expected.mean)  # higher is better: gain = Δ
    fvd = matrix.set_index(["variant", "metric"]).loc[("rot", FVD)]
    assert fvd["gain"] == pytest.approx(-fvd["diff"])  # lower is better: gain flips the sign
    assert not fvd["reliable"]
    reference = matrix.set_index(["variant", "metric"]).loc[("base", TEMPORAL)]
    assert reference["interval"] == "reference" and math.isnan(reference["diff"])
    assert cell["excludes_zero"] == bool(expected.low > 0 or expected.high < 0)


def test_a_metric_without_rows_is_a_clear_error(scores: pd.DataFrame) -> None:
    with pytest.raises(tables.SummaryError, match="no difference matrix"):
        effects.difference_matrix(scores, synthetic_study(), reference="base", metrics=["nope"])
