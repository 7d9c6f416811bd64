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
# seed's CNN with and without batch normalization, both measured with `bnk.BatchNorm` on
# the backend the pipeline ran on. The numbers come from `metrics/bn_experiment.json`,
# written by the stage `bn_experiment` (`pipeline/bn_experiment.py`); every sentence below
# that quotes a number is generated from that file.

# %% tags=["parameters"]
metrics_path = "metrics/bn_experiment.json"

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

with open(metrics_path) as f:
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
    suffix = "th" if 10 <= q % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(q % 10, "th")
    return f"{q}{suffix}"


def listing(words):
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


thousands = FuncFormatter(lambda x, _: f"{x:,.0f}")


def step_axis(ax, values, log=False):
    """Integer step ticks with thousands separators; on a log axis 1-2-5 ticks within the data."""
    if log:
        ax.set_xscale("log")
        first, last = values[values > 0].min(), values.max()
        decades = range(int(np.floor(np.log10(first))), int(np.ceil(np.log10(last))) + 1)
        ticks = [m * 10 ** k for k in decades for m in (1, 2, 5) if first <= m * 10 ** k <= last]
        ax.set_xticks(ticks)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(first, last)
        ax.set_xlabel("training step (log scale)")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True, steps=[1, 2, 2.5, 5, 10]))
        ax.set_xlim(values.min(), values.max())
        ax.set_xlabel("training step")
    ax.xaxis.set_major_formatter(thousands)


def se(accuracy, n):
    # standard error of an accuracy measured on n images
    return float(np.sqrt(max(accuracy * (1 - accuracy), 1e-12) / n))


pm, pc = p["mlp"], p["cnn"]
display(Markdown(
    f"Backend **{m['backend']}** ({m['device']}), Keras {m['keras_version']}, "
    f"{m['backend']} {m['backend_version']}. The whole experiment took "
    f"{m['wall_seconds'] / 60:.1f} minutes (Figure 1: {mlp['wall_seconds']['bn']:.0f} s with BN, "
    f"{mlp['wall_seconds']['plain']:.0f} s without; CNN: "
    f"{sum(r['wall_seconds'] for r in cnn['runs']):.0f} s for {len(cnn['runs'])} runs).\n\n"
    f"**Figure 1 setup.** 784 inputs → 3 fully connected hidden layers of 100 sigmoid units → "
    f"10 outputs, kernels from N(0, {pm['init_stddev']}²), softmax cross-entropy; "
    f"{pm['steps']:,} steps of plain SGD (learning rate {pm['learning_rate']}) on mini-batches of "
    f"{pm['batch_size']} from {mlp['training_images']:,} training images; every {pm['eval_every']} "
    f"steps the test accuracy on {mlp['test_images']:,} test images and the "
    f"{listing(ordinal(q) for q in sorted(mlp['percentiles']['bn'], key=int))} "
    f"percentiles, over those test images, of the input to sigmoid {unit} of the last hidden layer "
    f"(inference mode). Once with `bnk.BatchNorm` before each sigmoid (the dense layers then have no "
    f"bias, section 3.2 of the paper), once without; both start from the same kernels and see the "
    f"same batches. Seed {p['seed']}."
))

# %% [markdown]
# **Why plain SGD, and this rate.** The paper names neither the optimizer nor the learning
# rate of this experiment. Plain SGD (no momentum) is the simplest optimizer of its time and
# adds no adaptive per-weight scaling that would itself compensate for badly scaled
# activations. The learning rate and the initial scale stated above come from a short sweep
# on MNIST over a few initial scales and learning rates (described in `params.yaml`; its
# results are not part of the metrics file): the values chosen train the network *without*
# BN fastest, so BN is compared with a tuned baseline rather than a crippled one. At the
# smaller learning rates of that sweep the gap early in training was much larger than below.

# %% [markdown]
# ## Figure 1: a 3-layer sigmoid network on MNIST, with and without BN

# %%
bn_acc, plain_acc = arr(mlp["bn"]), arr(mlp["plain"])
later = steps > 0
low = np.nanmin(np.concatenate([bn_acc[later], plain_acc[later]])) if later.any() else 0.0
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
line_styles = dict(zip(order, ("--", "-", ":"))) if len(order) == 3 else {q: "-" for q in order}
everything = np.concatenate([arr(v) for q in percentiles.values() for v in q.values()])
span = (np.nanmin(everything), np.nanmax(everything))
pad = 0.05 * (span[1] - span[0] + 1e-9)
for ax, name, title in ((axes[1], "plain", "(b) without BN"), (axes[2], "bn", "(c) with BN")):
    for q in reversed(order):
        ax.plot(steps, arr(percentiles[name][q]), line_styles[q], color="C0" if name == "bn" else "C1",
                label=f"{ordinal(q)} percentile")
    ax.set_ylim(span[0] - pad, span[1] + pad)
    step_axis(ax, steps)
    ax.set_ylabel(f"input to sigmoid {unit}")
    ax.set_title(f"{title}: input to sigmoid {unit}, last hidden layer", fontsize="medium")
    ax.legend(loc="best", fontsize="small", title="over the test images", title_fontsize="small")
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()


