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
steps = np.array(m["steps"])
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


noise = p["noise"]
display(Markdown(
    f"Backend **{m['backend']}** ({m['device']}), Keras {m['keras_version']}, "
    f"{m['backend']} {m['backend_version']}. The whole experiment took "
    f"{m['wall_seconds'] / 60:.1f} minutes ("
    + ", ".join(f"{labels[v]} {m[v]['wall_seconds']:.0f} s" for v in labels)
    + ").\n\n"
    f"**Setup.** `bnk.CNN` (two conv 5×5 blocks, dense 1024; dropout off, so that a "
    f"probe's loss depends on the weights alone) in three variants: without "
    f"normalization, with `bnk.BatchNorm` after each convolution, and with noisy BN: "
    f"`bnk.BatchNorm` followed by a layer that, at every training step and for every "
    f"channel, multiplies by a scale drawn from U(1, {noise['max_scale']:g}) and adds "
    f"a shift drawn from U(−{noise['mean']:g}, {noise['mean']:g}) (at inference, the "
    f"noise's expected map). The paper draws its noise per example too; here each "
    f"step draws one scale and shift per channel, which moves the distribution the "
    f"next layer sees as a whole. All three start from the same weights and see the "
    f"same batches: {p['steps']:,} steps of SGD (learning rate {p['learning_rate']:g}, "
    f"momentum {p['momentum']:g}) on mini-batches of {p['batch_size']} from "
    f"{m['training_images']:,} training images. Every {p['probe_every']} steps, and "
    f"at step 0: the validation accuracy on {m['validation_images']:,} held-out "
    f"training images, the mean and standard deviation per channel of the input of "
    f"`{m['probed_layer']}` (the second convolution) on a fixed batch of "
    f"{p['batch_size']} training images, in training mode, and, without and with BN, "
    f"the loss landscape along the gradient. Seed {p['seed']}."
))

# %% [markdown]
# ## The paper's claim (a): noisy BN trains about as well as BN ...

# %%
fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(13, 4.5))
for variant, label in labels.items():
    color, style = styles[variant]
    series = m[variant]
    ax_acc.plot(
        steps, findings.as_array(series["val_accuracy"]), style, color=color,
        label=label,
    )
    ax_loss.plot(
        steps[1:], findings.as_array(series["train_loss"][1:]), style, color=color,
        label=label,
    )
ax_acc.set_ylabel("validation accuracy")
ax_acc.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
ax_acc.set_ylim(0, 1)
ax_acc.set_title("(a) validation accuracy (inference mode)")
ax_loss.set_ylabel(f"training loss, mean of the last {p['probe_every']} steps")
ax_loss.set_yscale("log")
ax_loss.set_title("(b) training cross-entropy loss (log scale)")
for ax in (ax_acc, ax_loss):
    step_axis(ax)
