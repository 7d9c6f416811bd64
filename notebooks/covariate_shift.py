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
# # Is it internal covariate shift?
#
# Ioffe & Szegedy (2015) introduced batch normalization to reduce *internal covariate
# shift*: the change of a layer's input distribution as the layers before it learn.
# Santurkar, Tsipras, Ilyas & Madry (2018), "How does batch normalization help
# optimization?", tested that explanation and found:
#
# 1. **Noisy BN** (their Figure 2): a network with random noise after every BN, which
#    gives each BN output a non-zero mean and a non-unit variance that change at every
#    step, trains about as well as with plain BN and better than without BN, although
#    the inputs of its layers are far less stable than without BN. So a stable input
#    distribution is not what BN buys.
# 2. **A smoother landscape** (their Figure 4): moving along the gradient, the loss
#    changes less, and the gradient stays closer to itself ("more predictive
#    gradients"), with BN than without.
#
# Here both are measured with `bnk.BatchNorm` in the seed's MNIST CNN, on the backend
# the experiments run on. The numbers come from the results of the experiment
# `covariate_shift` (`pipeline/experiments/covariate_shift/run.py`); every sentence
# that quotes a number is generated from that file
# (`pipeline/experiments/covariate_shift/analysis.py`).

# %% tags=["parameters"]
# Set by the stage (papermill injects it after this cell): the results file, which
# dvc.yaml names.
results_path = None

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from pipeline.experiments.covariate_shift import analysis as findings
from pipeline.reporting.figures import show

with open(results_path) as f:
    m = json.load(f)
p = m["params"]
labels = findings.LABELS
styles = {"plain": ("C1", "--"), "bn": ("C0", "-"), "noisy_bn": ("C2", "-.")}
thousands = FuncFormatter(lambda x, _: f"{x:,.0f}")


def step_axis(ax, label="training step"):
    ax.xaxis.set_major_locator(
        MaxNLocator(nbins=6, integer=True, steps=[1, 2, 2.5, 5, 10])
    )
    ax.xaxis.set_major_formatter(thousands)
    ax.set_xlabel(label)
    ax.grid(alpha=0.3)


def bands(ax, quantity, variants, log=False, marker=None, clip=None):
    """Per variant, the mean over the seeds at each probe (line) and the mean ± the
    standard deviation over the seeds (band), the band cut to `clip` (low, high). On
    a log axis a band reaching zero or below is cut at the axis's bottom, half the
    smallest mean. The curves drawn, by variant: (steps, band's low, mean, high)."""
    drawn = {}
    for v in variants:
        x, mean, std = findings.curve(m, v, quantity)
        low, high = mean - std, mean + std
        if clip is not None:
            low, high = np.clip(low, *clip), np.clip(high, *clip)
        drawn[v] = x, low, mean, high
    means = np.concatenate([mean for _, _, mean, _ in drawn.values()])
    positive = means[np.isfinite(means) & (means > 0)]
    floor = positive.min() / 2 if log and positive.size else None
    for variant, (x, low, mean, high) in drawn.items():
        color, style = styles[variant]
        if floor is not None:
            low = np.maximum(low, floor)
        ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
        ax.plot(x, mean, style, color=color, marker=marker, markersize=3,
                label=labels[variant])
    if log:
        ax.set_yscale("log")
        if floor is not None:
            ax.set_ylim(bottom=floor)
    return drawn


display(Markdown(findings.setup(m)))

# %% [markdown]
# ## The paper's claim (a): noisy BN trains about as well as BN ...

# %%
fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(13, 4.5))
accuracy = bands(ax_acc, "val_accuracy", labels, clip=(0, 1))
bands(ax_loss, "train_loss", labels, log=True)
ax_acc.set_ylabel("validation accuracy")
ax_acc.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
ax_acc.set_ylim(0, 1)
ax_acc.set_title("(a) validation accuracy (inference mode)")
ax_loss.set_ylabel(f"training loss, mean of the last {p['probe_every']} steps")
ax_loss.set_title("(b) training cross-entropy loss (log scale)")
for ax in (ax_acc, ax_loss):
    step_axis(ax)
