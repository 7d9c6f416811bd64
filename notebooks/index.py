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
seeds_metrics_path = None
seeds_run_path = None
compare_run_paths = None
experiment_titles = None

# %%
import itertools
import json
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from pipeline.core.backends import BACKEND_NAMES
from pipeline.reporting import comparison, spread
from pipeline.reporting.figures import show

train_metrics = json.loads(Path(train_run_path).read_text())
eval_metrics = json.loads(Path(eval_run_path).read_text())
experiment = json.loads(Path(experiment_results_path).read_text())
seeds_metrics = json.loads(Path(seeds_metrics_path).read_text())
seeds_run = json.loads(Path(seeds_run_path).read_text())
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
    "runs, and the main model run under it"
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
default = seeds_run["recipe"]
table(
    [
        [
            "test accuracy (this model: one training run)",
            f"{eval_metrics['accuracy']:.4f}",
        ],
        [
            f"test accuracy of the same recipe over {len(seeds_metrics['seeds'])} "
            "seeds (stage `seeds`)",
            f"{seeds_metrics['accuracy_mean']:.4f} ± "
            f"{seeds_metrics['accuracy_std']:.4f}",
        ],
        ["inference statistics", comparison.recipe_label(default)],
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
    comparison.bn_buys(
        spread.over_seeds(experiment, lambda run: run["mlp"]["bn"][-1]),
        spread.over_seeds(experiment, lambda run: run["mlp"]["plain"][-1]),
    )
    + f" See [the experiment](bn_experiment.html), run on "
    f"{BACKEND_NAMES[experiment['backend']]}."
))

# %% [markdown]
# ## The main model over seeds
#
# The model above is one training run, one draw of its seed. Stage `seeds` trains the
# same recipe (params.yaml's `train`, on one device) once per seed, and tests each
# model with three choices of the statistics BN normalizes with at inference: the
# moving averages at the seed tutorial's momentum, 0.9; at Keras's default, 0.99 (both
# kept during the same training run); and population statistics recomputed over
# training batches after training (`bnk.recompute_statistics`). The default recipe is
# the one params.yaml's `train.statistics` names.

# %%
recipes = list(seeds_run["spread"])
by_recipe = {
    recipe: np.array([run["accuracy"][recipe] for run in seeds_run["runs"]])
    for recipe in recipes
}
seed_list = [run["seed"] for run in seeds_run["runs"]]
table(
    [
        [
            comparison.recipe_label(recipe)
            + (" (the default)" if recipe == default else ""),
            spread.with_spread(by_recipe[recipe]),
            ", ".join(f"{100 * a:.2f}%" for a in by_recipe[recipe]),
        ]
        for recipe in recipes
    ],
    [
        "BN's statistics at inference",
        f"test accuracy over {len(seed_list)} seeds (mean ± std, points)",
        f"seed {', '.join(map(str, seed_list))}",
    ],
)
display(Markdown(
    comparison.one_run_among_seeds(eval_metrics["accuracy"], by_recipe[default])
    + " " + comparison.recipes(by_recipe, default)
    + f" Trained and tested on {BACKEND_NAMES[seeds_run['backend']]} "
    f"({seeds_run['device']})."
))

# %%
fig, ax = plt.subplots(figsize=(9, 4.5))
positions = np.arange(len(recipes))
for x, recipe in zip(positions, recipes, strict=True):
    values = 100 * by_recipe[recipe]
    mean, std = spread.mean_std(values)
    offsets = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else [0.0]
    ax.plot(x + np.asarray(offsets), values, "o", color="tab:gray", alpha=0.6,
            markersize=5, label="one seed" if x == 0 else None)
    ax.errorbar(x + 0.25, mean, yerr=std, fmt="s", color="tab:blue", capsize=6,
                markersize=7, label="mean ± std over seeds" if x == 0 else None)
ax.axhline(100 * comparison.ACCURACY_GOAL, color="tab:red", linestyle="--",
           linewidth=1, label=f"goal, {100 * comparison.ACCURACY_GOAL:.1f}%")
ax.axhline(100 * eval_metrics["accuracy"], color="tab:green", linestyle=":",
           linewidth=1.5, label="the model the reports dissect (one run)")
ax.set_xticks(
    positions, [textwrap.fill(comparison.recipe_label(r), 24) for r in recipes]
)
ax.set(ylabel="test accuracy (%)", xlabel="BN's statistics at inference",
       title=f"The main model's recipe over {len(seed_list)} seeds")
ax.ticklabel_format(axis="y", useOffset=False)
ax.grid(alpha=0.3, axis="y")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
plt.tight_layout()
show(fig, (
    "Test accuracy of the main model's recipe for each choice of BN's inference "
    "statistics: one dot per seed, and the mean with an error bar of one standard "
    "deviation over the seeds; dashed, the 99.2% goal; dotted, the accuracy of the "
    "single model the reports dissect."
))

