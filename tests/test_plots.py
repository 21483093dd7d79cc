"""plots: each figure builds from synthetic results with the expected axes, lines and points, and saves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from PIL import Image
from test_build import EMBED_ERR, FVD, TEMPORAL, synthetic_curves, synthetic_scores, synthetic_study

from reports import effects, plots, tables
from reports.load import parse_scores


@pytest.fixture(scope="module")
def study() -> dict:
    return synthetic_study()


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    return parse_scores(synthetic_scores(np.random.default_rng(0)), Path("scores.parquet"))


@pytest.fixture(scope="module")
def summary(scores: pd.DataFrame, study: dict) -> pd.DataFrame:
    return tables.summary(scores, study)


def test_palette_is_fixed_by_the_study_with_grey_baselines(study: dict) -> None:
    colours = plots.palette(study)
    assert list(colours) == ["static", "base", "rot"]
    assert len(set(colours["static"])) == 1  # a grey
    assert colours["base"] != colours["rot"] and plots.palette(study, ["rot"]) == colours


def points(ax) -> list:
    """The marker lines of a point plot (one per variant), in x order."""
    return [line for line in ax.get_lines() if line.get_marker() == "o"]


def test_metric_points_draws_one_point_and_interval_per_variant(summary: pd.DataFrame, study: dict) -> None:
    figure = plots.metric_points(summary, study, TEMPORAL)
    (ax,) = figure.axes
    assert len(ax.containers) == 3  # one error bar per variant
    assert [label.get_text() for label in ax.get_xticklabels()] == ["static", "base", "rot"]
    row = summary.loc[summary["variant"].eq("rot") & summary["metric"].eq(TEMPORAL)].iloc[0]
    assert points(ax)[2].get_ydata()[0] == pytest.approx(row["mean"])
    (bar,) = ax.containers[2].lines[2]  # the vertical bar spans exactly the table's interval
    assert sorted(bar.get_segments()[0][:, 1]) == pytest.approx([row["ci_low"], row["ci_high"]])
    assert all(container.has_yerr for container in ax.containers)
    colours = plots.palette(study)
    assert [to_rgb(line.get_color()) for line in points(ax)] == [
        to_rgb(colours[name]) for name in ["static", "base", "rot"]
    ]
    assert [text.get_text() for text in ax.texts] == ["★"]  # the best variant, and no unreliable one


def test_an_interval_that_excludes_its_estimate_is_drawn_as_stored(study: dict) -> None:
    """A stored bootstrap interval may lie wholly above its point (a biased Fréchet distance): no crash,
    the bar spans the stored interval and the point stays where it is."""
    summary = pd.DataFrame({
        "metric": "fvd", "variant": ["static", "base"], "mean": [10.0, 20.0], "ci_low": [12.0, 15.0],
        "ci_high": [14.0, 25.0], "reliable": True, "best": [True, False], "higher_is_better": False,
    })  # fmt: skip
    (ax,) = plots.metric_points(summary, study, "fvd").axes
    (bar,) = ax.containers[0].lines[2]
    assert sorted(bar.get_segments()[0][:, 1]) == pytest.approx([12.0, 14.0])
    assert points(ax)[0].get_ydata()[0] == 10.0


def test_metric_points_can_show_a_subset_of_variants(summary: pd.DataFrame, study: dict) -> None:
    (ax,) = plots.metric_points(summary, study, TEMPORAL, variants=["rot", "static"]).axes
    assert [label.get_text() for label in ax.get_xticklabels()] == ["static", "rot"]  # study order kept
    with pytest.raises(plots.NothingToPlot, match=r"\['nope'\] have no rows"):
        plots.metric_points(summary, study, TEMPORAL, variants=["nope"])


def test_unreliable_points_are_hollow_and_flagged(summary: pd.DataFrame, study: dict) -> None:
    (ax,) = plots.metric_points(summary, study, FVD).axes
    faces = [to_rgb(line.get_markerfacecolor()) for line in points(ax)]
    assert faces == [(1.0, 1.0, 1.0)] * 3
    assert [text.get_text() for text in ax.texts] == ["⚠"] * 3


def test_heatmap_has_a_cell_per_variant_and_metric_with_its_interval(scores: pd.DataFrame, study: dict) -> None:
    matrix = effects.difference_matrix(scores, study, reference="static", metrics=[TEMPORAL, FVD])
    figure = plots.metric_heatmap(matrix, study)
    (ax,) = figure.axes
    assert [label.get_text() for label in ax.get_yticklabels()] == ["static", "base", "rot"]
    assert [label.get_text().split("\n")[0] for label in ax.get_xticklabels()] == ["clip_temporal_consecutive", "fvd"]
    texts = [text.get_text() for text in ax.texts]
    assert texts.count("reference") == 2
    row = matrix[(matrix["variant"] == "rot") & (matrix["metric"] == TEMPORAL)].iloc[0]
    column = matrix[matrix["metric"] == TEMPORAL]
    places = plots.column_decimals([*column["diff"], *column["diff_low"], *column["diff_high"]])
    low, high = plots.signed(row["diff_low"], places), plots.signed(row["diff_high"], places)
    expected = f"{plots.signed(row['diff'], places)}\n[{low}, {high}]"
    assert expected in texts
    assert sum("⚠" in text for text in texts) == 2  # the unreliable FVD rows of base and rot
    image = ax.get_images()[0].get_array()
    gain_rot, gain_base = (matrix.set_index(["variant", "metric"]).loc[(name, FVD), "gain"] for name in ("rot", "base"))
    assert gain_rot > 0 and gain_base > 0  # lower FVD than static: better, so blue (more blue than red)
    assert image[2, 1, 2] > image[2, 1, 0]


def test_column_decimals_show_two_significant_digits_of_the_largest_value() -> None:
    assert plots.column_decimals([0.15, -0.026, float("nan")]) == 3
    assert plots.column_decimals([20.6, -4.5]) == 1
    assert plots.signed(0.02612, 3) == "+0.026" and plots.signed(-0.5, 1) == "-0.5" and plots.signed(float("nan")) == "—"


def test_counterweight_metrics_stay_uncoloured(scores: pd.DataFrame, study: dict) -> None:
    matrix = effects.difference_matrix(scores, study, reference="static", metrics=[TEMPORAL]).assign(ranked=False)
    image = plots.metric_heatmap(matrix, study).axes[0].get_images()[0].get_array()
    assert (image[1:, 0] == 1.0).all()  # white: no better or worse


def test_heatmap_of_nothing_is_a_clear_message(study: dict) -> None:
    with pytest.raises(plots.NothingToPlot, match="difference matrix is empty"):
        plots.metric_heatmap(pd.DataFrame(columns=list(effects.MATRIX_COLUMNS)), study)


def test_many_long_variant_names_rotate_and_widen(study: dict) -> None:
    names = [f"variant_with_a_long_name_{index}" for index in range(8)]
    summary = pd.DataFrame({
        "metric": "m", "variant": names, "mean": np.arange(8.0), "ci_low": np.arange(8.0) - 1,
        "ci_high": np.arange(8.0) + 1, "reliable": True, "best": False, "higher_is_better": True,
    })  # fmt: skip
    figure = plots.metric_points(summary, {**study, "variant_order": names}, "m")
    assert (
        figure.get_figwidth() > plots.metric_points(pd.DataFrame(summary.iloc[:2]), study, "m").get_figwidth()
    )
    assert figure.axes[0].get_xticklabels()[0].get_rotation() > 0


def test_horizon_growth_has_a_panel_per_mode_and_a_line_per_variant(
    scores: pd.DataFrame, study: dict
) -> None:
    horizon = tables.horizon_table(scores, study)
    figure = plots.horizon_growth(horizon, study, EMBED_ERR)
    assert [ax.get_title() for ax in figure.axes] == [f"{EMBED_ERR} (step)", f"{EMBED_ERR} (chain)"]
    for ax in figure.axes:
        assert len(ax.get_lines()) == 3
        assert [len(line.get_xdata()) for line in ax.get_lines()] == [3, 3, 3]
        assert len(ax.collections) == 3  # one interval band per variant


def test_training_curves_show_each_variant_and_split(study: dict) -> None:
    curves = synthetic_curves(np.random.default_rng(0))
    figure = plots.training_curves(curves, study)
    assert [ax.get_title() for ax in figure.axes] == ["loss", "cosine"]
    for ax in figure.axes:
        lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 4]
        assert len(lines) == 4  # 2 variants × (train, val), 4 epochs each
        assert len({line.get_linestyle() for line in lines}) == 2


def test_ablation_effects_has_a_panel_per_switch_and_a_row_per_pair(scores: pd.DataFrame, study: dict) -> None:
    effects = tables.ablation_table(scores, study, TEMPORAL)
    (ax,) = plots.ablation_effects(effects, study, TEMPORAL).axes
    assert ax.get_title(loc="left") == "rotation_layer: off→plane"
    assert [label.get_text() for label in ax.get_yticklabels()] == ["base → rot"]
    assert len(ax.containers) == 1 and ax.containers[0].has_xerr
    row = effects.iloc[0]
    (bar,) = ax.containers[0].lines[2]
    assert sorted(bar.get_segments()[0][:, 0]) == pytest.approx([row["diff_low"], row["diff_high"]])


def many_variants_study(count: int = 22) -> tuple[dict, list[str]]:
    names = [f"regime{index // 4}-plane-attention-{index}" for index in range(count)]
    return {"study": "s", "variant_order": names, "baselines": [], "variants": {n: {} for n in names}}, names


def saved_without_layout_warnings(figure, path: Path) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plots.save_figure(figure, path)
    assert not [w for w in caught if "constrained_layout" in str(w.message)], [str(w.message) for w in caught]


def test_many_variants_get_one_legend_under_the_panels_and_a_clean_layout(tmp_path: Path) -> None:
    study, names = many_variants_study()
    horizon = pd.DataFrame([
        {"metric": "h", "mode": mode, "variant": name, "horizon": k, "mean": 1 - 0.01 * k, "ci_low": 0.9,
         "ci_high": 1.0}
        for mode in ("step", "chain") for name in names for k in range(1, 6)
    ])  # fmt: skip
    curves = pd.DataFrame([
        {"variant": name, "seed": seed, "epoch": epoch, "split": split, "metric": metric, "value": 1.0 / (epoch + 1)}
        for name in names for seed in (0, 1) for epoch in range(3) for split in ("train", "val")
        for metric in ("loss", "cosine")
    ])  # fmt: skip
    for name, figure in (("horizon", plots.horizon_growth(horizon, study, "h")),
                         ("curves", plots.training_curves(curves, study))):  # fmt: skip
        assert all(ax.get_legend() is None for ax in figure.axes)
        (legend,) = figure.legends
        labels = [text.get_text() for text in legend.get_texts()]
        assert labels[: len(names)] == names
        saved_without_layout_warnings(figure, tmp_path / name)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda study: plots.metric_points(pd.DataFrame({"metric": []}), study, "m"),
            "no summary rows for metric 'm'",
        ),
        (lambda study: plots.horizon_growth(pd.DataFrame({"metric": []}), study, "m"), "no horizon rows"),
        (lambda study: plots.training_curves(pd.DataFrame(), study), "curves.parquet has no rows"),
        (lambda study: plots.ablation_effects(pd.DataFrame(), study, "m"), "exactly one switch"),
    ],
)
def test_empty_input_is_a_clear_message_not_an_empty_plot(make, message: str, study: dict) -> None:
    with pytest.raises(plots.NothingToPlot, match=message):
        make(study)


def test_save_figure_writes_png_at_120_dpi_and_pdf(
    summary: pd.DataFrame, study: dict, tmp_path: Path
) -> None:
    figure = plots.metric_points(summary, study, TEMPORAL)
    png = plots.save_figure(figure, tmp_path / "figures" / "points")
    assert png == tmp_path / "figures" / "points.png"
    assert png.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    with Image.open(png) as image:
        assert image.size == (round(figure.get_figwidth() * 120), round(figure.get_figheight() * 120))
