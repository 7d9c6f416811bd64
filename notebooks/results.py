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

# %% tags=["parameters"]
# Set by the stage (papermill injects them after this cell): params.yaml's `report`
# section, and the files to read, which dvc.yaml names.
backends = None
inference_batch = None
mnist_path = None
model_path = None
probabilities_path = None
compare_run_path = None
train_run_path = None
train_history_path = None
eval_run_path = None
predictions_path = None

# %%
import json
import time
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from matplotlib.ticker import MaxNLocator

import bnk
from pipeline.core import dataset, models, params
from pipeline.core.backends import BACKEND_NAMES
from pipeline.core.environment import describe
from pipeline.reporting import spread
from pipeline.reporting.figures import show

here = describe()
backend = here["backend"]
display(Markdown(
    f"# bnk on MNIST: results under {BACKEND_NAMES[backend]}\n\n"
    "This page is executed by the pipeline (`dvc repro`, stage "
    f"`report@{backend}`) once per Keras backend; this is {BACKEND_NAMES[backend]}'s. "
    "It shows two models:\n\n"
    f"1. **This backend's own training runs** (stage `compare@{backend}`): `bnk.CNN` "
    f"trained on {BACKEND_NAMES[backend]} from the same initial weights, on the same "
    "batches in the same order, as on every other backend, then tested; once per "
    "seed.\n"
    "2. **The main model** (stage `train`): the tutorial's full training run, on "
    f"whichever backend `dvc repro` ran, loaded and checked under "
    f"{BACKEND_NAMES[backend]}.\n\n"
    "Each section says which of the two its figures come from. [All backends side by "
    "side](index.html)."
))
own = json.loads(Path(compare_run_path).read_text())
train_metrics = json.loads(Path(train_run_path).read_text())
eval_metrics = json.loads(Path(eval_run_path).read_text())
x_test, y_test = dataset.load_test(mnist_path)


def table(rows, header):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    display(Markdown("\n".join(lines)))


# %% [markdown]
# ## Provenance

# %%
table(
    [
        ["backend executing this page", backend],
        ["this backend's training run: code version", own["code_version"]],
        ["main model: trained on", train_metrics["backend"]],
        ["main model: code version", train_metrics["code_version"]],
        ["keras", here["keras_version"]],
        [f"{backend} version", here["backend_version"]],
        [
            f"{train_metrics['backend']} version (main model)",
            train_metrics["backend_version"],
        ],
        ["python", here["python_version"]],
        ["device", here["device"]],
    ],
    ["", "value"],
)
settings = params.load()
print(json.dumps({"seed": settings.seed, "train": settings.train.model_dump(),
                  "compare": settings.compare.model_dump()}, indent=2))

# %% [markdown]
# ## This backend's own training runs
#
# `bnk.CNN` with dropout off (its random masks differ between backends by design), Adam,
# from initial weights drawn with NumPy, on batches drawn by the project's own shuffle:
# the same start and the same batches on every backend, for each seed of params.yaml's
# `compare.seeds` (each seed draws other weights and another order of batches). The
# loss of every step, then the 10,000 test images. The first seed's run is the one the
# index dissects.

# %%
seed_runs = own["runs"]
losses = np.array(own["losses"])
steps = np.arange(1, len(losses) + 1)
window = max(1, len(losses) // 50)


def smooth(values):
    return np.convolve(values, np.ones(window) / window, mode="valid")


fig, ax = plt.subplots(figsize=(10, 4))
ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8,
        label=f"each step, seed {own['seed']}")
ax.plot(steps[window - 1:], smooth(losses), color="tab:blue",
        label=f"mean of the last {window} steps, seed {own['seed']}")
