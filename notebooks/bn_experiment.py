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
# # What batch normalization buys
#
# Ioffe & Szegedy's MNIST experiment (2015, section 4.1, Figure 1), and the
# seed's CNN with and without batch normalization, both measured with `bnk.BatchNorm`
# on the experiments' backend. The numbers come from the results of the experiment
# `bn_experiment` (`pipeline/experiments/bn_experiment/run.py`); every sentence below
# that quotes a number is generated from that file
# (`pipeline/experiments/bn_experiment/analysis.py`).

# %% tags=["parameters"]
# Set by the stage (papermill injects it after this cell): the results file, which
# dvc.yaml names.
results_path = None

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    PercentFormatter,
)

from pipeline.experiments.bn_experiment import analysis as findings
from pipeline.reporting.figures import show

with open(results_path) as f:
    m = json.load(f)
mlp, cnn, p = m["mlp"], m["cnn"], m["params"]
steps = np.array(mlp["steps"])
unit = mlp["unit"]


def arr(values):
    return np.array([np.nan if v is None else v for v in values], float)


def pct(x):
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.2f}%"


def num(x):
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3f}"


def num2(x):
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.2f}"


def ordinal(q):
    q = int(q)
    if 10 <= q % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(q % 10, "th")
    return f"{q}{suffix}"


def listing(words):
    words = list(words)
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


thousands = FuncFormatter(lambda x, _: f"{x:,.0f}")


def step_axis(ax, values, log=False):
    """Integer step ticks with thousands separators; on a log axis 1-2-5 ticks within
    the data."""
    if log:
        ax.set_xscale("log")
        first, last = values[values > 0].min(), values.max()
        decades = range(
            int(np.floor(np.log10(first))), int(np.ceil(np.log10(last))) + 1
        )
        ticks = [
            m * 10**k for k in decades for m in (1, 2, 5) if first <= m * 10**k <= last
        ]
        ax.set_xticks(ticks)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(first, last)
        ax.set_xlabel("training step (log scale)")
    else:
        ax.xaxis.set_major_locator(
            MaxNLocator(nbins=6, integer=True, steps=[1, 2, 2.5, 5, 10])
        )
        ax.set_xlim(values.min(), values.max())
        ax.set_xlabel("training step")
    ax.xaxis.set_major_formatter(thousands)


pm, pc = p["mlp"], p["cnn"]
display(Markdown(
    f"Backend **{m['backend']}** ({m['device']}), Keras {m['keras_version']}, "
    f"{m['backend']} {m['backend_version']}. The whole experiment took "
    f"{m['wall_seconds'] / 60:.1f} minutes (Figure 1: "
    f"{mlp['wall_seconds']['bn']:.0f} s with BN, "
    f"{mlp['wall_seconds']['plain']:.0f} s without; CNN: "
    f"{sum(r['wall_seconds'] for r in cnn['runs']):.0f} s for "
    f"{len(cnn['runs'])} runs).\n\n"
    f"**Figure 1 setup.** 784 inputs → 3 fully connected hidden layers of 100 sigmoid "
    f"units → 10 outputs, kernels from N(0, {pm['init_stddev']}²), softmax "
    f"cross-entropy; {pm['steps']:,} steps of plain SGD (learning rate "
    f"{pm['learning_rate']}) on mini-batches of {pm['batch_size']} from "
    f"{mlp['training_images']:,} training images; every {pm['eval_every']} "
    f"steps the test accuracy on {mlp['test_images']:,} test images and the "
    f"{listing(ordinal(q) for q in sorted(mlp['percentiles']['bn'], key=int))} "
    f"percentiles, over those test images, of the input to sigmoid {unit} of the last "
    f"hidden layer (inference mode). Once with `bnk.BatchNorm` before each sigmoid "
    f"(the dense layers then have no bias, section 3.2 of the paper), once without; "
    f"both start from the same kernels and see the same batches. Seed {p['seed']}."
))

