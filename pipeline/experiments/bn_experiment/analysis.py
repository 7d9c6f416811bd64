"""What the report of the experiment `bn_experiment` shows: its metrics, its plots
table and the sentences of the "Reading" section of `notebooks/bn_experiment.ipynb`.

Each function reads `details`, the dict the experiment writes as its
results (keys "mlp", "cnn", "params", ...; a value that was not
finite is stored as None), and returns Markdown: `figure1_findings` for the paper's
Figure 1 (the 3-layer sigmoid network), `cnn_findings` for the CNN runs and the caveats.
Pure functions of that dict, numpy only, so the verdicts can be tested without running
the experiment, Keras or a notebook.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.reporting.text import (
    N_CLASSES,
    as_array,
    csv_columns,
    decimal,
    percent,
    rate_list,
    standard_error,
)

Details = Mapping[str, Any]

#: Accuracy levels Figure 1a's verdict asks about (the two highest that were reached).
ACCURACY_LEVELS = (0.9, 0.95, 0.97, 0.98)
#: A CNN run "trained" when its final validation accuracy is above this.
TRAINED_LEVEL = 0.5
#: A CNN run whose best validation accuracy stays below this never left chance level.
CHANCE_CEILING = 0.2


def first_step_reaching(
    steps: Sequence[int] | np.ndarray, accuracy: np.ndarray, level: float
) -> int | None:
    """The first of `steps` at which `accuracy` is at least `level` (NaN never is),
    or None if there is none."""
    hit = np.flatnonzero(np.nan_to_num(accuracy) >= level)
    return int(steps[hit[0]]) if hit.size else None


def accuracy_levels(top: float) -> list[float]:
    """The levels of `ACCURACY_LEVELS` up to `top`; `top` itself if it is below all."""
    return [level for level in ACCURACY_LEVELS if level <= top] or [
        round(float(top), 3)
    ]


def first_trained_index(steps: Sequence[int] | np.ndarray) -> int:
    """Index of the first evaluation after step 0 (at step 0 both are at chance)."""
    return 1 if len(steps) > 1 else 0


@dataclass(frozen=True)
class Drift:
    """How the percentiles of one sigmoid's input moved over training."""

    start: float  # median at the first evaluation after step 0
    end: float  # median at the last evaluation
    range: float  # max - min of the median over training
    width_start: float  # 15th-85th percentile band at the start
    width_end: float  # ... and at the end
    all_range: float  # largest max - min of any of the percentiles


def drift_summary(
    percentiles: Mapping[str, Sequence[float | None]], start: int
) -> Drift:
    """Drift of the percentiles "15", "50" and "85" (each one value per evaluation)
    from evaluation `start` on."""
    q = {k: as_array(v)[start:] for k, v in percentiles.items()}
    return Drift(
        start=q["50"][0],
        end=q["50"][-1],
        range=float(np.nanmax(q["50"]) - np.nanmin(q["50"])),
        width_start=q["85"][0] - q["15"][0],
        width_end=q["85"][-1] - q["15"][-1],
        all_range=float(max(np.nanmax(v) - np.nanmin(v) for v in q.values())),
    )


def figure1a_findings(details: Details) -> list[str]:
    """Figure 1a: test accuracy at a few steps, when each network reached the highest
    accuracy levels, and whether BN trains faster and ends higher."""
    mlp = details["mlp"]
    steps = np.array(mlp["steps"])
    bn_acc, plain_acc = as_array(mlp["bn"]), as_array(mlp["plain"])
    n_test = mlp["test_images"]
    lines = []

    i_first = first_trained_index(steps)
    i_tenth = int(np.argmin(np.abs(steps - steps[-1] / 10)))
    marks = sorted({i_first, i_tenth, len(steps) - 1})
    said = "; ".join(
        f"at step {steps[i]:,}: {percent(bn_acc[i])} vs {percent(plain_acc[i])}"
        for i in marks
    )
    lines.append(f"**Figure 1a.** Test accuracy with BN vs without: {said}.")

    top = np.nanmax(np.concatenate([bn_acc, plain_acc]))
    never = f"never in {steps[-1]:,} steps"
    faster = []
    for level in accuracy_levels(top)[-2:]:
        b = first_step_reaching(steps, bn_acc, level)
        q = first_step_reaching(steps, plain_acc, level)
        b_text = f"at step {b:,}" if b is not None else never
        q_text = f"at step {q:,}" if q is not None else never
        lines.append(
            f"- {100 * level:g}% test accuracy: with BN {b_text}, without BN {q_text}."
        )
        faster.append(b is not None and (q is None or b < q))

    final_gap = bn_acc[-1] - plain_acc[-1]
    noise = 2 * standard_error(max(bn_acc[-1], plain_acc[-1]), n_test)
    if all(faster):
        verdict = "BN trains faster, as in the paper"
    elif any(faster):
        verdict = (
            "BN reaches some accuracy levels sooner and others not, only partly as in "
            "the paper"
        )
    else:
        verdict = "BN does not train faster here, unlike the paper"
    if final_gap > noise:
        verdict += (
            f", and ends higher ({100 * final_gap:+.2f} points, more than twice the "
            f"standard error of {n_test:,} test images), as in the paper."
        )
    elif final_gap >= -noise:
        verdict += (
            f"; at the end the two are within {100 * noise:.2f} points (twice the "
            f"standard error of {n_test:,} test images) of each other "
            f"({100 * final_gap:+.2f}), so the final advantage the paper's figure "
            f"shows is not resolved here."
        )
    else:
        verdict += (
            f"; the network without BN ends higher ({100 * final_gap:+.2f} points), "
            f"unlike the paper."
        )
    lines.append(verdict[0].upper() + verdict[1:])
    return lines