colors = ["tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
for index, run in enumerate(seed_runs[1:]):
    ax.plot(steps[window - 1:], smooth(np.array(run["losses"])), "--",
            color=colors[index % len(colors)],
            label=f"mean of the last {window} steps, seed {run['seed']}")
ax.set(xlabel="training step", ylabel="training loss (cross-entropy)", yscale="log",
       title=f"{BACKEND_NAMES[backend]}: loss at every step of its own training runs")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.grid(alpha=0.3, which="both")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
plt.tight_layout()
show(fig, (
    f"Line chart: the training loss at every step of {BACKEND_NAMES[backend]}'s own "
    f"training run with seed {own['seed']}, and its running mean, with the running "
    "means of the other seeds' runs (log scale)."
))
accuracies = [run["test_accuracy"] for run in seed_runs]
table(
    [
        [run["seed"], f"{run['test_accuracy']:.4f}", f"{run['test_loss']:.4f}",
         f"{run['wall_seconds']:.0f} s"]
        for run in seed_runs
    ]
    + [[
        "mean ± std",
        "{:.4f} ± {:.4f}".format(*spread.mean_std(accuracies)),
        "{:.4f} ± {:.4f}".format(*spread.mean_std(r["test_loss"] for r in seed_runs)),
        "",
    ]],
    ["seed", "test accuracy", "test loss", "training time"],
)
table(
    [
        ["training images", f"{own['training_images']:,}"],
        ["passes over them", own["epochs"]],
        ["steps (batch size)", f"{own['steps']:,} ({own['batch_size']})"],
        [f"images per second (seed {own['seed']})", f"{own['images_per_second']:,.0f}"],
        ["device", own["device"]],
    ],
    [f"{BACKEND_NAMES[backend]}'s own runs", "value"],
)

# %%
display(Markdown(
    f"## The main model, trained on {BACKEND_NAMES[train_metrics['backend']]}\n\n"
    "Everything below comes from the model that the `train` stage fitted (the "
    f"tutorial's settings, dropout on, {train_metrics['epochs']} epochs) on "
    f"**{BACKEND_NAMES[train_metrics['backend']]}**"
    + (", the backend of this page." if train_metrics["backend"] == backend else
       f", loaded and run here under **{BACKEND_NAMES[backend]}**: training curves and "
       f"test metrics are {BACKEND_NAMES[train_metrics['backend']]}'s; the "
       "cross-backend check, the images and the speed are measured under "
       f"{BACKEND_NAMES[backend]}.")
))

# %% [markdown]
# ### Training curves

# %%
history = np.genfromtxt(train_history_path, delimiter=",", names=True)
epochs = history["epoch"] + 1
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
ax_loss.plot(epochs, history["loss"], "o-", label="train (dropout on)")
ax_loss.plot(epochs, history["val_loss"], "s-", label="validation")
ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
ax_acc.plot(epochs, history["accuracy"], "o-", label="train (dropout on)")
ax_acc.plot(epochs, history["val_accuracy"], "s-", label="validation")
ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
for ax in (ax_loss, ax_acc):
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
plt.tight_layout()
show(fig, (
    "Two line charts against the epoch: training and validation loss, "
    "training and validation accuracy of the main model."
))
print(
    f"{train_metrics['training_images']:,} training images, "
    f"{train_metrics['epochs']} epochs, "
    f"{train_metrics['wall_seconds']:.0f} s "
    f"({train_metrics['images_per_second']:,.0f} images/s) "
    f"on {train_metrics['device']}, {train_metrics['backend']}"
)

# %% [markdown]
# ### Test metrics

# %%
per_class = eval_metrics["per_class_accuracy"]
table(
    [
        ["accuracy", f"{eval_metrics['accuracy']:.4f}"],
        ["loss", f"{eval_metrics['loss']:.4f}"],
        ["test images", eval_metrics["test_images"]],
    ]
    + [
        [f"accuracy of digit {digit}", f"{value:.4f}"]
        for digit, value in per_class.items()
    ],
    ["metric", "value"],
)
predictions = np.genfromtxt(predictions_path, delimiter=",", names=True, dtype=int)
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (predictions["actual"], predictions["predicted"]), 1)
fig, ax = plt.subplots(figsize=(6.5, 5.5))
shown = np.log10(confusion + 1)
image = ax.imshow(shown, cmap="Blues")
for (row, column), count in np.ndenumerate(confusion):
    if count:
        ax.text(column, row, count, ha="center", va="center", fontsize=8,
                color="white" if shown[row, column] > shown.max() / 2 else "black")
ax.set(
    xticks=range(10),
    yticks=range(10),
    xlabel="predicted digit",
    ylabel="true digit",
    title="Confusion matrix (test set, colour on a log scale)",
)
show(fig, (
    "Confusion matrix of the main model on the test set: true digit against"
    " predicted digit, colour on a log scale."
))

