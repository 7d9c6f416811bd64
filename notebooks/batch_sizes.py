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
# each normalization, on the experiments' backend. The numbers come from the results
# of the experiment `batch_sizes` (`pipeline/experiments/batch_sizes/run.py`); every
# sentence below that quotes a number is generated from that file
# (`pipeline/experiments/batch_sizes/analysis.py`).

# %% tags=["parameters"]
# Set by the stage (papermill injects it after this cell): the results file, which
# dvc.yaml names.
results_path = None

# %%
import json

import matplotlib.pyplot as plt
from IPython.display import Markdown, display
from matplotlib.ticker import PercentFormatter

from pipeline.core.normalizations import LABELS
from pipeline.experiments.batch_sizes import analysis
from pipeline.reporting.figures import show
from pipeline.reporting.text import percent

with open(results_path) as f:
    m = json.load(f)
p = m["params"]
normalizers = p["normalizers"]
sizes = sorted({run["batch_size"] for run in m["runs"]})
names = [name for name in LABELS if name in p["normalizations"]]
rates = {run["batch_size"]: run["learning_rate"] for run in m["runs"]}
display(Markdown(
    f"Backend **{m['backend']}** ({m['device']}), Keras {m['keras_version']}, "
    f"{m['backend']} {m['backend_version']}; the whole experiment took "
    f"{m['wall_seconds'] / 60:.1f} minutes.\n\n"
    f"**Setup.** `bnk.CNN(normalization=...)` (two conv 5×5 blocks, each followed by "
    f"the normalization, dense 1024, dropout 0.5), trained for {p['epochs']} "
    f"pass(es) over {m['training_images']:,} training images at batch sizes "
    f"{', '.join(map(str, sizes))}, Adam at {p['learning_rate']:g} for batches of "
    f"{p['reference_batch_size']}, scaled with the square root of the batch size "
    f"({rates[sizes[0]]:.2g} at {sizes[0]}, {rates[sizes[-1]]:.2g} at {sizes[-1]}); "
    f"tested on {m['test_images']:,} test images; the BN family's population "
    f"statistics recomputed over up to {p['statistics_batches']} training batches "
    f"of the training size (at most one pass). Every run starts from the same "
    f"weights and sees the images in the same seeded order (seed {p['seed']}). "
    + (f"Ghost BN normalizes sub-batches of at most "
       f"{normalizers['ghost_batch_size']} examples (plain BN at smaller batches); "
       if "ghost_batch_norm" in names else "")
    + f"GroupNorm uses {normalizers['groups']} groups; Batch Renorm clips r to "
    f"[{normalizers['renorm_clipping']['rmin']:.3g}, "
    f"{normalizers['renorm_clipping']['rmax']:g}] and d to "
    f"±{normalizers['renorm_clipping']['dmax']:g} (renorm momentum "
    f"{normalizers['renorm_momentum']:g}); LayerNorm normalizes each "
    f"example over height, width and channels."
))

# %% [markdown]
# ## Test error against batch size (Wu & He, Figure 1)

# %%
fig, ax = plt.subplots(figsize=(8, 5))
for name in names:
    accuracy = analysis.accuracy_by_batch_size(m, name)
    ax.plot(sizes, [1 - accuracy[size] for size in sizes], "o-",
            label=LABELS[name])
ax.set_xscale("log", base=2)
ax.set_xticks(sizes, [str(size) for size in sizes])
ax.set_xlabel("batch size (images per step, log scale)")
ax.set_ylabel("test error (inference mode, log scale)")
ax.set_yscale("log")
ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
ax.yaxis.set_minor_formatter(PercentFormatter(1.0, decimals=0))
ax.set_title("Test error after a fixed number of passes")
ax.legend(fontsize="small")
ax.grid(alpha=0.3)
fig.tight_layout()
show(fig, (
    "Line chart: test error (log scale) against batch size "
    f"({', '.join(map(str, sizes))}), one line per normalization."
))

# %% [markdown]
# Error is 1 − accuracy on the test images, in inference mode: the BN family
# (BN, Batch Renorm, and ghost BN where it ran) normalizes with its moving statistics
# there.

# %% [markdown]
# ## The train/inference gap of the BN family

# %%
family = [n for n in ("batch_norm", "ghost_batch_norm", "batch_renorm") if n in names]
if family:
    fig, axes = plt.subplots(1, len(family), figsize=(5 * len(family), 4.2),
                             squeeze=False, sharey=True)
    for ax, name in zip(axes[0], family, strict=True):
        moving = analysis.accuracy_by_batch_size(m, name)
        batch = analysis.accuracy_by_batch_size(
            m, name, "batch_statistics_accuracy")
        ax.plot(sizes, [moving[s] for s in sizes], "o-", label="moving statistics")
        ax.plot(sizes, [batch[s] for s in sizes], "s--",
                label="statistics of each test batch")
        population = analysis.accuracy_by_batch_size(
            m, name, "population_accuracy")
        ax.plot(sizes, [population[s] for s in sizes], "^:",
                label="population statistics, recomputed")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(size) for size in sizes])
        ax.set_xlabel("batch size (training and test batches, log scale)")
        ax.set_ylabel("test accuracy")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_title(LABELS[name])
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    show(fig, (
        "For each of the BN family, test accuracy against batch size with the "
        "moving statistics, with the statistics of each test batch and with "
        "recomputed population statistics."
    ))

# %% [markdown]
# With batch statistics the test images are normalized as training normalized its
# batches: in batches of the training batch size (ghost BN: in its sub-batches),
# everything else in inference mode (dropout off); the moving statistics are what a
# deployed model uses. The population statistics replace the moving averages after
# training with exact averages over training batches of the training size
# (`bnk.recompute_statistics`, Ioffe & Szegedy's Algorithm 2): what the moving
# averages would be without their lag and noise.

# %%
rows = ["| normalization | batch size | learning rate | steps | test accuracy "
        "| with batch statistics | with population statistics | seconds |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|"]
for run in sorted(m["runs"], key=lambda r: (names.index(r["normalization"]),
                                            r["batch_size"])):
    rows.append(
        f"| {LABELS[run['normalization']]} | {run['batch_size']} "
        f"| {run['learning_rate']:.2g} | {run['steps']:,} "
        f"| {percent(run['test_accuracy'])} "
        f"| {percent(run['batch_statistics_accuracy'])} "
        f"| {percent(run['population_accuracy'])} "
        f"| {run['wall_seconds']:.0f} |"
    )
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Reading

# %%
lines = analysis.wu_he_findings(m)
gaps = analysis.gap_findings(m)
if gaps:
    lines += ["**The train/inference gap.**", *gaps]
lines.append(analysis.batch_size_caveats(m))
display(Markdown("\n\n".join(lines)))