def figure1bc_findings(details: Details) -> list[str]:
    """Figures 1b/1c: how the input to the watched sigmoid drifted with and without
    BN, what BN learned (γ, β), and what the drift does and does not show."""
    mlp = details["mlp"]
    steps = np.array(mlp["steps"])
    unit = mlp["unit"]
    percentiles = mlp["percentiles"]
    i_first = first_trained_index(steps)
    lines = []

    d_bn = drift_summary(percentiles["bn"], i_first)
    d_plain = drift_summary(percentiles["plain"], i_first)
    for label, d in (("Without BN", d_plain), ("With BN", d_bn)):
        lines.append(
            f"- {label}, the median input to sigmoid {unit} went from {d.start:.2f} "
            f"(step {steps[i_first]:,}) to {d.end:.2f} (step {steps[-1]:,}), spanning "
            f"{d.range:.2f} over training; the 15th–85th percentile band went from "
            f"{d.width_start:.2f} to {d.width_end:.2f} wide (largest movement of any "
            f"of the three percentiles: {d.all_range:.2f})."
        )

    gamma, beta = as_array(mlp["bn_gamma"]), as_array(mlp["bn_beta"])
    learned = (
        f"that unit's γ went from {gamma[i_first]:.2f} to {gamma[-1]:.2f} and its β "
        f"from {beta[i_first]:.2f} to {beta[-1]:.2f} between steps "
        f"{steps[i_first]:,} and {steps[-1]:,}"
    )
    steadier = d_bn.all_range < 0.5 * d_plain.all_range
    if steadier:
        text = (
            f"**Figures 1b/1c.** Without BN the distribution drifts; with BN it is "
            f"steadier (largest percentile movement {d_bn.all_range:.2f} vs "
            f"{d_plain.all_range:.2f}), as in the paper. "
        )
    else:
        text = (
            f"**Figures 1b/1c.** Unlike the paper, the BN network's sigmoid input "
            "moves more than half as much as the plain one's (largest percentile "
            f"movement {d_bn.all_range:.2f} vs {d_plain.all_range:.2f}). "
        )
    text += (
        f"With BN the steadiness is largely by construction: within a batch the input "
        f"to the sigmoid has mean β and standard deviation γ, so what moves is what BN "
        f"learns: {learned}."
    )
    if abs(d_bn.width_end - d_bn.width_start) > 0.25 * d_bn.width_start:
        text += (
            f" So the BN input is not frozen: its 15th–85th band went from "
            f"{d_bn.width_start:.2f} to {d_bn.width_end:.2f} wide, which the paper's "
            f"panel (c), where the percentiles stay put, does not show."
        )
    lines.append(text)
    santurkar = (
        "Santurkar et al. (2018) inject noise after BN that restores such a shift and "
        "find BN's benefit unchanged; they attribute it to a smoother loss landscape "
        "(more predictive gradients), which this experiment does not measure."
    )
    if steadier:
        lines.append(
            "This shows that BN reduces the drift the paper calls internal covariate "
            "shift; it does not show that the reduced drift is why BN trains faster. "
            + santurkar
        )
    else:
        lines.append(
            "So this run does not show BN reducing the drift the paper calls internal "
            "covariate shift, nor, then, that such a reduction is why BN trains "
            "faster. " + santurkar
        )
    return lines


