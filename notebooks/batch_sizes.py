# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Batch normalization and the batch size
#
# BN normalizes with the statistics of the batch in training and with moving averages
# of them in inference. The smaller the batch, the noisier its statistics, and the
# further apart the two modes. Wu & He (2018, Figure 1) show BN's error climbing
# steeply at small batches while GroupNorm, which normalizes each example on its own,
# stays flat. Here the seed's CNN (`bnk.CNN`) is trained at several batch sizes with
# each normalization of the params, on the experiments' backend, once per seed: at
# equal epochs (Wu & He's comparison) and at equal steps. The numbers come from the
# results of the experiment `batch_sizes` (`pipeline/experiments/batch_sizes/run.py`);
# every sentence below that quotes a number is generated from that file
# (`pipeline/experiments/batch_sizes/analysis.py`), and every number compared is a
# mean over the seeds with its standard deviation.

# %% tags=["parameters"]
# Set by the stage (papermill injects it after this cell): the results file, which
# dvc.yaml names.
results_path = None

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from matplotlib.ticker import NullFormatter, PercentFormatter

from pipeline.core.normalizations import LABELS
from pipeline.experiments.batch_sizes import analysis
from pipeline.reporting.figures import show

with open(results_path) as f:
    m = json.load(f)
sizes = analysis.batch_sizes(m)
names = analysis.normalizations(m)
display(Markdown(analysis.setup_text(m)))

# %% [markdown]
# ## Test error against batch size (Wu & He, Figure 1)

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
low, high = 1.0, 0.0
for ax, budget in zip(axes, analysis.BUDGETS, strict=True):
    for name in names:
        _, accuracy, std = analysis.curve(m, name, budget)
        error = 1 - accuracy
        # Error bars: one standard deviation over the seeds, kept above zero on
        # the log axis.
        below = np.minimum(std, 0.95 * error)
        ax.errorbar(sizes, error, yerr=[below, std], fmt="o-", capsize=3,
                    label=LABELS[name])
        shown = np.isfinite(error) & (error > 0)  # what a log axis can show
        if shown.any():
            low = min(low, float(np.min((error - below)[shown])))
            high = max(high, float(np.max((error + std)[shown])))
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(size) for size in sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("batch size (images per step, log scale)")
    ax.set_title(f"At {analysis.BUDGET_NAMES[budget]}")
    ax.grid(alpha=0.3)
axes[0].set_yscale("log")
ticks, labels = analysis.error_ticks(low, high)
axes[0].set_yticks(ticks, labels)
axes[0].yaxis.set_minor_formatter(NullFormatter())
axes[0].set_ylim(low / 1.15, min(high * 1.15, 1.0))
axes[0].set_ylabel("test error (inference mode, log scale)")
handles, legend_labels = axes[0].get_legend_handles_labels()
# Below the panels, clear of the data.
fig.legend(handles, legend_labels, loc="upper center", ncol=len(names),
           bbox_to_anchor=(0.5, 0.0), title="normalization")
fig.tight_layout()
show(fig, (
    "Two line charts side by side, at equal epochs and at equal steps: test "
    f"error (log scale) against batch size ({', '.join(map(str, sizes))}) for "
    f"{', '.join(LABELS[name] for name in names)}, each point the mean over "
    f"{len(m['seeds'])} seed(s) with a bar of one standard deviation."
))
display(Markdown(analysis.error_note(m)))

# %% [markdown]
# ## The train/inference gap of the BN family

# %%
family = analysis.family(names, analysis.BATCH_STATISTICS)
if family:
    fig, axes = plt.subplots(1, len(family), figsize=(5 * len(family), 4.2),
                             squeeze=False, sharey=True)
    styles = dict(zip(analysis.STATISTICS, ("o-", "s--", "^:"), strict=True))
    for ax, name in zip(axes[0], family, strict=True):
        for key, label in analysis.STATISTICS.items():
            _, accuracy, std = analysis.curve(m, name, "epochs", key)
            ax.errorbar(sizes, accuracy, yerr=std, fmt=styles[key], capsize=3,
                        label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(size) for size in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("batch size (training and test batches, log scale)")
        ax.set_title(f"{LABELS[name]}, equal epochs")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy")
    axes[0][0].yaxis.set_major_formatter(PercentFormatter(
        1.0, decimals=analysis.tick_decimals(axes[0][0].get_yticks())))
    handles, legend_labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, legend_labels, loc="upper center",
               ncol=3 if len(family) > 1 else 1,
               bbox_to_anchor=(0.5, 0.0), title="normalized at test time with")
    fig.tight_layout()
    show(fig, (
        f"For each of {', '.join(LABELS[name] for name in family)}, at equal "
        "epochs: test accuracy against batch size with the moving statistics, "
        "with the statistics of each test batch and with recomputed population "
        f"statistics, each point the mean over {len(m['seeds'])} seed(s) with a "
        "bar of one standard deviation."
    ))
    display(Markdown(analysis.gap_note(m)))

# %% [markdown]
# ## Every run
#
# Each accuracy is the mean over the seeds ± its standard deviation in percentage
# points; the learning rate, steps and passes are the same for every seed, the
# seconds are the mean training time.

# %%
display(Markdown(analysis.runs_table(m)))

# %% [markdown]
# ## Reading

# %%
lines = analysis.wu_he_findings(m)
gaps = analysis.gap_findings(m)
if gaps:
    lines += ["**The train/inference gap** (at equal epochs).", *gaps]
lines.append(analysis.batch_size_caveats(m))
display(Markdown("\n\n".join(lines)))
