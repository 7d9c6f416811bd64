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
# on the experiments' backend, once per seed of `experiments.seeds`. The numbers come
# from the results of the experiment `bn_experiment`
# (`pipeline/experiments/bn_experiment/run.py`); every sentence, table and series
# below is computed from that file by `pipeline/experiments/bn_experiment/analysis.py`,
# and every number compared is a mean over the seeds with its standard deviation.

# %% tags=["parameters"]
# Set by the stage (papermill injects it after this cell): the results file, which
# dvc.yaml names.
results_path = None

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from matplotlib.legend_handler import HandlerTuple
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    MultipleLocator,
    NullFormatter,
    PercentFormatter,
)

from pipeline.experiments.bn_experiment import analysis as findings
from pipeline.reporting.figures import show

with open(results_path) as f:
    results = json.load(f)
seeds = findings.seed_list(results)
over_seeds = f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
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


def percent_axis(ax, low):
    """An accuracy axis from `low` (rounded down) to 100%, ticks at whole percents
    (no two labels the same)."""
    low = 0.0 if not np.isfinite(low) else max(0.0, np.floor(low * 50) / 50)
    span = 1.0 - low
    step = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2) if span / s <= 6)
    ax.set_ylim(low, 1.0)
    ax.yaxis.set_major_locator(MultipleLocator(step))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))


def curve(ax, x, mean, std, style, color):
    """The mean over seeds as a line, ± one standard deviation as a band; the pair as
    one legend handle."""
    (line,) = ax.plot(x, mean, style, color=color)
    band = ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2,
                           linewidth=0)
    return (line, band)


display(Markdown(findings.setup_text(results)))

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
series = findings.figure1a_series(results)
steps = series["steps"]
plotted = findings.plotted_run(results)
shown_seed, mlp = plotted["seed"], plotted["mlp"]
unit = mlp["unit"]
later = steps > 0 if (steps > 0).any() else np.ones(len(steps), bool)
fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
ax = axes[0]
handles = [
    curve(ax, steps[later], series[v][later], series[f"{v}_std"][later], style, color)
    for v, style, color in (("bn", "-", "C0"), ("plain", "--", "C1"))
]
low = np.nanmin(np.concatenate([
    (series[v] - series[f"{v}_std"])[later] for v in ("bn", "plain")
]))
percent_axis(ax, min(0.7, low))
step_axis(ax, steps[later], log=True)
ax.set_ylabel(f"test accuracy (mean ± std over {over_seeds})")
ax.set_title("(a) test accuracy")
ax.legend(handles, ["with BN", "without BN"], loc="upper center",
          bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize="small",
          title="mean and ± one standard deviation", title_fontsize="small",
          handler_map={tuple: HandlerTuple(ndivide=None)})
ax.grid(alpha=0.3)
ax.grid(which="minor", alpha=0.1)
percentiles = mlp["percentiles"]
order = sorted(percentiles["bn"], key=int)
line_styles = (
    dict(zip(order, ("--", "-", ":"), strict=True)) if len(order) == 3
    else dict.fromkeys(order, "-")
)
everything = np.concatenate([
    np.array([np.nan if v is None else v for v in values], float)
    for q in percentiles.values() for values in q.values()
])
span = (np.nanmin(everything), np.nanmax(everything))
pad = 0.05 * (span[1] - span[0] + 1e-9)
for ax, name, title in (
    (axes[1], "plain", "(b) without BN"),
    (axes[2], "bn", "(c) with BN"),
):
    for q in reversed(order):
        values = np.array([np.nan if v is None else v for v in percentiles[name][q]])
        ax.plot(steps, values, line_styles[q], color="C0" if name == "bn" else "C1",
                label=f"{q}th percentile")
    ax.set_ylim(span[0] - pad, span[1] + pad)
    step_axis(ax, steps)
    ax.set_ylabel(f"input to sigmoid {unit}")
    ax.set_title(f"{title}: sigmoid {unit} of the last hidden layer, seed {shown_seed}",
                 fontsize="medium")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=len(order),
              fontsize="small", title="over the test images", title_fontsize="small")
    ax.grid(alpha=0.3)