def figure1_findings(details: Details) -> list[str]:
    """The Markdown paragraphs on Figure 1: panel (a), then panels (b) and (c)."""
    return figure1a_findings(details) + figure1bc_findings(details)


def run_trouble(
    label: str,
    steps: Sequence[int] | np.ndarray,
    accuracy: np.ndarray,
    loss: np.ndarray,
    train_loss: np.ndarray,
) -> str:
    """The sentence saying that the network `label` diverged, stalled or got worse
    late in the run (validation `accuracy` and `loss`, training `train_loss`, one value
    per evaluation at `steps`); "" when the run went normally. It starts with a space,
    to be appended to the run's sentence."""
    bad = np.flatnonzero(~np.isfinite(train_loss) | ~np.isfinite(loss))
    if bad.size:
        return (
            f" The network {label} diverged: its loss was no longer finite from step "
            f"{steps[bad[0]]:,}."
        )
    best = np.nanmax(accuracy)
    if best < CHANCE_CEILING:
        return (
            f" The network {label} never left chance level (best {percent(best)}, "
            f"final loss {decimal(loss[-1])}; ln {N_CLASSES} = {np.log(N_CLASSES):.3f} "
            f"is the loss of a uniform guess over the {N_CLASSES} digits): it stalled."
        )
    if accuracy[-1] < best - 0.1:
        return (
            f" The network {label} got worse late in the run (best {percent(best)}, "
            f"final {percent(accuracy[-1])})."
        )
    return ""


def final_val_accuracy(run: Mapping[str, Any]) -> float:
    """A CNN run's last validation accuracy, 0 if it was not finite."""
    return float(np.nan_to_num(as_array(run["val_accuracy"])[-1]))


def trained(run: Mapping[str, Any]) -> bool:
    """Whether a CNN run learned something: final validation accuracy above
    `TRAINED_LEVEL` (a non-finite one counts as 0)."""
    return final_val_accuracy(run) > TRAINED_LEVEL


