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
# # bnk: batch normalization on TensorFlow, JAX and PyTorch
#
# `bnk.BatchNorm` is one Keras 3 layer, written with `keras.ops` only, that runs
# unchanged on every backend. This page gathers the headline results of the pipeline
# (`dvc repro`) and compares the backends; every number on it is read from the metrics
# files the pipeline wrote. The detailed reports:

# %% tags=["parameters"]
# Set by the stage (papermill injects them after this cell): the backends of
# params.yaml's `report` section, the files to read, which dvc.yaml names, and the
# title of each experiment's report (`experiments.registry`).
backends = None
train_run_path = None
eval_run_path = None
experiment_results_path = None
compare_run_paths = None
experiment_titles = None

# %%
import itertools
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from pipeline.core.backends import BACKEND_NAMES
from pipeline.reporting import comparison
from pipeline.reporting.figures import show

train_metrics = json.loads(Path(train_run_path).read_text())
eval_metrics = json.loads(Path(eval_run_path).read_text())
experiment = json.loads(Path(experiment_results_path).read_text())
runs = {
    backend: json.loads(Path(compare_run_paths[backend]).read_text())
    for backend in backends
}


def table(rows, header):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    display(Markdown("\n".join(lines)))


links = [
    f"- [Results under {BACKEND_NAMES[b]}]({b}.html): that backend's own training "
    "run, and the main model run under it"
    for b in backends
]
links += [
    f"- [{title[:1].upper()}{title[1:]}]({name}.html)"
    for name, title in experiment_titles.items()
]
display(Markdown("\n".join(links)))

# %% [markdown]
# ## The main model

# %%
table(
    [
        ["test accuracy", f"{eval_metrics['accuracy']:.4f}"],
        ["test loss", f"{eval_metrics['loss']:.4f}"],
        [
            "trained on",
            f"{BACKEND_NAMES[train_metrics['backend']]} "
            f"{train_metrics['backend_version']}",
        ],
        [
            "epochs, training images",
            f"{train_metrics['epochs']}, {train_metrics['training_images']:,}",
        ],
        ["training time", (f"{train_metrics['wall_seconds']:.0f} s "
                           f"({train_metrics['images_per_second']:,.0f} images/s)")],
        ["device", train_metrics["device"]],
        ["code version", train_metrics["code_version"]],
    ],
    ["`bnk.CNN`, the tutorial's settings (stages `train`, `evaluate`)", "value"],
)
display(Markdown(
    "What BN buys, in one line: in Ioffe & Szegedy's Figure 1 network the test "
    f"accuracy after the last step is {100 * experiment['mlp']['bn'][-1]:.2f}% "
    f"with BN against {100 * experiment['mlp']['plain'][-1]:.2f}% without "
    "([the experiment](bn_experiment.html), on "
    f"{BACKEND_NAMES[experiment['backend']]})."
))

# %% [markdown]
# ## Every backend from the same start, on the same batches
#
# Stage `compare@<backend>` trains `bnk.CNN` on each backend from the same initial
# weights (drawn with NumPy), on the same batches in the same order (the project's own
# shuffle, fresh in every pass), with dropout off (its random masks differ between
# backends by design), then tests it on the 10,000 test images. What differs is only the
# arithmetic of each backend.

# %%
losses = {b: np.array(run["losses"]) for b, run in runs.items()}
final_losses = {
    b: values[-min(100, len(values)):].mean() for b, values in losses.items()
}
rows = []
for b, run in runs.items():
    others = [abs(final_losses[b] - final_losses[o]) for o in backends if o != b]
    rows.append([
        BACKEND_NAMES[b], f"{run['test_accuracy']:.4f}", f"{run['test_loss']:.4f}",
        f"{run['wall_seconds']:.0f} s", f"{run['images_per_second']:,.0f}",
        f"{max(others):.1e}" if others else "n/a", run["device"],
    ])
table(rows, ["backend", "test accuracy", "test loss", "training time", "images/s",
             "largest gap in the mean loss of the last 100 steps", "device"])
first = next(iter(runs.values()))
display(Markdown(
    f"{first['steps']:,} steps of {first['batch_size']} images "
    f"({first['epochs']} pass{'es' if first['epochs'] > 1 else ''} over "
    f"{first['training_images']:,} training images), "
    f"Adam at {first['learning_rate']:g}. "
    "Training time includes a host round trip per step to record each step's loss, so "
    "images/s here are lower than in the `train` stage. "
    + comparison.late_gap(losses)
))

# %%
steps = np.arange(1, len(next(iter(losses.values()))) + 1)
window = max(1, len(steps) // 50)


def smooth(values):
    return np.convolve(values, np.ones(window) / window, mode="valid")


fig, (ax_loss, ax_gap) = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True)
styles = {"tensorflow": "-", "jax": "--", "torch": ":"}
for b, values in losses.items():
    ax_loss.plot(
        steps[window - 1:],
        smooth(values),
        styles[b],
        linewidth=2,
        label=BACKEND_NAMES[b],
    )
