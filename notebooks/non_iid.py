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
# paper). Here the seed's CNN (`bnk.CNN`) is trained with each normalization on
# shuffled batches and on batches of a few classes, on the experiments' backend. The
# numbers come from the results of the experiment `non_iid`
# (`pipeline/experiments/non_iid/run.py`); every sentence below that quotes a number is
# generated from that file (`pipeline/experiments/non_iid/analysis.py`).

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
from pipeline.reporting.figures import show
from pipeline.reporting.text import percent

with open(results_path) as f:
    m = json.load(f)
p = m["params"]
names = [name for name in LABELS if name in p["normalizations"]]
display(Markdown(
    f"Backend **{m['backend']}** ({m['device']}), Keras {m['keras_version']}, "
    f"{m['backend']} {m['backend_version']}; the whole experiment took "
    f"{m['wall_seconds'] / 60:.1f} minutes.\n\n"
    f"**Setup.** `bnk.CNN(normalization=...)`, Adam at {p['learning_rate']:g}, "
    f"batches of {p['batch_size']}, {m['steps']:,} steps on "
    f"{m['training_images']:,} training images; either shuffled (i.i.d.) batches, "
    f"or batches of {p['classes_per_batch']} classes with "
    f"{p['batch_size'] // p['classes_per_batch']} images of each "
    f"(`pipeline.core.batches.FewClassBatches`: each pass cuts every class into such "
    f"shares and joins shares of different classes). Both start from the same "
    f"weights (seed {p['seed']}). Tested on {m['test_images']:,} test images in "
    f"inference mode; the BN family also with the statistics of each test batch of "
    f"{p['batch_size']}, shuffled or made of {p['classes_per_batch']} classes as in "
    f"training ({m['few_class_test_images']:,} test images fill such batches). "
    f"Batch Renorm clips r to [{p['normalizers']['renorm_clipping']['rmin']:.3g}, "
    f"{p['normalizers']['renorm_clipping']['rmax']:g}] and d to "
    f"±{p['normalizers']['renorm_clipping']['dmax']:g} from the first step, with "
    f"renorm momentum {p['normalizers']['renorm_momentum']:g}; GroupNorm uses "
    f"{p['normalizers']['groups']} groups."
))

# %% [markdown]
# ## Test accuracy after i.i.d. and after non-i.i.d. training

# %%
fig, ax = plt.subplots(figsize=(8, 4.8))
x = np.arange(len(names))
width = 0.38
for offset, sampling, label in ((-width / 2, "iid", "shuffled (i.i.d.) batches"),
                                (width / 2, "non_iid",
                                 f"batches of {p['classes_per_batch']} classes")):
    values = [analysis.run_of(m, name, sampling)["test_accuracy"]
              for name in names]
    bars = ax.bar(x + offset, [np.nan if v is None else v for v in values], width,
                  label=label)
    ax.bar_label(bars, labels=[percent(v) for v in values], fontsize="small")
ax.set_xticks(x, [LABELS[name] for name in names])
ax.set_xlabel("normalization")
ax.set_ylabel("test accuracy (inference mode)")
ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
ax.set_ylim(0, 1.08)
ax.set_title("Trained on shuffled vs few-class batches")
# Beside the axes, not over the bars.
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), title="trained on",
          fontsize="small")
ax.grid(alpha=0.3, axis="y")
fig.tight_layout()
show(fig, (
    "Bar chart: test accuracy of each normalization after training on "
    "shuffled batches and after training on few-class batches."
))

# %% [markdown]
# ## The BN family after non-i.i.d. training, by the statistics it normalizes with

# %%
family = [n for n in ("batch_norm", "ghost_batch_norm", "batch_renorm") if n in names]
if family:
    kinds = (("test_accuracy", "moving statistics"),
             ("batch_statistics_accuracy", "shuffled test batches"),
             ("few_class_batch_statistics_accuracy",
              f"test batches of {p['classes_per_batch']} classes"))
    fig, ax = plt.subplots(figsize=(8, 4.8))
    x = np.arange(len(family))
    width = 0.8 / len(kinds)
    for i, (key, label) in enumerate(kinds):
        values = [analysis.run_of(m, name, "non_iid")[key] for name in family]
        bars = ax.bar(x + (i - 1) * width,
                      [np.nan if v is None else v for v in values], width, label=label)
        ax.bar_label(bars, labels=[percent(v) for v in values], fontsize="small")
    ax.set_xticks(x, [LABELS[name] for name in family])
    ax.set_xlabel("normalization (trained on non-i.i.d. batches)")
    ax.set_ylabel("test accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(0, 1.08)
    ax.set_title("Normalized with ...")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    show(fig, (
        "Bar chart: for the BN family trained on few-class batches, test "
        "accuracy with the moving statistics, with the statistics of shuffled "
        "test batches and with the statistics of few-class test batches."
    ))

# %%
rows = ["| normalization | trained on | test accuracy | shuffled test batches "
        "| few-class test batches | final training loss | seconds |",
        "|:---|:---|---:|---:|---:|---:|---:|"]
for run in m["runs"]:
    loss = run["training_loss"][-1]
    rows.append(
        f"| {LABELS[run['normalization']]} "
        f"| {'i.i.d.' if run['sampling'] == 'iid' else 'non-i.i.d.'} "
        f"| {percent(run['test_accuracy'])} "
        f"| {percent(run['batch_statistics_accuracy'])} "
        f"| {percent(run['few_class_batch_statistics_accuracy'])} "
        f"| {'n/a' if loss is None else f'{loss:.3f}'} | {run['wall_seconds']:.0f} |"
    )
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Reading

# %%
display(Markdown("\n\n".join(analysis.non_iid_findings(m))))