def cnn_findings(details: Details) -> list[str]:
    """The Markdown paragraphs on the CNN runs (one per learning rate, an overall
    verdict, the learning-rate claim), then the caveats, which also quote Figure 1's
    final accuracy."""
    mlp, cnn = details["mlp"], details["cnn"]
    rates = details["params"]["cnn"]["learning_rates"]
    runs = {(r["learning_rate"], r["batch_norm"]): r for r in cnn["runs"]}
    cnn_steps = np.array(cnn["steps"])
    n_val, n_test = cnn["validation_images"], mlp["test_images"]
    lines = ["**The CNN.**"]

    ahead = []
    for rate in rates:
        b, q = runs[(rate, True)], runs[(rate, False)]
        ba, qa = as_array(b["val_accuracy"]), as_array(q["val_accuracy"])
        bl, ql = as_array(b["val_loss"]), as_array(q["val_loss"])
        text = (
            f"- Learning rate {rate:g}: validation accuracy after {cnn_steps[-1]:,} "
            f"steps {percent(ba[-1])} with BN vs {percent(qa[-1])} without (loss "
            f"{decimal(bl[-1])} vs {decimal(ql[-1])}); after {cnn_steps[0]:,} steps "
            f"{percent(ba[0])} vs {percent(qa[0])}."
        )
        text += run_trouble("with BN", cnn_steps, ba, bl, as_array(b["loss"]))
        text += run_trouble("without BN", cnn_steps, qa, ql, as_array(q["loss"]))
        lines.append(text)
        b_final, q_final = np.nan_to_num(ba[-1]), np.nan_to_num(qa[-1])
        noise = 2 * standard_error(max(b_final, q_final, 0.5), n_val)
        ahead.append((rate, b_final - q_final, noise))
    clear = [rate for rate, gap, noise in ahead if gap > noise]
    behind = [rate for rate, gap, noise in ahead if gap < -noise]
    tied = [rate for rate, gap, noise in ahead if abs(gap) <= noise]
    summary = []
    if clear:
        summary.append(f"BN ends clearly ahead at learning rate(s) {rate_list(clear)}")
    if tied:
        summary.append(
            f"the two are within twice the standard error of {n_val:,} validation "
            f"images at {rate_list(tied)}"
        )
    if behind:
        summary.append(
            f"the network without BN ends ahead at {rate_list(behind)} (against the "
            f"paper's claim that BN helps at every rate)"
        )
    lines.append("Overall: " + "; ".join(summary) + ".")

    usable_bn = [r for r in rates if trained(runs[(r, True)])]
    usable_plain = [r for r in rates if trained(runs[(r, False)])]
    best_plain = max(rates, key=lambda r: final_val_accuracy(runs[(r, False)]))
    best_bn = max(rates, key=lambda r: final_val_accuracy(runs[(r, True)]))
    text = (
        f"Rates at which the network trained (final validation accuracy above "
        f"{TRAINED_LEVEL:.0%}): with BN {rate_list(usable_bn, 'none')}; without BN "
        f"{rate_list(usable_plain, 'none')}. The paper (sections 3.3 and 4.2.1) says "
        f"BN allows higher learning rates; "
    )
    if usable_bn and (not usable_plain or max(usable_bn) > max(usable_plain)):
        text += (
            "that holds here: BN trains at a rate where the network without it does "
            "not."
        )
    elif usable_bn == usable_plain:
        text += "these runs do not show it: both train at the same rates."
    else:
        text += "these runs do not show it."
    both = [r for r in rates if r in usable_bn and r in usable_plain]
    if both:

        def early_lead(rate: float) -> float:
            b = as_array(runs[(rate, True)]["val_accuracy"])[0]
            q = as_array(runs[(rate, False)]["val_accuracy"])[0]
            return 100 * (np.nan_to_num(b) - np.nan_to_num(q))

        early = ", ".join(f"{early_lead(r):+.1f} points at {r:g}" for r in both)
        late = [r for r in both if r in tied]
        text += (
            f" Where both train, BN's lead in validation accuracy after "
            f"{cnn_steps[0]:,} steps was {early}; "
        )
        if late:
            text += (
                f"by step {cnn_steps[-1]:,} the gap is within noise at "
                f"{rate_list(late, 'none')}."
            )
        else:
            text += f"by step {cnn_steps[-1]:,} see the list above."
    text += (
        f" The best final accuracy is at rate {best_bn:g} with BN and {best_plain:g} "
        f"without."
    )
    lines.append(text)

    finals = [final_val_accuracy(r) for r in cnn["runs"] if trained(r)]
    ref_val = float(np.median(finals)) if finals else 0.5
    bn_acc, plain_acc = as_array(mlp["bn"]), as_array(mlp["plain"])
    ref_test = float(np.nanmax([bn_acc[-1], plain_acc[-1]]))
    steps_run = details["params"]["cnn"]["steps"]
    lines.append(
        f"Caveats: one seed; the CNN runs are short ({steps_run:,} steps, not "
        f"converged), so they show early training; differences below about twice the "
        f"standard error are noise: ≈{100 * 2 * standard_error(ref_val, n_val):.1f} "
        f"points at {100 * ref_val:.0f}% (the median final accuracy of the CNN runs "
        f"that trained) on {n_val:,} validation images, "
        f"≈{100 * 2 * standard_error(ref_test, n_test):.1f} points at "
        f"{100 * ref_test:.0f}% (Figure 1's final accuracy) on {n_test:,} test images."
    )
    return lines


TITLE = "bnk: what batch normalization buys"


def final_accuracies(details: Details) -> dict[str, float | None]:
    """Each run's last accuracy, by name (a diverged run's is None)."""
    mlp, cnn = details["mlp"], details["cnn"]
    final = {
        "mlp_bn_test_accuracy": mlp["bn"][-1],
        "mlp_plain_test_accuracy": mlp["plain"][-1],
    }
    for run in cnn["runs"]:
        variant = "bn" if run["batch_norm"] else "plain"
        rate = f"{run['learning_rate']:g}".replace(".", "_")
        final[f"cnn_{variant}_lr{rate}_val_accuracy"] = run["val_accuracy"][-1]
    return final


def metrics(details: Details) -> dict[str, float | None]:
    """Figure 1's final test accuracies and, with and without BN, the CNN's final
    validation accuracy at its best learning rate (the largest of the report's column
    at the last step, not the best at any step): what `dvc metrics show` lists."""

    def best(batch_norm: bool) -> float | None:
        finals = [
            run["val_accuracy"][-1]
            for run in details["cnn"]["runs"]
            if run["batch_norm"] == batch_norm
        ]
        finite = [value for value in finals if value is not None]
        return max(finite) if finite else None

    return {
        "figure1_bn": details["mlp"]["bn"][-1],
        "figure1_plain": details["mlp"]["plain"][-1],
        "cnn_bn_final": best(True),
        "cnn_plain_final": best(False),
    }


def plots(details: Details) -> str:
    """CSV: Figure 1a, the test accuracy at each evaluation step with and without BN
    (`dvc plots show`)."""
    mlp = details["mlp"]
    return csv_columns({"step": mlp["steps"], "bn": mlp["bn"], "plain": mlp["plain"]})