ax_acc.legend(loc="lower right")  # below the inset
ax_loss.legend(loc="best")
# On a 0-100% axis the last half-points the text compares are invisible: the second
# half of training again, on an axis fitted to it (bands included).
steps = accuracy["bn"][0]
late = steps >= steps[len(steps) // 2]
late_values = np.concatenate(
    [np.concatenate([low[late], high[late]]) for _, low, _, high in accuracy.values()]
)
if np.isfinite(late_values).any():  # a run that diverged throughout has nothing
    zoom = ax_acc.inset_axes([0.42, 0.3, 0.55, 0.45])
    for variant, (x, low, mean, high) in accuracy.items():
        color, style = styles[variant]
        zoom.fill_between(x[late], low[late], high[late], color=color, alpha=0.2,
                          linewidth=0)
        zoom.plot(x[late], mean[late], style, color=color)
    low, high = np.nanmin(late_values), np.nanmax(late_values)
    zoom.set_ylim(low - 0.1 * (high - low + 1e-3), high + 0.1 * (high - low + 1e-3))
    zoom.yaxis.set_major_locator(MaxNLocator(nbins=4))
    # Decimals to suit the zoomed range, so that no two ticks read the same.
    zoom.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    zoom.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    zoom.xaxis.set_major_formatter(thousands)
    zoom.set_title("second half, zoomed", fontsize="small")
    zoom.tick_params(labelsize="small")
    zoom.grid(alpha=0.3)
fig.tight_layout()
show(fig, (
    "Two line charts against the training step, without BN, with BN and "
    "with noisy BN, each line the mean over the seeds with a band of one "
    "standard deviation over the seeds: (a) validation accuracy, with the "
    "second half of training zoomed in an inset; (b) training loss on a "
    "log scale."
))

display(Markdown(findings.training_findings(m)))

# %% [markdown]
# ## ... although its layer inputs are far from stable

# %%
fig, (ax_shift, ax_scale) = plt.subplots(1, 2, figsize=(13, 4.5))
bands(ax_shift, "input_shift", labels, log=True, marker="o")
bands(ax_scale, "scale_change", labels, log=True, marker="o")
layer = findings.first(m)["probed_layer"]
ax_shift.set_ylabel(
    "mean |change of a channel's mean|\n(in channel standard deviations)"
)
ax_shift.set_title(f"(a) how far the input of {layer} moved")
ax_scale.set_ylabel("mean |change of a channel's std|\n(relative to the std before)")
# Log ticks (…, 1%, 10%, 100%) as short as each allows, so that none repeats.
ax_scale.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{100 * x:g}%"))
ax_scale.set_title("(b) how much its spread changed")
for ax in (ax_shift, ax_scale):
    step_axis(ax, f"training step (change since the probe {p['probe_every']} steps "
                  "before)")
    ax.legend(loc="best")
fig.tight_layout()
show(fig, (
    "Two line charts against the training step, without BN, with BN and "
    "with noisy BN, each line the mean over the seeds with a band of one "
    "standard deviation over the seeds, on log scales: (a) how far the "
    f"per-channel mean of the input of {layer} moved between probes, in "
    "standard deviations, (b) how much its per-channel spread changed."
))

display(Markdown(findings.instability_findings(m)))

# %% [markdown]
# Each point compares the input distribution of the second convolution at one probe
# with the one at the probe before; with noisy BN it includes the noise of that step,
# which is what the layer trains on. A value of 1 in (a) means the average channel's
# mean moved by one of its standard deviations.

# %% [markdown]
# ## The paper's claim (b): with BN the landscape along the gradient is smoother

# %%
# One above the other: three side by side shrink to unreadable on a page.
fig, axes = plt.subplots(3, 1, figsize=(9, 11))
for ax, quantity in zip(axes, findings.MEASURES, strict=True):
    bands(ax, quantity, findings.LANDSCAPE_VARIANTS, log=True, marker="o")
sizes = f"{p['step_sizes'][0]:g} to {p['step_sizes'][-1]:g}"
axes[0].set_ylabel("max − min of the training-batch loss\nalong the gradient")
axes[0].set_title(f"(a) loss landscape: spread of the loss at θ − η·g, η = {sizes}")
axes[1].set_ylabel("max over η of ‖∇L(θ − η·g) − g‖₂")
axes[1].set_title("(b) gradient predictiveness")
axes[2].set_ylabel("max over η of ‖∇L(θ − η·g) − g‖₂ / (η‖g‖₂)")
axes[2].set_title("(c) effective β-smoothness")
for ax in axes:
    step_axis(ax)
    ax.legend(loc="best", fontsize="small")
fig.tight_layout()
show(fig, (
    "Three line charts against the training step, with and without BN, each "
    "line the mean over the seeds with a band of one standard deviation over "
    "the seeds, on log scales: (a) the spread of the training-batch loss at "
    "points along the gradient, (b) the largest change of the gradient along "
    "it, (c) the effective beta-smoothness."
))

display(Markdown(findings.landscape_findings(m)))

# %% [markdown]
# At each probe, on the batch the next step trains on and with BN in training mode:
# the loss and gradient g at the weights θ, then the loss and gradient at θ − η·g for
# each step size η. (a) the range of the loss over those points, max − min; (b) the
# largest distance of a gradient from g; (c) that distance per unit of distance moved,
# the largest over η. Lower is smoother. The verdict compares, per measure, each
# seed's median over the probes after step 0:

# %%
display(Markdown(findings.landscape_table(m)))

# %% [markdown]
# The measures at every probe (mean ± standard deviation over the seeds):

# %%
display(Markdown(findings.probe_table(m)))

# %% [markdown]
# ## Caveats

# %%
display(Markdown(findings.caveats(m)))