# %% [markdown]
# **Why plain SGD, and this rate.** The paper names neither the optimizer nor the
# learning rate of this experiment. Plain SGD (no momentum) is the simplest optimizer of
# its time and adds no adaptive per-weight scaling that would itself compensate for
# badly scaled activations. The learning rate and the initial scale stated above come
# from a short sweep on MNIST over a few initial scales and learning rates (described in
# `params.yaml`; its results are not part of the metrics file): the values chosen train
# the network *without* BN fastest, so BN is compared with a tuned baseline rather than
# a crippled one. At the smaller learning rates of that sweep the gap early in training
# was much larger than below.

# %% [markdown]
# ## Figure 1: a 3-layer sigmoid network on MNIST, with and without BN

# %%
bn_acc, plain_acc = arr(mlp["bn"]), arr(mlp["plain"])
later = steps > 0
if later.any():
    low = np.nanmin(np.concatenate([bn_acc[later], plain_acc[later]]))
else:
    low = 0.0
fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
ax = axes[0]
ax.plot(steps[later], bn_acc[later], "-", color="C0", label="with BN")
ax.plot(steps[later], plain_acc[later], "--", color="C1", label="without BN")
ax.set_ylim(min(0.7, np.floor(low * 20) / 20), 1.0)
step_axis(ax, steps[later], log=True)
ax.set_ylabel("test accuracy")
ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
ax.set_title("(a) test accuracy")
ax.legend(loc="lower right")
ax.grid(alpha=0.3)
ax.grid(which="minor", alpha=0.1)
percentiles = mlp["percentiles"]
order = sorted(percentiles["bn"], key=int)
if len(order) == 3:
    line_styles = dict(zip(order, ("--", "-", ":"), strict=True))
else:
    line_styles = {q: "-" for q in order}
everything = np.concatenate([arr(v) for q in percentiles.values() for v in q.values()])
span = (np.nanmin(everything), np.nanmax(everything))
pad = 0.05 * (span[1] - span[0] + 1e-9)
for ax, name, title in (
    (axes[1], "plain", "(b) without BN"),
    (axes[2], "bn", "(c) with BN"),
):
    for q in reversed(order):
        ax.plot(
            steps,
            arr(percentiles[name][q]),
            line_styles[q],
            color="C0" if name == "bn" else "C1",
            label=f"{ordinal(q)} percentile",
        )
    ax.set_ylim(span[0] - pad, span[1] + pad)
    step_axis(ax, steps)
    ax.set_ylabel(f"input to sigmoid {unit}")
    ax.set_title(
        f"{title}: input to sigmoid {unit}, last hidden layer", fontsize="medium"
    )
    ax.legend(
        loc="best",
        fontsize="small",
        title="over the test images",
        title_fontsize="small",
    )
    ax.grid(alpha=0.3)
fig.tight_layout()
show(fig, (
    "Figure 1 reproduced: (a) test accuracy against the training step with "
    "and without BN; (b, c) the 15th, 50th and 85th percentiles of the "
    "input to one sigmoid of the last hidden layer over training, without "
    "BN and with BN."
))


# %% [markdown]
# (a) test accuracy against training step, on a logarithmic step axis that starts at
# the first evaluation after step 0 (before training both networks are at chance); (b,
# c) the 15th (dashed), 50th (solid) and 85th (dotted) percentiles over the test images
# of the input to one sigmoid of the last hidden layer: without BN the dense layer's
# pre-activation, with BN the BatchNorm output (γ·x̂ + β). Panels (b) and (c) share
# their y-axis, as the paper's do.

# %%
def table_steps(count=9):
    if len(steps) <= count:
        return list(range(len(steps)))
    picks = np.unique(np.round(np.geomspace(1, len(steps) - 1, count - 1)).astype(int))
    return [0, *picks]


