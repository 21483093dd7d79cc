# %% [markdown]
# <!-- Report template (a Jupytext percent script). Each cell calls tested functions of reports/ with visible
#      arguments: change an argument and re-run the cell; change the functions themselves in reports/. -->

# %% tags=["parameters"]
study_root = ""

# %%
from reports import effects, notebook, plots, tables
from reports.load import load_results

results = load_results(study_root)  # tidy tables: results.scores, .runs, .curves, .videos, .expectations
study, scores, curves = results.study, results.scores, results.curves
summary = tables.summary(scores, study)  # one row per metric x variant: mean, 95% interval, diff to static, best
headline = tables.headline_metric(scores, study)  # or any name in summary["metric"]
variants = None  # every variant; or a list such as ["static", "base"]
page = notebook.Page(".")  # figures/, tables/ and gifs/ of this report folder

# %%
notebook.title(results)

# %% [markdown]
# ## Protocol

# %%
page.table(tables.protocol_table(results), "protocol", caption="What was run, on what, with which code")

# %%
notebook.verdicts(results)

# %% [markdown]
# ## Headline

# %%
page.table(notebook.headline_table(summary, headline), "headline",
           caption=f"{headline}: mean [95% interval] per variant, difference to static",
           notes=" ".join(filter(None, [tables.SUMMARY_CAPTION, notebook.frame_baseline_note(study)])))
page.table(tables.fair_headline(scores, study, headline), "headline-margins",
           caption=f"{headline}: each variant against the best baseline and the text-blind control",
           notes=tables.FAIR_HEADLINE_CAPTION)
page.table(tables.budget_table(results.runs, study), "budgets",
           caption="Training budget per variant: optimiser steps, examples seen, training seconds")

# %% [markdown]
# ## Generated videos

# %%
notebook.gif_grid(page, results, max_prompts=8)

# %% [markdown]
# ## Every metric at a glance

# %%
reference = effects.reference_variant(study, scores["variant"])  # or any variant name
key_metrics = tables.key_metrics(summary["metric"], headline)  # or list(summary["metric"].unique())
matrix = effects.difference_matrix(scores, study, reference=reference, metrics=key_metrics)
with page.or_reason():
    page.figure(plots.metric_heatmap(matrix, study, variants=variants), "overview-heatmap",
                caption=plots.HEATMAP_CAPTION.format(reference=reference), title=f"Paired differences to {reference}")

# %%
page.table(tables.overview(summary, study, headline), "overview", caption="Means of the key metrics",
           notes=" ".join(filter(None, [notebook.OVERVIEW_CAPTION, notebook.frame_baseline_note(study)])))
page.text("The full table, every metric x variant with its interval and the difference to the static baseline: "
          + page.files(tables.format_summary(summary), "all_metrics") + ".")

# %% [markdown]
# ## Metrics one by one

# %%
named = notebook.expectation_metrics(results)  # the metrics the verdicts are about
detailed = tables.detail_metrics(summary["metric"], headline, named=named)  # or list(summary["metric"].unique())
page.text(notebook.detail_note(detailed, summary["metric"]) + " " + plots.POINTS_CAPTION)
for metric in detailed:
    with page.or_reason():
        page.figure(plots.metric_points(summary, study, metric=metric, variants=variants), f"metric-{metric}",
                    caption=notebook.points_caption(summary, metric), title=metric)

# %% [markdown]
# ## Error along the horizon

# %%
horizon = tables.horizon_table(scores, study)
notebook.horizon_files(page, horizon)
horizon_detailed = tables.detail_metrics(horizon["metric"], headline, named=named)  # same rule as above
if len(horizon_detailed) < horizon["metric"].nunique():
    page.text(notebook.detail_note(horizon_detailed, horizon["metric"], table="horizon"))
for metric in horizon_detailed:
    with page.or_reason():
        page.figure(plots.horizon_growth(horizon, study, metric=metric, variants=variants), f"horizon-{metric}",
                    caption=plots.HORIZON_CAPTION, title=metric)

# %% [markdown]
# ## Training curves

# %%
with page.or_reason():
    page.figure(plots.training_curves(curves, study, variants=variants), "curves", caption=plots.CURVES_CAPTION,
                title="Loss and cosine per epoch")

# %% [markdown]
# ## Ablation: one switch at a time

# %%
switches = tables.ablation_table(scores, study, headline, runs=results.runs)
with page.or_reason():
    page.figure(plots.ablation_effects(switches, study, headline), "ablation", caption=plots.ABLATION_CAPTION,
                title=f"Effect of each switch on {headline}")
notebook.ablation_rows(page, switches)

# %% [markdown]
# ## Skipped videos

# %%
notebook.skipped_videos(page, results)

# %% [markdown]
# ## The data behind this page
# Every number above is computed from these tidy tables (`results.scores`, `results.runs`, `results.curves`,
# `results.videos`); the first rows of `scores`:

# %%
scores.drop(columns=["extra"]).head(8)
