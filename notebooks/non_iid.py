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
# # Batch normalization on non-i.i.d. batches
#
# BN's moving statistics average the statistics of the training batches. When each
# batch holds only a few classes, those averages describe no batch the network trained
# on, nor the test distribution, and inference normalizes differently from training.
# Batch Renormalization (Ioffe, 2017) corrects each training batch towards the moving
# statistics, so that training computes what inference will (section 4.2 of the
# paper). Here the seed's CNN (`bnk.CNN`) is trained with each normalization of the
# params on shuffled batches and on batches of a few classes, on the experiments'
# backend, once per seed. The numbers come from the results of the experiment
# `non_iid` (`pipeline/experiments/non_iid/run.py`); every sentence below that quotes a
# number is generated from that file (`pipeline/experiments/non_iid/analysis.py`), and
# every number compared is a mean over the seeds with its standard deviation.

# %% tags=["parameters"]
# Set by the stage (papermill injects it after this cell): the results file, which
# dvc.yaml names.
results_path = None

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from matplotlib.ticker import PercentFormatter

from pipeline.core.normalizations import LABELS
from pipeline.experiments.non_iid import analysis
from pipeline.reporting.figures import accuracy_limits, show
from pipeline.reporting.text import percent

with open(results_path) as f:
    m = json.load(f)
p = m["params"]
names = analysis.normalizations(m)
seeds = len(m["seeds"])
display(Markdown(analysis.setup_text(m)))

# %% [markdown]
# ## Test accuracy after i.i.d. and after non-i.i.d. training

# %%
fig, ax = plt.subplots(figsize=(8, 4.8))
x = np.arange(len(names))
shown = []
for offset, sampling, label, marker in (
    (-0.12, "iid", "shuffled (i.i.d.) batches", "o"),
    (0.12, "non_iid", f"batches of {p['classes_per_batch']} classes", "s"),
):
    mean, std = analysis.bars(m, names, sampling)
    shown.append((mean, std))
    ax.errorbar(x + offset, mean, yerr=std, fmt=marker, capsize=4, label=label)
    for xi, value, spread in zip(x + offset, mean, std, strict=True):
        ax.annotate(percent(value), (xi, value + spread), xytext=(0, 4),
                    textcoords="offset points", ha="center", fontsize="x-small")
ax.set_xticks(x, [LABELS[name] for name in names])
ax.set_xlim(-0.5, len(names) - 0.5)
ax.set_xlabel("normalization")
ax.set_ylabel("test accuracy (inference mode)")
ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
ax.set_ylim(*accuracy_limits(*map(np.concatenate, zip(*shown, strict=True))))
ax.set_title(f"Trained on shuffled vs few-class batches (mean of {seeds} seed(s))")
# Beside the axes, not over the bars.
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), title="trained on",
          fontsize="small")
ax.grid(alpha=0.3, axis="y")
fig.tight_layout()
show(fig, (
    "Chart: test accuracy of "
    f"{', '.join(LABELS[name] for name in names)} after training on shuffled "
    "batches and after training on few-class batches, each bar the mean over "
    f"{seeds} seed(s) with an error bar of one standard deviation, on an axis "
    "zoomed to the values."
))

# %% [markdown]
# Each point is the mean over the seeds, written above its error bar; the error bars
# span one standard deviation either side.

# %% [markdown]
# ## The BN family after non-i.i.d. training, by the statistics it normalizes with

# %%
family = analysis.family(names, analysis.BATCH_STATISTICS)
if family:
    kinds = dict(zip(analysis.STATISTICS, (
        "moving statistics", "shuffled test batches",
        f"test batches of {p['classes_per_batch']} classes"), strict=True))
    fig, ax = plt.subplots(figsize=(8, 4.8))
    x = np.arange(len(family))
    shown = []
    for i, ((key, label), marker) in enumerate(zip(kinds.items(), "o^s", strict=True)):
        mean, std = analysis.bars(m, family, "non_iid", key)
        shown.append((mean, std))
        ax.errorbar(x + (i - 1) * 0.27, mean, yerr=std, fmt=marker, capsize=4,
                    label=label)
        for xi, value, spread in zip(x + (i - 1) * 0.27, mean, std, strict=True):
            ax.annotate(percent(value), (xi, value + spread), xytext=(0, 4),
                        textcoords="offset points", ha="center", fontsize="x-small")
    ax.set_xticks(x, [LABELS[name] for name in family])
    ax.set_xlim(-0.5, len(family) - 0.5)
    ax.set_xlabel("normalization (trained on non-i.i.d. batches)")
    ax.set_ylabel("test accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_ylim(*accuracy_limits(*map(np.concatenate, zip(*shown, strict=True))))
    ax.set_title(f"Normalized with ... (mean of {seeds} seed(s))")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    show(fig, (
        f"Chart: for {', '.join(LABELS[name] for name in family)} trained on "
        "few-class batches, test accuracy with the moving statistics, with the "
        "statistics of shuffled test batches and with the statistics of few-class "
        f"test batches, each point the mean over {seeds} seed(s) with an error bar "
        "of one standard deviation, on an axis zoomed to the values."
    ))

# %% [markdown]
# ## Every run
#
# Each number is the mean over the seeds ± its standard deviation (accuracies in
# percentage points); the seconds are the mean training time.

# %%
display(Markdown(analysis.runs_table(m)))

# %% [markdown]
# ## Reading

# %%
display(Markdown("\n\n".join(analysis.non_iid_findings(m))))