# %% [markdown]
# ### The main model under this backend

# %%
model = models.load_trained_cnn(model_path)
logits = model.predict(x_test, batch_size=inference_batch, verbose=0)
probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
predicted = probabilities.argmax(axis=1)
accuracy = float(np.mean(predicted == y_test))
reference = np.load(probabilities_path)
max_difference = float(np.abs(probabilities - reference).max())
table(
    [
        [f"test accuracy under {backend}", f"{accuracy:.4f}"],
        [
            f"test accuracy in {eval_run_path} ({eval_metrics['backend']})",
            f"{eval_metrics['accuracy']:.4f}",
        ],
        [
            "images predicted differently",
            int(np.sum(predicted != reference.argmax(axis=1))),
        ],
        ["largest probability difference", f"{max_difference:.2e}"],
    ],
    ["cross-backend check", "value"],
)
assert max_difference <= 1e-4, f"probabilities differ by {max_difference:.2e} > 1e-4"
assert abs(accuracy - eval_metrics["accuracy"]) <= 1e-4, (
    accuracy,
    eval_metrics["accuracy"],
)

# %% [markdown]
# ### Test images: predicted and true labels (misclassified in red)

# %%
wrong = np.flatnonzero(predicted != y_test)
right = np.flatnonzero(predicted == y_test)
shown = np.concatenate([wrong[:16], right[: 32 - len(wrong[:16])]])
fig, axes = plt.subplots(4, 8, figsize=(12, 6.6))
# Up to 32 images for the 32 panels: fewer when few are right, and the rest stay empty.
for ax, index in zip(axes.flat, shown, strict=False):
    ax.imshow(x_test[index, ..., 0], cmap="gray_r")
    is_wrong = predicted[index] != y_test[index]
    ax.set_title(f"pred {predicted[index]} / true {y_test[index]}", fontsize=9,
                 color="red" if is_wrong else "black")
    for spine in ax.spines.values():
        spine.set(
            color="red" if is_wrong else "lightgray", linewidth=3 if is_wrong else 1
        )
    ax.set(xticks=[], yticks=[])
plt.suptitle(f"{len(wrong)} of {len(y_test)} test images misclassified; "
             f"the first {len(wrong[:16])} of them in red, then correct ones")
plt.tight_layout()
show(fig, (
    "A grid of misclassified test images, each titled with its predicted "
    "and true digit."
))

# %% [markdown]
# ### Batch normalization, layer by layer
#
# Per channel: the moving mean and variance the layer normalizes with at inference, and
# the learned scale (gamma) and shift (beta).

# %%
batch_norms = [
    layer for layer in model._flatten_layers() if isinstance(layer, bnk.BatchNorm)
]
fig, axes = plt.subplots(
    len(batch_norms), 4, figsize=(13, 2.8 * len(batch_norms)), squeeze=False
)
variables = ["moving_mean", "moving_variance", "gamma", "beta"]
for row, layer in zip(axes, batch_norms, strict=True):
    for ax, name in zip(row, variables, strict=True):
        values = keras.ops.convert_to_numpy(getattr(layer, name))
        ax.bar(range(len(values)), values, width=1.0)
        ax.set(title=f"{layer.name}: {name}", xlabel="channel", ylabel=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
plt.tight_layout()
show(fig, (
    "Bar charts per BN layer and channel: the moving mean, the moving "
    "variance, gamma and beta."
))
table(
    [
        [
            layer.name,
            len(keras.ops.convert_to_numpy(layer.gamma)),
            layer.momentum,
            layer.epsilon,
        ]
        for layer in batch_norms
    ],
    ["layer", "channels", "momentum", "epsilon"],
)

# %% [markdown]
# ### Inference speed of the main model on this backend

# %%
batch = x_test[:inference_batch]
model.predict(batch, batch_size=inference_batch, verbose=0)  # compile / warm up
timings = []
for _ in range(7):
    start = time.perf_counter()
    model.predict(batch, batch_size=inference_batch, verbose=0)
    timings.append(time.perf_counter() - start)
print(
    f"{inference_batch / np.median(timings):,.0f} images/s "
    f"(median of {len(timings)}, "
    f"batch {inference_batch}, {backend} on {here['device']})"
)