ax_loss.set(
    ylabel="training loss",
    yscale="log",
    title=f"Loss per step, mean of the last {window} steps (the curves overlap)",
)
ax_loss.legend()
for (a, b) in itertools.combinations(backends, 2):
    gap = np.abs(losses[a] - losses[b]) / np.abs(losses[b])
    # identical losses have no place on a log axis
    shown = np.where(gap > 0, gap, np.nan)
    dots, = ax_gap.plot(steps, shown, ".", markersize=2, alpha=0.4)
    ax_gap.plot(
        steps[window - 1:],
        smooth(gap),
        linewidth=2,
        color=dots.get_color(),
        label=(
            f"{BACKEND_NAMES[a]} vs {BACKEND_NAMES[b]} "
            f"({int(np.sum(gap == 0))} steps identical)"
        ),
    )
# A log step axis: the first steps, where the backends part, get their share of it.
ax_gap.set(
    xlabel="training step (log scale)",
    ylabel="relative loss difference",
    xscale="log",
    yscale="log",
    title="How far apart the backends are (dots: each step; lines: running mean)",
)
if len(backends) > 1:
    ax_gap.legend()
for ax in (ax_loss, ax_gap):
    ax.grid(alpha=0.3, which="both")
plt.tight_layout()
show(fig, (
    "Two charts against the training step: the training loss of each "
    "backend (log scale), nearly overlapping; and the relative loss "
    "difference of each pair of backends, per step and as a running mean, "
    "on log scales."
))


# %% [markdown]
# ## Where the backends part
#
# From the same start on the same batches, the backends' losses agree to the last
# digits float32 keeps for the first steps, then part. The first steps tell which pair
# parts when:

# %%
early = min(10, len(steps))
rows = []
for a, b in itertools.combinations(backends, 2):
    gap = np.abs(losses[a][:early] - losses[b][:early]) / np.abs(losses[b][:early])
    step = comparison.first_step_above(losses[a], losses[b], comparison.TOGETHER)
    rows.append(
        [
            f"{BACKEND_NAMES[a]} vs {BACKEND_NAMES[b]}",
            f"{gap[0]:.1e}",
            f"{gap.max():.1e}",
            step if step else f"never in {len(steps):,}",
        ]
    )
table(rows, ["pair", "relative loss gap, step 1", f"largest in the first {early} steps",
             f"first step above {comparison.TOGETHER:.0e}"])
display(Markdown(comparison.parting(losses)))

errors = {b: run["batch_mean_error"] for b, run in runs.items()}
table(
    [
        [
            BACKEND_NAMES[b],
            f"{e['keras.ops.mean']:.1e}",
            f"{e['bnk.functional.moments']:.1e}",
        ]
        for b, e in errors.items()
    ],
    [
        "backend",
        "`keras.ops.mean` over batch, height and width",
        "bnk's moments (one axis at a time)",
    ],
)
display(Markdown(
    "The table above is the relative error, against a float64 mean, of the batch mean "
    "BatchNorm takes of the first convolution's output (64 images x 28 x 28 positions "
    "per channel, at the common initial weights). "
    + ("TensorFlow's CPU reduction over several axes at once adds them up in one "
       "float32 running sum: off by "
       f"{errors['tensorflow']['keras.ops.mean']:.0e}, where "
       + " and ".join(f"{BACKEND_NAMES[b]} is off by {errors[b]['keras.ops.mean']:.0e}"
                      for b in backends if b != "tensorflow")
       + ". bnk reduces one axis at a time, which brings TensorFlow to "
       f"{errors['tensorflow']['bnk.functional.moments']:.0e}. "
       if "tensorflow" in errors else "")
    + "BN's backward pass, in closed form, takes its sums one axis at a time too. "
    "The convolutions' gradients are the backends' own kernels, though: the gradient "
    "of a bias (or a kernel) is a sum over all those positions, which each backend "
    "adds up in its own order, so TensorFlow's gradients still differ from the "
    "others' in the last digits that float32 keeps (below: the biases of the two "
    "convolutions)."
))

# %%
after = {b: run["weights_after_first_step"] for b, run in runs.items()}
names = sorted(next(iter(after.values())))
rows = []
for name in names:
    row = [f"`{name}`"]
    for a, b in itertools.combinations(backends, 2):
        difference = np.abs(np.array(after[a][name]) - np.array(after[b][name]))
        row.append(f"{difference.max():.1e} ({int(np.sum(difference > 1e-6))})")
    rows.append(row)
table(
    rows,
    ["weight after step 1"]
    + [
        f"{BACKEND_NAMES[a]} vs {BACKEND_NAMES[b]}: largest difference "
        "(entries above 1e-6)"
        for a, b in itertools.combinations(backends, 2)
    ],
)
learning_rate = first["learning_rate"]
display(Markdown(
    comparison.first_step(after, learning_rate)
    + f" After {first['steps']:,} steps the test accuracies span "
    f"{min(run['test_accuracy'] for run in runs.values()):.4f} to "
    f"{max(run['test_accuracy'] for run in runs.values()):.4f} (table above); with one "
    "run per backend, whether such a spread is more than the noise of one training run "
    "is not measured here."
))