# %% [markdown]
# (a) test accuracy against training step, on a logarithmic step axis that starts at the
# first evaluation after step 0 (before training both networks are at chance); (b, c) the
# 15th (dashed), 50th (solid) and 85th (dotted) percentiles over the test images of the input
# to one sigmoid of the last hidden layer: without BN the dense layer's pre-activation, with
# BN the BatchNorm output (γ·x̂ + β). Panels (b) and (c) share their y-axis, as the paper's do.

# %%
def table_steps(count=9):
    if len(steps) <= count:
        return list(range(len(steps)))
    picks = np.unique(np.round(np.geomspace(1, len(steps) - 1, count - 1)).astype(int))
    return [0, *picks]


rows = ["| step | test accuracy, BN | without BN | median sigmoid input (15th–85th), BN | without BN |",
        "|---:|---:|---:|---:|---:|"]
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
    f"`bnk.CNN(batch_norm=True/False)` (two conv 5×5 blocks, dense 1024, dropout "
    f"0.5), Adam, mini-batches of {pc['batch_size']}, {pc['steps']:,} steps on "
    f"{cnn['training_images']:,} training images (a short run: "
    f"{pc['steps'] * pc['batch_size'] / cnn['training_images']:.1f} passes); validation "
    f"accuracy and loss on the {cnn['validation_images']:,} held-out training images every "
    f"{pc['eval_every']} steps. Both variants of a rate start from the same weights and see the "
    f"same batches."
))
fig, axes = plt.subplots(2, len(rates), figsize=(5 * len(rates), 7.5), squeeze=False)
for col, rate in enumerate(rates):
    for batch_norm, style, label in ((True, "-", "with BN"), (False, "--", "without BN")):
        run = runs[(rate, batch_norm)]
        axes[0, col].plot(cnn_steps, arr(run["val_accuracy"]), style, label=label)
        axes[1, col].plot(cnn_steps, arr(run["val_loss"]), style, label=label)
    axes[0, col].set_title(f"learning rate {rate:g}")
    axes[0, col].set_ylabel("validation accuracy")
    axes[0, col].yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    finite = np.concatenate([arr(runs[(rate, bn)]["val_accuracy"]) for bn in (True, False)])
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
plt.show()

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
        rows.append(
            f"| {rate:g} | {'yes' if batch_norm else 'no'} | {pct(acc[first])} | {pct(acc[middle])} "
            f"| {pct(acc[-1])} | {pct(np.nanmax(acc) if np.isfinite(acc).any() else None)} "
            f"| {num(arr(run['val_loss'])[-1])} | {run['wall_seconds']:.0f} |"
        )
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Reading

# %%
lines = []
n_test = mlp["test_images"]

# Figure 1a: speed and final accuracy.
i_first = 1 if len(steps) > 1 else 0
i_tenth = int(np.argmin(np.abs(steps - steps[-1] / 10)))
marks = sorted({i_first, i_tenth, len(steps) - 1})
said = "; ".join(f"at step {steps[i]:,}: {pct(bn_acc[i])} vs {pct(plain_acc[i])}" for i in marks)
lines.append(f"**Figure 1a.** Test accuracy with BN vs without: {said}.")


def reached(acc, level):
    hit = np.flatnonzero(np.nan_to_num(acc) >= level)
    return int(steps[hit[0]]) if hit.size else None


top = np.nanmax(np.concatenate([bn_acc, plain_acc]))
levels = [level for level in (0.9, 0.95, 0.97, 0.98) if level <= top] or [round(float(top), 3)]
faster = []
for level in levels[-2:]:
    b, q = reached(bn_acc, level), reached(plain_acc, level)
    b_text = f"at step {b:,}" if b is not None else f"never in {steps[-1]:,} steps"
    q_text = f"at step {q:,}" if q is not None else f"never in {steps[-1]:,} steps"
    lines.append(f"- {100 * level:g}% test accuracy: with BN {b_text}, without BN {q_text}.")
    faster.append(b is not None and (q is None or b < q))
final_gap = bn_acc[-1] - plain_acc[-1]
noise = 2 * se(max(bn_acc[-1], plain_acc[-1]), n_test)
if all(faster):
    verdict = "BN trains faster, as in the paper"