fig.tight_layout()
show(fig, (
    f"Figure 1 reproduced: (a) test accuracy against the training step with and "
    f"without BN, the mean over {over_seeds} with a band of one standard deviation; "
    f"(b, c) for seed {shown_seed} only, the 15th, 50th and 85th percentiles of the "
    f"input to sigmoid {unit} of the last hidden layer over training, without BN and "
    f"with BN."
))


# %% [markdown]
# (a) test accuracy against training step, on a logarithmic step axis that starts at
# the first evaluation after step 0 (before training both networks are at chance): the
# mean over the seeds, and a band of ± one standard deviation. (b, c) for the first
# seed only (named in the panel titles: in each seed the sigmoid starts from other
# weights, so its percentiles are not averaged), the 15th (dashed), 50th (solid) and
# 85th (dotted) percentiles over the test images of the input to one sigmoid of the
# last hidden layer: without BN the dense layer's pre-activation, with BN the
# BatchNorm output (γ·x̂ + β). Panels (b) and (c) share their y-axis, as the paper's
# do. The table gives the accuracies as mean ± standard deviation (in points) over the
# seeds, the percentiles of the first seed.

# %%
display(Markdown(findings.figure1_table(results)))

# %% [markdown]
# ## The seed's CNN with and without BN, at several learning rates (Adam)

# %%
display(Markdown(findings.cnn_setup_text(results)))
rates = findings.learning_rates(results)
curves = findings.cnn_curves(results)
cnn_steps = np.array(findings.plotted_run(results)["cnn"]["steps"])
fig, axes = plt.subplots(2, len(rates), figsize=(5 * len(rates), 7.5), squeeze=False)
handles = []
for col, rate in enumerate(rates):
    lows = []
    for batch_norm, style, color in ((True, "-", "C0"), (False, "--", "C1")):
        c = curves[(rate, batch_norm)]
        handle = curve(axes[0, col], cnn_steps, c["val_accuracy"],
                       c["val_accuracy_std"], style, color)
        if col == 0:
            handles.append(handle)
        lows.append(np.nanmin(c["val_accuracy"] - c["val_accuracy_std"]))
        positive = c["val_loss"][np.isfinite(c["val_loss"]) & (c["val_loss"] > 0)]
        floor = 0.5 * positive.min() if positive.size else 1e-3
        lower = np.maximum(c["val_loss"] - c["val_loss_std"], floor)
        axes[1, col].plot(cnn_steps, c["val_loss"], style, color=color)
        axes[1, col].fill_between(cnn_steps, lower, c["val_loss"] + c["val_loss_std"],
                                  color=color, alpha=0.2, linewidth=0)
    axes[0, col].set_title(f"learning rate {rate:g}")
    axes[0, col].set_ylabel("validation accuracy")
    low = np.nanmin(lows) if np.isfinite(lows).any() else 0.0
    percent_axis(axes[0, col], low if low >= 0.8 else 0.0)
    axes[1, col].set_ylabel("validation cross-entropy loss (log scale)")
    axes[1, col].set_yscale("log")
    axes[1, col].yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    axes[1, col].yaxis.set_minor_locator(LogLocator(subs=np.arange(2, 10) / 1.0))
    axes[1, col].yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    axes[1, col].yaxis.set_minor_formatter(NullFormatter())
    for ax in axes[:, col]:
        step_axis(ax, cnn_steps)
        ax.grid(alpha=0.3)
fig.legend(handles, ["with BN", "without BN"], loc="lower center",
           bbox_to_anchor=(0.5, 1.0), ncol=2,
           title=f"mean and ± one standard deviation over {over_seeds}",
           handler_map={tuple: HandlerTuple(ndivide=None)})
fig.tight_layout()
show(fig, (
    f"For each learning rate, the CNN with and without BN: validation accuracy (top) "
    f"and validation loss on a log scale (bottom) against the training step, the mean "
    f"over {over_seeds} with a band of one standard deviation."
))
display(Markdown(findings.cnn_table(results)))

# %% [markdown]
# ## Reading

# %%
display(Markdown("\n\n".join(
    findings.figure1_findings(results) + findings.cnn_findings(results)
)))