# %% [markdown]
# ## Every backend from the same start, on the same batches
#
# Stage `compare@<backend>` trains `bnk.CNN` on each backend from the same initial
# weights (drawn with NumPy), on the same batches in the same order (the project's own
# shuffle, fresh in every pass), with dropout off (its random masks differ between
# backends by design), then tests it on the 10,000 test images. What differs is only the
# arithmetic of each backend. It does so once per seed of params.yaml's
# `compare.seeds`: each seed draws other initial weights and another order of batches,
# the same on every backend. The spread between seeds says how much one training run's
# numbers move by chance, against which the backends' differences are measured.

# %%
first = next(iter(runs.values()))
compare_seeds = [run["seed"] for run in first["runs"]]
accuracies = comparison.per_seed(runs, lambda run: run["test_accuracy"])
test_losses = comparison.per_seed(runs, lambda run: run["test_loss"])
late_losses = comparison.per_seed(runs, lambda run: comparison.late_loss(run["losses"]))
rows = []
for b, run in runs.items():
    rows.append([
        BACKEND_NAMES[b], spread.with_spread(accuracies[b]),
        comparison.loss_with_spread(test_losses[b]),
        comparison.loss_with_spread(late_losses[b]),
        f"{np.mean([r['wall_seconds'] for r in run['runs']]):.0f} s",
        f"{run['images_per_second']:,.0f}", run["device"],
    ])
table(rows, [
    "backend", f"test accuracy over {len(compare_seeds)} seeds (mean ± std, points)",
    "test loss (mean ± std)",
    f"mean training loss of the last {comparison.LATE_STEPS} steps (mean ± std)",
    "training time (mean per seed)", f"images/s (seed {first['seed']})", "device",
])
display(Markdown(
    f"Seeds {', '.join(map(str, compare_seeds))}; each run {first['steps']:,} steps "
    f"of {first['batch_size']} images "
    f"({first['epochs']} pass{'es' if first['epochs'] > 1 else ''} over "
    f"{first['training_images']:,} training images), "
    f"Adam at {first['learning_rate']:g}. "
    "Training time includes a host round trip per step to record each step's loss, "
    "which the `train` stage does not make.\n\n"
    + comparison.between_backends(accuracies, "test accuracy")
    + "\n\n"
    + comparison.between_backends(
        late_losses,
        f"the mean training loss of the last {comparison.LATE_STEPS} steps",
        accuracy=False,
    )
))

# %%
# The first seed's runs (the ones dissected below), and every seed's.
losses = {b: np.array(run["losses"]) for b, run in runs.items()}
seed_losses = {
    b: np.array([r["losses"] for r in run["runs"]]) for b, run in runs.items()
}