elif any(faster):
    verdict = "BN reaches some accuracy levels sooner and others not, only partly as in the paper"
else:
    verdict = "BN does not train faster here, unlike the paper"
if final_gap > noise:
    verdict += f", and ends higher ({100 * final_gap:+.2f} points, more than twice the standard error of {n_test:,} test images), as in the paper."
elif final_gap >= -noise:
    verdict += (f"; at the end the two are within {100 * noise:.2f} points (twice the standard error of "
                f"{n_test:,} test images) of each other ({100 * final_gap:+.2f}), so the final advantage the "
                f"paper's figure shows is not resolved here.")
else:
    verdict += f"; the network without BN ends higher ({100 * final_gap:+.2f} points), unlike the paper."
lines.append(verdict[0].upper() + verdict[1:])


# Figures 1b, 1c: drift of the sigmoid's input.
def drift(name):
    q = {k: arr(v)[i_first:] for k, v in percentiles[name].items()}
    return {
        "start": q["50"][0], "end": q["50"][-1],
        "range": float(np.nanmax(q["50"]) - np.nanmin(q["50"])),
        "width_start": q["85"][0] - q["15"][0], "width_end": q["85"][-1] - q["15"][-1],
        "all_range": float(max(np.nanmax(v) - np.nanmin(v) for v in q.values())),
    }


d_bn, d_plain = drift("bn"), drift("plain")
for label, d in (("Without BN", d_plain), ("With BN", d_bn)):
    lines.append(
        f"- {label}, the median input to sigmoid {unit} went from {d['start']:.2f} (step "
        f"{steps[i_first]:,}) to {d['end']:.2f} (step {steps[-1]:,}), spanning {d['range']:.2f} over "
        f"training; the 15th–85th percentile band went from {d['width_start']:.2f} to "
        f"{d['width_end']:.2f} wide (largest movement of any of the three percentiles: {d['all_range']:.2f})."
    )
gamma, beta = arr(mlp["bn_gamma"]), arr(mlp["bn_beta"])
learned = (f"that unit's γ went from {gamma[i_first]:.2f} to {gamma[-1]:.2f} and its β from "
           f"{beta[i_first]:.2f} to {beta[-1]:.2f} between steps {steps[i_first]:,} and {steps[-1]:,}")
if d_bn["all_range"] < 0.5 * d_plain["all_range"]:
    text = (
        f"**Figures 1b/1c.** Without BN the distribution drifts; with BN it is steadier (largest "
        f"percentile movement {d_bn['all_range']:.2f} vs {d_plain['all_range']:.2f}), as in the paper. "
    )
else:
    text = (
        f"**Figures 1b/1c.** Unlike the paper, the BN network's sigmoid input moves about as much as "
        f"the plain one's (largest percentile movement {d_bn['all_range']:.2f} vs "
        f"{d_plain['all_range']:.2f}). "
    )
text += (
    f"With BN the steadiness is largely by construction: within a batch the input to the sigmoid has "
    f"mean β and standard deviation γ, so what moves is what BN learns: {learned}."
)
if abs(d_bn["width_end"] - d_bn["width_start"]) > 0.25 * d_bn["width_start"]:
    text += (
        f" So the BN input is not frozen: its 15th–85th band went from {d_bn['width_start']:.2f} to "
        f"{d_bn['width_end']:.2f} wide, which the paper's panel (c), where the "
        f"percentiles stay put, does not show."
    )
lines.append(text)
lines.append(
    "This shows that BN reduces the drift the paper calls internal covariate shift; it does not show "
    "that the reduced drift is why BN trains faster. Santurkar et al. (2018) inject noise after BN that "
    "restores such a shift and find BN's benefit unchanged; they attribute it to a smoother loss "
    "landscape (more predictive gradients), which this experiment does not measure."
)

