# %% [markdown]
# <!-- Report template: every cell calls a tested function of reports.build; edit those, not this file. -->

# %% tags=["parameters"]
study_root = ""

# %%
from reports import build

page = build.open_page(study_root)
build.protocol_section(page)

# %%
build.headline_section(page)

# %% [markdown]
# ## Metrics by variant

# %%
build.metric_section(page)

# %% [markdown]
# ## Error along the horizon

# %%
build.horizon_section(page)

# %% [markdown]
# ## Training curves

# %%
build.curves_section(page)

# %% [markdown]
# ## Ablation: one switch at a time

# %%
build.ablation_section(page)

# %% [markdown]
# ## Generated videos

# %%
build.gif_section(page)