# %%
steps = np.arange(1, len(next(iter(losses.values()))) + 1)
window = max(1, len(steps) // 50)


def smooth(values):
    return np.convolve(values, np.ones(window) / window, mode="valid")


def smooth_rows(rows):
    return np.array([smooth(row) for row in rows])


fig, (ax_loss, ax_gap) = plt.subplots(2, 1, figsize=(12, 7.5), sharex=True)
styles = {"tensorflow": "-", "jax": "--", "torch": ":"}
for b, rows in seed_losses.items():
    smoothed = smooth_rows(rows)
    mean = smoothed.mean(axis=0)
    std = smoothed.std(axis=0, ddof=1) if len(smoothed) > 1 else np.zeros_like(mean)
    line, = ax_loss.plot(
        steps[window - 1:], mean, styles[b], linewidth=2, label=BACKEND_NAMES[b]
    )
    # Clipped above zero: the axis is logarithmic.
    ax_loss.fill_between(steps[window - 1:], np.maximum(mean - std, mean * 0.05),
                         mean + std, color=line.get_color(), alpha=0.15)
ax_loss.set(
    ylabel="training loss",
    yscale="log",
    title=(f"Loss per step, running mean of {window} steps: mean over "
           f"{len(compare_seeds)} seeds, band ± std (the curves overlap)"),
)
ax_loss.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
for (a, b) in itertools.combinations(backends, 2):
    gap = np.abs(losses[a] - losses[b]) / np.abs(losses[b])
    # identical losses have no place on a log axis
    shown = np.where(gap > 0, gap, np.nan)
    dots, = ax_gap.plot(steps, shown, ".", markersize=2, alpha=0.4)
    apart = np.abs(seed_losses[a] - seed_losses[b]) / np.abs(seed_losses[b])
    every = smooth_rows(apart)
    ax_gap.plot(
        steps[window - 1:],
        every.mean(axis=0),
        linewidth=2,
        color=dots.get_color(),
        label=(
            f"{BACKEND_NAMES[a]} vs {BACKEND_NAMES[b]} "
            f"({int(np.sum(gap == 0))} steps identical in seed {first['seed']})"
        ),
    )
    # Clipped above zero, as the axis is logarithmic: the range over the seeds.
    low = np.where(every.min(axis=0) > 0, every.min(axis=0), np.nan)
    ax_gap.fill_between(steps[window - 1:], low, every.max(axis=0),
                        color=dots.get_color(), alpha=0.15)
# A log step axis: the first steps, where the backends part, get their share of it.
ax_gap.set(
    xlabel="training step (log scale)",
    ylabel="relative loss difference",
    xscale="log",
    yscale="log",
    title=(f"How far apart the backends are (dots: each step of seed {first['seed']}; "
           "lines: running mean, mean over seeds; bands: range over seeds)"),
)
if len(backends) > 1:
    ax_gap.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
for ax in (ax_loss, ax_gap):
    ax.grid(alpha=0.3, which="both")
plt.tight_layout()
show(fig, (
    "Two charts against the training step: the training loss of each "
    "backend (log scale), its running mean averaged over the seeds with a band of "
    "one standard deviation, the backends nearly overlapping; and the relative loss "
    f"difference of each pair of backends, per step for seed {first['seed']} and as "
    "a running mean averaged over the seeds with a band spanning the seeds, on log "
    "scales."
))
if len(backends) > 1:
    display(Markdown(f"Seed {first['seed']}: " + comparison.late_gap(losses)))


# %% [markdown]
# ## Where the backends part
#
# From the same start on the same batches, the backends' losses agree to the last
# digits float32 keeps for the first steps, then part. The first steps tell which pair
# parts when. From here on the page follows the first seed's runs, of which the
# weights after step 1 are recorded; the table gives every seed's parting step too.

# %%
early = min(10, len(steps))
rows = []
for a, b in itertools.combinations(backends, 2):
    gap = np.abs(losses[a][:early] - losses[b][:early]) / np.abs(losses[b][:early])
    every = [
        comparison.first_step_above(x, y, comparison.TOGETHER)
        for x, y in zip(seed_losses[a], seed_losses[b], strict=True)
    ]
    rows.append(
        [
            f"{BACKEND_NAMES[a]} vs {BACKEND_NAMES[b]}",
            f"{gap[0]:.1e}",
            f"{gap.max():.1e}",
            every[0] if every[0] else f"never in {len(steps):,}",
            ", ".join(str(step) if step else "never" for step in every),
        ]
    )
table(rows, ["pair", "relative loss gap, step 1", f"largest in the first {early} steps",
             f"first step above {comparison.TOGETHER:.0e}",
             f"the same, seeds {', '.join(map(str, compare_seeds))}"])
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
        "bnk's moments",
    ],
)
others_off = [
    f"{BACKEND_NAMES[b]} is off by {errors[b]['keras.ops.mean']:.0e}"
    for b in backends if b != "tensorflow"
]
one_sum = [BACKEND_NAMES[b] for b in backends if b != "tensorflow"]
one_sum_errors = [
    f"{errors[b]['bnk.functional.moments']:.0e}" for b in backends if b != "tensorflow"
]
display(Markdown(
    "The table above is the relative error, against a float64 mean, of the batch mean "
    "BatchNorm takes of the first convolution's output "
    f"({first['batch_size']} images x 28 x 28 positions per channel, at the common "
    f"initial weights of seed {first['seed']}). "
    + ("TensorFlow's CPU reduction over several axes at once adds them up in one "
       "float32 running sum: off by "
       f"{errors['tensorflow']['keras.ops.mean']:.0e}"
       + (f", where {' and '.join(others_off)}" if others_off else "")
       + ". On TensorFlow bnk sums one axis at a time, which brings it to "
       f"{errors['tensorflow']['bnk.functional.moments']:.0e}"
       + (f"; on {' and '.join(one_sum)}, bnk's one sum over every axis is off by "
          f"{' and '.join(one_sum_errors)}" if one_sum else "")
       + ". "
       if "tensorflow" in errors else "")
    + "BN's backward pass, in closed form, takes its sums the same way. "
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
        above = int(np.sum(difference > comparison.WEIGHT_TOLERANCE))
        row.append(f"{difference.max():.1e} ({above})")
    rows.append(row)
table(
    rows,
    ["weight after step 1"]
    + [
        f"{BACKEND_NAMES[a]} vs {BACKEND_NAMES[b]}: largest difference "
        f"(entries above {comparison.WEIGHT_TOLERANCE:g})"
        for a, b in itertools.combinations(backends, 2)
    ],
)
learning_rate = first["learning_rate"]
display(Markdown(
    comparison.first_step(after, learning_rate)
    + f" Where the backends' test accuracies end after {first['steps']:,} steps is "
    "set against the spread between seeds at the top of this comparison."
))