# The CNN.
lines.append("**The CNN.**")
n_val = cnn["validation_images"]
n_classes = 10  # MNIST digits
ahead = []
for rate in rates:
    b, q = runs[(rate, True)], runs[(rate, False)]
    ba, qa = arr(b["val_accuracy"]), arr(q["val_accuracy"])
    bl, ql = arr(b["val_loss"]), arr(q["val_loss"])
    text = (f"- Learning rate {rate:g}: validation accuracy after {cnn_steps[-1]:,} steps {pct(ba[-1])} "
            f"with BN vs {pct(qa[-1])} without (loss {num(bl[-1])} vs {num(ql[-1])}); after "
            f"{cnn_steps[0]:,} steps {pct(ba[0])} vs {pct(qa[0])}.")
    for label, acc, loss, train_loss in (("with BN", ba, bl, arr(b["loss"])),
                                         ("without BN", qa, ql, arr(q["loss"]))):
        bad = np.flatnonzero(~np.isfinite(train_loss) | ~np.isfinite(loss))
        if bad.size:
            text += f" The network {label} diverged: its loss was no longer finite from step {cnn_steps[bad[0]]:,}."
        elif np.nanmax(acc) < 0.2:
            text += (f" The network {label} never left chance level (best {pct(np.nanmax(acc))}, final "
                     f"loss {num(loss[-1])}; ln {n_classes} = {np.log(n_classes):.3f} is the loss of a uniform "
                     f"guess over the {n_classes} digits): it stalled.")
        elif acc[-1] < np.nanmax(acc) - 0.1:
            text += f" The network {label} got worse late in the run (best {pct(np.nanmax(acc))}, final {pct(acc[-1])})."
    lines.append(text)
    gap = np.nan_to_num(ba[-1]) - np.nan_to_num(qa[-1])
    ahead.append((rate, gap, 2 * se(max(np.nan_to_num(ba[-1]), np.nan_to_num(qa[-1]), 0.5), n_val)))
clear = [rate for rate, gap, noise in ahead if gap > noise]
behind = [rate for rate, gap, noise in ahead if gap < -noise]
tied = [rate for rate, gap, noise in ahead if abs(gap) <= noise]
summary = []
if clear:
    summary.append(f"BN ends clearly ahead at learning rate(s) {', '.join(f'{r:g}' for r in clear)}")
if tied:
    summary.append(f"the two are within twice the standard error of {n_val:,} validation images at "
                   f"{', '.join(f'{r:g}' for r in tied)}")
if behind:
    summary.append(f"the network without BN ends ahead at {', '.join(f'{r:g}' for r in behind)} (against "
                   f"the paper's claim that BN helps at every rate)")
lines.append("Overall: " + "; ".join(summary) + ".")
trained_level = 0.5


def trained(run):
    # learned something: final validation accuracy above trained_level (a NaN counts as 0)
    return np.nan_to_num(arr(run["val_accuracy"])[-1]) > trained_level


usable_bn = [r for r in rates if trained(runs[(r, True)])]
usable_plain = [r for r in rates if trained(runs[(r, False)])]
fmt = lambda rs: ", ".join(f"{r:g}" for r in rs) or "none"
best_plain = max(rates, key=lambda r: np.nan_to_num(arr(runs[(r, False)]["val_accuracy"])[-1]))
best_bn = max(rates, key=lambda r: np.nan_to_num(arr(runs[(r, True)]["val_accuracy"])[-1]))
text = (f"Rates at which the network trained (final validation accuracy above {trained_level:.0%}): with BN {fmt(usable_bn)}; "
        f"without BN {fmt(usable_plain)}. The paper (sections 3.3 and 4.2.1) says BN allows higher "
        f"learning rates; ")
if usable_bn and (not usable_plain or max(usable_bn) > max(usable_plain)):
    text += "that holds here: BN trains at a rate where the network without it does not."
elif usable_bn == usable_plain:
    text += "these runs do not show it: both train at the same rates."
else:
    text += "these runs do not show it."
both = [r for r in rates if r in usable_bn and r in usable_plain]
if both:
    early = ", ".join(
        f"{100 * (np.nan_to_num(arr(runs[(r, True)]['val_accuracy'])[0]) - np.nan_to_num(arr(runs[(r, False)]['val_accuracy'])[0])):+.1f} points at {r:g}"
        for r in both
    )
    late = [r for r in both if r in tied]
    text += (f" Where both train, BN's lead in validation accuracy after {cnn_steps[0]:,} steps was {early}; "
             + (f"by step {cnn_steps[-1]:,} the gap is within noise at {fmt(late)}." if late else
                f"by step {cnn_steps[-1]:,} see the list above."))
text += f" The best final accuracy is at rate {best_bn:g} with BN and {best_plain:g} without."
lines.append(text)
finals = [np.nan_to_num(arr(r["val_accuracy"])[-1]) for r in cnn["runs"] if trained(r)]
ref_val = float(np.median(finals)) if finals else 0.5
ref_test = float(np.nanmax([bn_acc[-1], plain_acc[-1]]))
lines.append(
    f"Caveats: one seed; the CNN runs are short ({pc['steps']:,} steps, not converged), so they show "
    f"early training; differences below about twice the standard error are noise: "
    f"≈{100 * 2 * se(ref_val, n_val):.1f} points at {100 * ref_val:.0f}% (the median final accuracy "
    f"of the CNN runs that trained) on {n_val:,} validation images, ≈{100 * 2 * se(ref_test, n_test):.1f} "
    f"points at {100 * ref_test:.0f}% (Figure 1's final accuracy) on {n_test:,} test images."
)
display(Markdown("\n\n".join(lines)))