ax_acc.legend(loc="lower right")  # below the inset
ax_loss.legend(loc="best")
# On a 0-100% axis the last half-points the text compares are invisible: the second
# half of training again, on an axis fitted to it.
late = steps >= steps[len(steps) // 2]
late_values = np.concatenate(
    [findings.as_array(m[v]["val_accuracy"])[late] for v in labels]
)
if np.isfinite(late_values).any():  # a run that diverged throughout has nothing
    zoom = ax_acc.inset_axes([0.42, 0.3, 0.55, 0.45])
    for variant in labels:
        color, style = styles[variant]
        zoom.plot(steps[late], findings.as_array(m[variant]["val_accuracy"])[late],
                  style, color=color)
    low, high = np.nanmin(late_values), np.nanmax(late_values)
    zoom.set_ylim(low - 0.1 * (high - low + 1e-3), high + 0.1 * (high - low + 1e-3))
    zoom.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    zoom.set_title("second half, zoomed", fontsize="small")
    zoom.tick_params(labelsize="small")
    zoom.grid(alpha=0.3)
fig.tight_layout()
show(fig, (
    "Two line charts against the training step, without BN, with BN and "
    "with noisy BN: (a) validation accuracy, with the second half of "
    "training zoomed in an inset; (b) training loss on a log scale."
))

display(Markdown(findings.training_findings(m)))

# %% [markdown]
# ## ... although its layer inputs are far from stable

# %%
fig, (ax_shift, ax_scale) = plt.subplots(1, 2, figsize=(13, 4.5))
for variant, label in labels.items():
    color, style = styles[variant]
    series = m[variant]
    ax_shift.plot(
        steps[1:], findings.input_shift(series["input_mean"], series["input_std"]),
        style, color=color, marker="o", markersize=3, label=label,
    )
    ax_scale.plot(
        steps[1:], findings.scale_change(series["input_std"]), style, color=color,
        marker="o", markersize=3, label=label,
    )
ax_shift.set_ylabel(
    "mean |change of a channel's mean|\n(in channel standard deviations)"
)
ax_shift.set_title(f"(a) how far the input of {m['probed_layer']} moved")
ax_scale.set_ylabel("mean |change of a channel's std|\n(relative to the std before)")
ax_scale.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
ax_scale.set_title("(b) how much its spread changed")
for ax in (ax_shift, ax_scale):
    ax.set_yscale("log")
    step_axis(ax, f"training step (change since the probe {p['probe_every']} steps "
                  "before)")
    ax.legend(loc="best")
fig.tight_layout()
show(fig, (
    "Two line charts against the training step, without BN, with BN and "
    "with noisy BN: (a) how far the per-channel mean of the input of "
    f"{m['probed_layer']} moved between probes, in standard deviations, (b) "
    "how much its per-channel spread changed."
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
bn = findings.landscape_series(m, "bn")
plain = findings.landscape_series(m, "plain")
# One above the other: three side by side shrink to unreadable on a page.
fig, axes = plt.subplots(3, 1, figsize=(9, 11))
for series, variant in ((plain, "plain"), (bn, "bn")):
    color, style = styles[variant]
    probes = m[variant]["landscape"]
    losses = np.array(
        [findings.as_array([q["loss"], *q["losses"]]) for q in probes]
    )
    axes[0].fill_between(
        steps, np.nanmin(losses, axis=1), np.nanmax(losses, axis=1), color=color,
        alpha=0.3, label=f"{labels[variant]}: range",
    )
    axes[0].plot(steps, series["loss"], style, color=color,
                 label=f"{labels[variant]}: at the step")
    axes[1].plot(steps, series["gradient_change"], style, color=color, marker="o",
                 markersize=3, label=labels[variant])
    axes[2].plot(steps, series["smoothness"], style, color=color, marker="o",
                 markersize=3, label=labels[variant])
sizes = f"{p['step_sizes'][0]:g} to {p['step_sizes'][-1]:g}"
axes[0].set_ylabel("training-batch loss along the gradient")
axes[0].set_yscale("log")
axes[0].set_title(f"(a) loss landscape: loss at θ − η·g, η = {sizes}")
axes[1].set_ylabel("max over η of ‖∇L(θ − η·g) − g‖₂")
axes[1].set_title("(b) gradient predictiveness")
axes[2].set_ylabel("max over η of ‖∇L(θ − η·g) − g‖₂ / (η‖g‖₂)")
axes[2].set_title("(c) effective β-smoothness")
for ax in axes:
    step_axis(ax)
    ax.legend(loc="best", fontsize="small")
for ax in axes[1:]:
    ax.set_yscale("log")
fig.tight_layout()
show(fig, (
    "Three charts against the training step, with and without BN: (a) the "
    "training-batch loss at points along the gradient, (b) the largest "
    "change of the gradient along it, (c) the effective beta-smoothness."
))

display(Markdown(findings.landscape_findings(m)))

# %% [markdown]
# At each probe, on the batch the next step trains on and with BN in training mode:
# the loss and gradient g at the weights θ, then the loss and gradient at θ − η·g for
# each step size η. (a) the range of the loss over those points (shaded) and the loss
# at θ (line); (b) the largest distance of a gradient from g; (c) that distance per
# unit of distance moved, the largest over η. Lower is smoother.

# %%
rows = [
    "| step | loss spread, BN | without BN | gradient change, BN | without BN "
    "| β-smoothness, BN | without BN |",
    "|---:|---:|---:|---:|---:|---:|---:|",
]
for i, step in enumerate(steps):
    rows.append(
        f"| {step:,} | {findings.decimal(bn['loss_spread'][i])} "
        f"| {findings.decimal(plain['loss_spread'][i])} "
        f"| {findings.decimal(bn['gradient_change'][i])} "
        f"| {findings.decimal(plain['gradient_change'][i])} "
        f"| {findings.decimal(bn['smoothness'][i])} "
        f"| {findings.decimal(plain['smoothness'][i])} |"
    )
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Caveats

# %%
display(Markdown(findings.caveats(m)))