rows = [
    "| step | test accuracy, BN | without BN "
    "| median sigmoid input (15th–85th), BN | without BN |",
    "|---:|---:|---:|---:|---:|",
]
pb, pp = percentiles["bn"], percentiles["plain"]
for i in table_steps():
    rows.append(
        f"| {steps[i]:,} | {pct(bn_acc[i])} | {pct(plain_acc[i])} "
        f"| {num2(pb['50'][i])} ({num2(pb['15'][i])} to {num2(pb['85'][i])}) "
        f"| {num2(pp['50'][i])} ({num2(pp['15'][i])} to {num2(pp['85'][i])}) |"
    )
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## The seed's CNN with and without BN, at several learning rates (Adam)

# %%
cnn_steps = np.array(cnn["steps"])
rates = pc["learning_rates"]
runs = {(r["learning_rate"], r["batch_norm"]): r for r in cnn["runs"]}
display(Markdown(
    "`bnk.CNN` with `normalization=bnk.BatchNorm` or `None` (two conv 5×5 blocks, "
    f"dense 1024, dropout 0.5), Adam, mini-batches of {pc['batch_size']}, "
    f"{pc['steps']:,} steps on {cnn['training_images']:,} training images "
    "(a short run: "
    f"{pc['steps'] * pc['batch_size'] / cnn['training_images']:.1f} passes); "
    f"validation accuracy and loss on the {cnn['validation_images']:,} held-out "
    f"training images every {pc['eval_every']} steps. Both variants of a rate start "
    f"from the same weights and see the same batches."
))
fig, axes = plt.subplots(2, len(rates), figsize=(5 * len(rates), 7.5), squeeze=False)
for col, rate in enumerate(rates):
    for batch_norm, style, label in (
        (True, "-", "with BN"),
        (False, "--", "without BN"),
    ):
        run = runs[(rate, batch_norm)]
        axes[0, col].plot(cnn_steps, arr(run["val_accuracy"]), style, label=label)
        axes[1, col].plot(cnn_steps, arr(run["val_loss"]), style, label=label)
    axes[0, col].set_title(f"learning rate {rate:g}")
    axes[0, col].set_ylabel("validation accuracy")
    axes[0, col].yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    finite = np.concatenate(
        [arr(runs[(rate, bn)]["val_accuracy"]) for bn in (True, False)]
    )
    finite = finite[np.isfinite(finite)]
    low = finite.min() if finite.size else 0.0
    axes[0, col].set_ylim((np.floor(low * 50) / 50, 1.0) if low >= 0.8 else (0, 1))
    axes[1, col].set_ylabel("validation cross-entropy loss (log scale)")
    axes[1, col].set_yscale("log")
    axes[1, col].yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    axes[1, col].yaxis.set_minor_locator(LogLocator(subs=np.arange(2, 10) / 1.0))
    axes[1, col].yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    axes[1, col].yaxis.set_minor_formatter(NullFormatter())
    for ax in axes[:, col]:
        step_axis(ax, cnn_steps)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
fig.tight_layout()
show(fig, (
    "For each learning rate, the CNN with and without BN: validation "
    "accuracy (top) and validation loss on a log scale (bottom) against the"
    " training step."
))

first = 0
middle = len(cnn_steps) // 2
rows = [(f"| learning rate | BN | val. accuracy at step {cnn_steps[first]:,} "
         f"| at {cnn_steps[middle]:,} | at {cnn_steps[-1]:,} | best | final val. loss "
         "| seconds |"),
        "|---:|:---|---:|---:|---:|---:|---:|---:|"]
for rate in rates:
    for batch_norm in (True, False):
        run = runs[(rate, batch_norm)]
        acc = arr(run["val_accuracy"])
        best = np.nanmax(acc) if np.isfinite(acc).any() else None
        rows.append(
            f"| {rate:g} | {'yes' if batch_norm else 'no'} | {pct(acc[first])} "
            f"| {pct(acc[middle])} | {pct(acc[-1])} | {pct(best)} "
            f"| {num(arr(run['val_loss'])[-1])} | {run['wall_seconds']:.0f} |"
        )
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Reading

# %%
display(Markdown("\n\n".join(findings.figure1_findings(m) + findings.cnn_findings(m))))
