"""What the report of the experiment `bn_experiment` shows: its metrics, its plots
table, the series its figures draw, its tables and the sentences of the "Reading"
section of `notebooks/bn_experiment.ipynb`.

Each function reads `results`, the file the stage `experiment@bn_experiment` writes:
the environment, "params" (the experiment's section), "seeds" and "by_seed", one run
per seed, each with the seed, "mlp" (Figure 1 of Ioffe & Szegedy, with and without BN)
and "cnn" (the seed's CNN with and without BN at each learning rate); a value that was
not finite is stored as None. Every number the report compares is a mean over the
seeds with its standard deviation, and every verdict is chosen from the values of all
seeds (pipeline.reporting.spread). Pure functions of that dict, numpy only, so the
verdicts can be tested without running the experiment, Keras or a notebook.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.reporting.spread import (
    BEYOND,
    apart,
    difference_noise,
    mean_std,
    measurement_noise,
    over_seeds,
    seed_count,
    seeds_listed,
    spread_number,
    spread_points,
    with_spread,
)
from pipeline.reporting.text import (
    N_CLASSES,
    as_array,
    csv_columns,
    decimal,
    percent,
    rate_list,
)

Results = Mapping[str, Any]
Run = Mapping[str, Any]

TITLE = "bnk: what batch normalization buys"
#: Accuracy levels Figure 1a's verdict asks about (the two highest that were reached).
ACCURACY_LEVELS = (0.9, 0.95, 0.97, 0.98)
#: A CNN run "trained" when its final test accuracy is above this.
TRAINED_LEVEL = 0.5
#: A CNN run whose best validation accuracy stays below this never left chance level.
CHANCE_CEILING = 0.2
#: BN's sigmoid input is "steadier, as in the paper" when its largest percentile
#: movement is below this share of the plain network's (and apart from it).
STEADIER_SHARE = 0.5
#: The variants of both networks, as the results name them and the report calls them.
VARIANTS = {"bn": "with BN", "plain": "without BN"}


# Reading the results.


def seed_list(results: Results) -> list[int]:
    """The seeds, in the order of `by_seed`."""
    return [run["seed"] for run in results["by_seed"]]


def plotted_run(results: Results) -> Run:
    """The run of the first seed: the one Figures 1b/1c and the percentile columns of
    the Figure 1 table show (a unit's percentiles are not averaged over seeds: in each
    seed the unit starts from other weights)."""
    return results["by_seed"][0]


def mlp_steps(results: Results) -> np.ndarray:
    """The steps at which Figure 1's networks were evaluated (the same in every
    seed)."""
    return np.array(plotted_run(results)["mlp"]["steps"])


def by_seed_rows(rows: Iterable[Iterable[float | None]]) -> np.ndarray:
    """One row per seed, one column per evaluation (None as NaN)."""
    return np.array([as_array(row) for row in rows])


def column_spread(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over the seeds (rows) at each evaluation (column),
    of the finite values."""
    pairs = [mean_std(column) for column in np.asarray(matrix, float).T]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def mlp_accuracy(results: Results, variant: str) -> np.ndarray:
    """Figure 1's test accuracy of `variant` ("bn", "plain"): seeds × steps."""
    return by_seed_rows(run["mlp"][variant] for run in results["by_seed"])


def learning_rates(results: Results) -> list[float]:
    return list(results["params"]["cnn"]["learning_rates"])


def reference_rate(results: Results) -> float:
    """The reference setting's learning rate: the first of
    `bn_experiment.cnn.learning_rates`, the seed's own."""
    return learning_rates(results)[0]


def cnn_run(run: Run, rate: float, batch_norm: bool) -> Run:
    """One seed's CNN run at `rate`, with or without BN."""
    for cnn in run["cnn"]["runs"]:
        if cnn["learning_rate"] == rate and cnn["batch_norm"] == batch_norm:
            return cnn
    raise KeyError(f"no CNN run at learning rate {rate:g}, batch_norm={batch_norm}")


def cnn_series(results: Results, rate: float, batch_norm: bool, key: str) -> np.ndarray:
    """A CNN run's per-evaluation `key` ("val_accuracy", "val_loss", "loss"):
    seeds × evaluations."""
    return by_seed_rows(
        cnn_run(run, rate, batch_norm)[key] for run in results["by_seed"]
    )


def cnn_test_accuracy(results: Results, rate: float, batch_norm: bool) -> np.ndarray:
    """A CNN run's final test accuracy in each seed (a non-finite one as 0)."""
    return np.nan_to_num(
        over_seeds(results, lambda run: cnn_run(run, rate, batch_norm)["test_accuracy"])
    )


def gap_and_noise(
    a: Sequence[float], b: Sequence[float], images: int
) -> tuple[float, float]:
    """The difference of the means of the accuracies `a` and `b` (one per seed), and
    the noise it must exceed: the larger of `difference_noise` over the seeds and
    `measurement_noise` of an accuracy on `images` images (at 50% at least)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    top = max(mean_std(a)[0], mean_std(b)[0], 0.5)
    images_noise = measurement_noise(top, images)
    return mean_std(a)[0] - mean_std(b)[0], max(difference_noise(a, b), images_noise)


def noise_words(images: int, what: str = "test") -> str:
    return (
        f"{BEYOND:g} standard errors of the difference over the seeds or of an "
        f"accuracy on {images:,} {what} images, whichever is larger"
    )


# Figure 1a.


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


def figure1a_series(results: Results) -> dict[str, np.ndarray]:
    """Figure 1a over the seeds: "steps", and for "bn" and "plain" the mean test
    accuracy at each step and its standard deviation ("bn_std", "plain_std")."""
    series = {"steps": mlp_steps(results)}
    for variant in VARIANTS:
        series[variant], series[f"{variant}_std"] = column_spread(
            mlp_accuracy(results, variant)
        )
    return series


def steps_text(reached: Sequence[int | None], last: int) -> str:
    """When each seed first reached a level: "at step 200" (in every seed), or one
    step per seed, "never" where it did not in `last` steps."""
    if len(set(reached)) == 1:
        (step,) = set(reached)
        said = f"at step {step:,}" if step is not None else f"never in {last:,} steps"
        return said + (" in every seed" if len(reached) > 1 else "")
    each = ", ".join(f"{step:,}" if step is not None else "never" for step in reached)
    return f"at step {each} (one per seed)"


def level_verdict(bn: Sequence[int | None], plain: Sequence[int | None]) -> str:
    """Whether BN reached an accuracy level "sooner" in every seed, in "none", or in
    "some" of them (a level never reached counts as later than any step)."""
    sooner = [
        b is not None and (q is None or b < q) for b, q in zip(bn, plain, strict=True)
    ]
    return "sooner" if all(sooner) else "none" if not any(sooner) else "some"


def figure1a_findings(results: Results) -> list[str]:
    """Figure 1a: test accuracy at a few steps, when each network first reached the
    highest accuracy levels in each seed, and whether BN trains faster and ends
    higher."""
    steps = mlp_steps(results)
    bn, plain = mlp_accuracy(results, "bn"), mlp_accuracy(results, "plain")
    n_test = plotted_run(results)["mlp"]["test_images"]
    lines = []

    i_first = first_trained_index(steps)
    i_tenth = int(np.argmin(np.abs(steps - steps[-1] / 10)))
    marks = sorted({i_first, i_tenth, len(steps) - 1})
    said = "; ".join(
        f"at step {steps[i]:,}: {with_spread(bn[:, i])} vs {with_spread(plain[:, i])}"
        for i in marks
    )
    lines.append(
        f"**Figure 1a.** Test accuracy with BN vs without, mean ± standard deviation "
        f"in points over {seeds_listed(seed_list(results))}: {said}."
    )

    top = np.nanmax(np.concatenate([column_spread(bn)[0], column_spread(plain)[0]]))
    verdicts = []
    for level in accuracy_levels(top)[-2:]:
        b = [first_step_reaching(steps, row, level) for row in bn]
        q = [first_step_reaching(steps, row, level) for row in plain]
        lines.append(
            f"- {100 * level:g}% test accuracy: with BN {steps_text(b, steps[-1])}, "
            f"without BN {steps_text(q, steps[-1])}."
        )
        verdicts.append(level_verdict(b, q))

    if all(v == "sooner" for v in verdicts):
        verdict = (
            "BN trains faster (it reaches these levels sooner in every seed), as in "
            "the paper"
        )
    elif all(v == "none" for v in verdicts):
        verdict = (
            "BN does not train faster here (it reaches none of these levels sooner, "
            "in any seed), unlike the paper"
        )
    else:
        verdict = (
            "BN reaches some of these levels sooner and others not, or not in every "
            "seed: only partly as in the paper"
        )
    gap, noise = gap_and_noise(bn[:, -1], plain[:, -1], n_test)
    if gap > noise:
        verdict += (
            f", and ends higher ({100 * gap:+.2f} points, beyond the noise of "
            f"{100 * noise:.2f}: {noise_words(n_test)}), as in the paper."
        )
    elif gap >= -noise:
        verdict += (
            f"; at the end the two are within the noise of each other "
            f"({100 * gap:+.2f} points against {100 * noise:.2f}: "
            f"{noise_words(n_test)}), so the final advantage the paper's figure shows "
            f"is not resolved here."
        )
    else:
        verdict += (
            f"; the network without BN ends higher ({100 * gap:+.2f} points, beyond "
            f"the noise of {100 * noise:.2f}), unlike the paper."
        )
    lines.append(verdict[0].upper() + verdict[1:])
    return lines


# Figures 1b/1c.


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


def drifts(results: Results, variant: str) -> list[Drift]:
    """`drift_summary` of `variant`'s watched sigmoid in each seed."""
    start = first_trained_index(mlp_steps(results))
    return [
        drift_summary(run["mlp"]["percentiles"][variant], start)
        for run in results["by_seed"]
    ]


def drift_verdict(results: Results) -> str:
    """How much BN's sigmoid input moves against the plain network's (the largest
    percentile movement, over the seeds): "steadier" (apart, and less than
    `STEADIER_SHARE` of it), "less" (apart, but more than that share), "about" (not
    apart) or "more" (apart, and more)."""
    bn = [d.all_range for d in drifts(results, "bn")]
    plain = [d.all_range for d in drifts(results, "plain")]
    if not apart(bn, plain):
        return "about"
    bn_mean, plain_mean = mean_std(bn)[0], mean_std(plain)[0]
    if bn_mean > plain_mean:
        return "more"
    return "steadier" if bn_mean < STEADIER_SHARE * plain_mean else "less"


SANTURKAR = (
    "Santurkar et al. (2018) inject noise after BN that restores such a shift and "
    "find BN's benefit unchanged; they attribute it to a smoother loss landscape "
    "(more predictive gradients), which this experiment does not measure."
)


def figure1bc_findings(results: Results) -> list[str]:
    """Figures 1b/1c: how the input to the watched sigmoid drifted with and without
    BN, what BN learned (γ, β), and what the drift does and does not show."""
    steps = mlp_steps(results)
    unit = plotted_run(results)["mlp"]["unit"]
    i_first = first_trained_index(steps)
    found = {variant: drifts(results, variant) for variant in VARIANTS}
    lines = []

    def over(variant: str, field: str) -> str:
        return spread_number((getattr(d, field) for d in found[variant]), 2)

    for variant in ("plain", "bn"):
        label = VARIANTS[variant][0].upper() + VARIANTS[variant][1:]
        lines.append(
            f"- {label}, the median input to sigmoid {unit} went from "
            f"{over(variant, 'start')} (step {steps[i_first]:,}) to "
            f"{over(variant, 'end')} (step {steps[-1]:,}), spanning "
            f"{over(variant, 'range')} over training; the 15th–85th percentile band "
            f"went from {over(variant, 'width_start')} to {over(variant, 'width_end')} "
            f"wide (largest movement of any of the three percentiles: "
            f"{over(variant, 'all_range')})."
        )

    def learned(key: str, i: int) -> str:
        values = (as_array(run["mlp"][key])[i] for run in results["by_seed"])
        return spread_number(values, 2)

    movement = (
        f"largest percentile movement {over('bn', 'all_range')} with BN vs "
        f"{over('plain', 'all_range')} without, mean ± standard deviation over the "
        f"{seed_count(seed_list(results))}"
    )
    verdict = drift_verdict(results)
    beyond = f"beyond {BEYOND:g} standard errors of the difference"
    if verdict == "steadier":
        text = (
            f"**Figures 1b/1c.** Without BN the distribution drifts; with BN it is "
            f"steadier ({movement}: less than {STEADIER_SHARE:.0%} of it, {beyond}), "
            f"as in the paper. "
        )
    elif verdict == "less":
        text = (
            f"**Figures 1b/1c.** With BN the sigmoid input moves less than without "
            f"({movement}, {beyond}), but more than {STEADIER_SHARE:.0%} as much: "
            f"steadier, though less still than the paper's panel (c). "
        )
    elif verdict == "about":
        text = (
            f"**Figures 1b/1c.** Unlike the paper, the BN network's sigmoid input "
            f"moves about as much as the plain one's, as far as the seeds tell "
            f"({movement}: the difference is within {BEYOND:g} of its standard "
            f"errors). "
        )
    else:
        text = (
            f"**Figures 1b/1c.** Unlike the paper, the BN network's sigmoid input "
            f"moves more than the plain one's ({movement}, {beyond}). "
        )
    text += (
        f"With BN the steadiness is largely by construction: within a batch the input "
        f"to the sigmoid has mean β and standard deviation γ, so what moves is what BN "
        f"learns: that unit's γ went from {learned('bn_gamma', i_first)} to "
        f"{learned('bn_gamma', -1)} and its β from {learned('bn_beta', i_first)} to "
        f"{learned('bn_beta', -1)} between steps {steps[i_first]:,} and "
        f"{steps[-1]:,}."
    )
    widened = [abs(d.width_end - d.width_start) > 0.25 * d.width_start
               for d in found["bn"]]
    if all(widened):
        text += (
            f" So the BN input is not frozen: its 15th–85th band went from "
            f"{over('bn', 'width_start')} to {over('bn', 'width_end')} wide (by more "
            f"than a quarter in every seed), which the paper's panel (c), where the "
            f"percentiles stay put, does not show."
        )
    lines.append(text)
    if verdict == "steadier":
        lines.append(
            "This shows that BN reduces the drift the paper calls internal covariate "
            "shift; it does not show that the reduced drift is why BN trains faster. "
            + SANTURKAR
        )
    elif verdict == "less":
        lines.append(
            "This shows BN reducing the drift the paper calls internal covariate "
            "shift, though by less than half; it does not show that the reduced drift "
            "is why BN trains faster. " + SANTURKAR
        )
    else:
        lines.append(
            "So these runs do not show BN reducing the drift the paper calls internal "
            "covariate shift, nor, then, that such a reduction is why BN trains "
            "faster. " + SANTURKAR
        )
    return lines


def figure1_findings(results: Results) -> list[str]:
    """The Markdown paragraphs on Figure 1: panel (a), then panels (b) and (c)."""
    return figure1a_findings(results) + figure1bc_findings(results)


# The CNN.


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


def trained(results: Results, rate: float, batch_norm: bool) -> np.ndarray:
    """In each seed, whether the CNN learned something at `rate`: final test accuracy
    above `TRAINED_LEVEL`."""
    return cnn_test_accuracy(results, rate, batch_norm) > TRAINED_LEVEL


def best_rate(results: Results, batch_norm: bool) -> float:
    """The learning rate with the highest mean final test accuracy (the first of
    equals)."""
    rates = learning_rates(results)
    means = [mean_std(cnn_test_accuracy(results, r, batch_norm))[0] for r in rates]
    return rates[int(np.argmax(np.nan_to_num(means, nan=-1.0)))]


def cnn_verdicts(results: Results) -> dict[float, str]:
    """At each learning rate, which variant ends with the higher test accuracy beyond
    the noise (`gap_and_noise`): "bn", "plain" or "tied"."""
    n_test = plotted_run(results)["cnn"]["test_images"]
    verdicts = {}
    for rate in learning_rates(results):
        gap, noise = gap_and_noise(
            cnn_test_accuracy(results, rate, True),
            cnn_test_accuracy(results, rate, False),
            n_test,
        )
        verdicts[rate] = "bn" if gap > noise else "plain" if gap < -noise else "tied"
    return verdicts


def baseline_findings(results: Results) -> str:
    """The report's baseline: BN at the reference setting, on the test images."""
    rate = reference_rate(results)
    n_test = plotted_run(results)["cnn"]["test_images"]
    return (
        f"**The CNN.** The reference setting is the seed's learning rate, {rate:g}, "
        f"with BN; its final test accuracy on {n_test:,} test images, the report's "
        f"baseline, is {with_spread(cnn_test_accuracy(results, rate, True))} over "
        f"{seeds_listed(seed_list(results))}."
    )


def rate_findings(results: Results, rate: float) -> str:
    """The bullet on the CNN runs at `rate`: test and validation accuracy with and
    without BN, and anything that went wrong in any seed."""
    steps = np.array(plotted_run(results)["cnn"]["steps"])
    n_test = plotted_run(results)["cnn"]["test_images"]
    acc = {bn: cnn_series(results, rate, bn, "val_accuracy") for bn in (True, False)}
    loss = {bn: cnn_series(results, rate, bn, "val_loss") for bn in (True, False)}
    text = (
        f"- Learning rate {rate:g}: final test accuracy "
        f"{with_spread(cnn_test_accuracy(results, rate, True))} with BN vs "
        f"{with_spread(cnn_test_accuracy(results, rate, False))} without (on "
        f"{n_test:,} test images); validation accuracy after {steps[-1]:,} steps "
        f"{with_spread(acc[True][:, -1])} vs {with_spread(acc[False][:, -1])} (loss "
        f"{spread_number(loss[True][:, -1], 3)} vs "
        f"{spread_number(loss[False][:, -1], 3)}); "
        f"after {steps[0]:,} steps {with_spread(acc[True][:, 0])} vs "
        f"{with_spread(acc[False][:, 0])}."
    )
    seeds = seed_list(results)
    for batch_norm in (True, False):
        train_loss = cnn_series(results, rate, batch_norm, "loss")
        for i, seed in enumerate(seeds):
            label = VARIANTS["bn" if batch_norm else "plain"]
            if len(seeds) > 1:
                label += f" in seed {seed}"
            text += run_trouble(
                label, steps, acc[batch_norm][i], loss[batch_norm][i], train_loss[i]
            )
    return text


def learning_rate_claim(results: Results) -> str:
    """The paragraph on the paper's claim that BN allows higher learning rates: at
    which rates each variant trained, in every seed or in some, and what that shows."""
    rates = learning_rates(results)
    steps = plotted_run(results)["cnn"]["steps"]
    ok = {bn: {r: trained(results, r, bn) for r in rates} for bn in (True, False)}
    every = {bn: [r for r in rates if ok[bn][r].all()] for bn in ok}
    some = {bn: [r for r in rates if ok[bn][r].any()] for bn in ok}
    text = (
        f"Rates at which the network trained (final test accuracy above "
        f"{TRAINED_LEVEL:.0%}) in every seed: with BN "
        f"{rate_list(every[True], 'none')}; without BN "
        f"{rate_list(every[False], 'none')}."
    )
    mixed = sorted({r for bn in (True, False) for r in some[bn] if r not in every[bn]})
    if mixed:
        only = {bn: [r for r in some[bn] if r not in every[bn]] for bn in (True, False)}
        text += (
            f" In some seeds but not all: with BN {rate_list(only[True], 'none')}; "
            f"without BN {rate_list(only[False], 'none')}."
        )
    text += " The paper (sections 3.3 and 4.2.1) says BN allows higher learning rates; "
    if every[True] and (not some[False] or max(every[True]) > max(some[False])):
        text += (
            "that holds here: in every seed BN trains at a rate where the network "
            "without it trains in none."
        )
    elif mixed:
        text += (
            f"the seeds do not settle it: at {rate_list(mixed)} a network trained in "
            f"some seeds and not in others."
        )
    elif not every[True] and not every[False]:
        text += "these runs do not show it: neither trains at any of these rates."
    elif every[True] == every[False]:
        text += "these runs do not show it: both train at the same rates."
    else:
        text += "these runs do not show it."
    both = [r for r in rates if r in every[True] and r in every[False]]
    if both:

        def early_lead(rate: float) -> str:
            b = np.nan_to_num(cnn_series(results, rate, True, "val_accuracy")[:, 0])
            q = np.nan_to_num(cnn_series(results, rate, False, "val_accuracy")[:, 0])
            return f"{spread_points(b - q)} at {rate:g}"

        verdicts = cnn_verdicts(results)
        late = [r for r in both if verdicts[r] == "tied"]
        text += (
            f" Where both train, BN's lead in validation accuracy after {steps[0]:,} "
            f"steps was {', '.join(early_lead(r) for r in both)}; "
        )
        if late:
            text += (
                f"by step {steps[-1]:,} their final test accuracies are within the "
                f"noise at {rate_list(late)}."
            )
        else:
            text += (
                f"by step {steps[-1]:,} one of them is ahead at every such rate (see "
                f"above)."
            )

    def best(batch_norm: bool) -> str:
        rate = best_rate(results, batch_norm)
        accuracy = cnn_test_accuracy(results, rate, batch_norm)
        close = [
            r
            for r in rates
            if r != rate
            and not apart(accuracy, cnn_test_accuracy(results, r, batch_norm))
        ]
        said = f"at rate {rate:g} ({with_spread(accuracy)})"
        if close:
            said += f", not apart over the seeds from that at {rate_list(close)}"
        return said

    text += (
        f" The best final test accuracy with BN is {best(True)}; without BN "
        f"{best(False)}."
    )
    return text


def still_rising(results: Results) -> dict[tuple[float, bool], np.ndarray]:
    """The CNN runs that trained in every seed and whose validation accuracy still
    rose between the last two evaluations beyond the noise (`gap_and_noise`, on the
    validation images), by (learning rate, with BN?): each one's rise per seed."""
    cnn = plotted_run(results)["cnn"]
    if len(cnn["steps"]) < 2:
        return {}
    rising = {}
    for rate in learning_rates(results):
        for batch_norm in (True, False):
            if not trained(results, rate, batch_norm).all():
                continue
            accuracy = cnn_series(results, rate, batch_norm, "val_accuracy")
            gap, noise = gap_and_noise(
                accuracy[:, -1], accuracy[:, -2], cnn["validation_images"]
            )
            if gap > noise:
                rising[(rate, batch_norm)] = accuracy[:, -1] - accuracy[:, -2]
    return rising


def convergence_text(results: Results) -> str:
    """Whether the CNN runs had converged: not where a run that trained still rose
    between its last two evaluations beyond the noise (`still_rising`)."""
    steps = plotted_run(results)["cnn"]["steps"]
    n_val = plotted_run(results)["cnn"]["validation_images"]
    short = f"The CNN runs are short ({results['params']['cnn']['steps']:,} steps)"
    rising = still_rising(results)
    if rising:
        listed = "; ".join(
            f"{VARIANTS['bn' if batch_norm else 'plain']} at rate {rate:g} "
            f"{spread_points(rise)}"
            for (rate, batch_norm), rise in rising.items()
        )
        return (
            f"{short} and not converged: between steps {steps[-2]:,} and "
            f"{steps[-1]:,} the validation accuracy still rose beyond the noise "
            f"({noise_words(n_val, 'validation')}): {listed}. They show early "
            "training."
        )
    if len(steps) < 2 or not any(
        trained(results, rate, batch_norm).all()
        for rate in learning_rates(results)
        for batch_norm in (True, False)
    ):
        return (
            f"{short}; with no run that trained in every seed followed over two "
            "evaluations, whether they converged is not measured."
        )
    return (
        f"{short}, but no run that trained in every seed rose beyond the noise "
        f"({noise_words(n_val, 'validation')}) in validation accuracy between steps "
        f"{steps[-2]:,} and {steps[-1]:,}: by that measure they had levelled off."
    )


def cnn_findings(results: Results) -> list[str]:
    """The Markdown paragraphs on the CNN runs (the baseline, one per learning rate,
    an overall verdict, the learning-rate claim), then the caveats, which also quote
    Figure 1's final accuracy."""
    rates = learning_rates(results)
    cnn = plotted_run(results)["cnn"]
    n_val, n_test = cnn["validation_images"], cnn["test_images"]
    lines = [baseline_findings(results)]
    lines += [rate_findings(results, rate) for rate in rates]

    verdicts = cnn_verdicts(results)
    clear = [r for r in rates if verdicts[r] == "bn"]
    tied = [r for r in rates if verdicts[r] == "tied"]
    behind = [r for r in rates if verdicts[r] == "plain"]
    summary = []
    if clear:
        summary.append(f"BN ends clearly ahead at learning rate(s) {rate_list(clear)}")
    if tied:
        summary.append(f"the two are within the noise at {rate_list(tied)}")
    if behind:
        summary.append(
            f"the network without BN ends ahead at {rate_list(behind)} (against the "
            f"paper's claim that BN helps at every rate)"
        )
    lines.append(
        f"Overall, in final test accuracy (noise: {noise_words(n_test)}): "
        + "; ".join(summary)
        + "."
    )
    lines.append(learning_rate_claim(results))

    finals = [
        value
        for r in rates
        for bn in (True, False)
        for value, ok in zip(
            cnn_series(results, r, bn, "val_accuracy")[:, -1],
            trained(results, r, bn),
            strict=True,
        )
        if ok and np.isfinite(value)
    ]
    ref_val = float(np.median(finals)) if finals else 0.5
    mlp_finals = [mean_std(mlp_accuracy(results, v)[:, -1])[0] for v in VARIANTS]
    ref_test = float(np.nanmax(mlp_finals))
    n_mlp_test = plotted_run(results)["mlp"]["test_images"]
    lines.append(
        f"Caveats: {seeds_listed(seed_list(results))}, too few for a precise standard "
        f"deviation; Figures 1b/1c and the percentile columns of the Figure 1 table "
        f"show seed {seed_list(results)[0]} only. {convergence_text(results)} "
        f"Every seed is evaluated on the same images, so a difference "
        f"below {BEYOND:g} standard errors of an accuracy on those images is noise "
        f"whatever the seeds say: ≈{100 * measurement_noise(ref_val, n_val):.1f} "
        f"points at "
        f"{100 * ref_val:.0f}% (the median final validation accuracy of the CNN runs "
        f"that trained) on {n_val:,} validation images, "
        f"≈{100 * measurement_noise(ref_test, n_mlp_test):.1f} points at "
        f"{100 * ref_test:.0f}% (Figure 1's final accuracy) on {n_mlp_test:,} test "
        f"images."
    )
    return lines


# Setup, tables and figure series for the notebook.


def setup_text(results: Results) -> str:
    """The report's first paragraphs: where and how long it ran, Figure 1's setup."""
    runs = results["by_seed"]
    first = plotted_run(results)["mlp"]
    pm = results["params"]["mlp"]

    def mean_seconds(pick: Any) -> float:
        return mean_std(pick(run) for run in runs)[0]

    def ordinal(q: int) -> str:
        suffix = "th" if 10 <= q % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(
            q % 10, "th"
        )
        return f"{q}{suffix}"

    quantiles = [ordinal(int(q)) for q in sorted(first["percentiles"]["bn"], key=int)]
    quantile_text = (
        quantiles[0]
        if len(quantiles) == 1
        else ", ".join(quantiles[:-1]) + " and " + quantiles[-1]
    )
    n_cnn = len(runs[0]["cnn"]["runs"])
    cnn_seconds = mean_seconds(
        lambda r: sum(c["wall_seconds"] for c in r["cnn"]["runs"])
    )
    return (
        f"Backend **{results['backend']}** ({results['device']}), Keras "
        f"{results['keras_version']}, {results['backend']} "
        f"{results['backend_version']}. The whole experiment took "
        f"{results['wall_seconds'] / 60:.1f} minutes for "
        f"{seeds_listed(seed_list(results))}; per seed on average, Figure 1: "
        f"{mean_seconds(lambda r: r['mlp']['wall_seconds']['bn']):.0f} s with BN, "
        f"{mean_seconds(lambda r: r['mlp']['wall_seconds']['plain']):.0f} s without; "
        f"CNN: {cnn_seconds:.0f} s for {n_cnn} runs.\n\n"
        f"**Figure 1 setup.** 784 inputs → 3 fully connected hidden layers of 100 "
        f"sigmoid units → 10 outputs, kernels from N(0, {pm['init_stddev']}²), softmax "
        f"cross-entropy; {pm['steps']:,} steps of plain SGD (learning rate "
        f"{pm['learning_rate']}) on mini-batches of {pm['batch_size']} from "
        f"{first['training_images']:,} training images; every {pm['eval_every']} "
        f"steps the test accuracy on {first['test_images']:,} test images and the "
        f"{quantile_text} percentiles, over those test images, of the input to "
        f"sigmoid {first['unit']} of the last hidden layer (inference mode). Once with "
        f"`bnk.BatchNorm` before each sigmoid (the dense layers then have no bias, "
        f"section 3.2 of the paper), once without; in each seed both start from the "
        f"same kernels and see the same batches. Each seed draws its own kernels and "
        f"batches: seeds {rate_list(seed_list(results))}."
    )


def table_steps(count: int, total: int) -> list[int]:
    """Up to `count` indices of `total` evaluations, spaced geometrically after 0."""
    if total <= count:
        return list(range(total))
    picks = np.unique(np.round(np.geomspace(1, total - 1, count - 1)).astype(int))
    return [0, *(int(i) for i in picks)]


def figure1_table(results: Results, count: int = 9) -> str:
    """Markdown: at a few steps, the test accuracies over the seeds and the first
    seed's percentiles of the watched sigmoid's input."""
    steps = mlp_steps(results)
    bn, plain = mlp_accuracy(results, "bn"), mlp_accuracy(results, "plain")
    seed = seed_list(results)[0]
    percentiles = plotted_run(results)["mlp"]["percentiles"]

    def band(variant: str, i: int) -> str:
        p = {q: as_array(v)[i] for q, v in percentiles[variant].items()}
        return f"{p['50']:.2f} ({p['15']:.2f} to {p['85']:.2f})"

    rows = [
        f"| step | test accuracy, BN | without BN | median sigmoid input (15th–85th), "
        f"BN, seed {seed} | without BN, seed {seed} |",
        "|---:|---:|---:|---:|---:|",
    ]
    for i in table_steps(count, len(steps)):
        rows.append(
            f"| {steps[i]:,} | {with_spread(bn[:, i])} | {with_spread(plain[:, i])} "
            f"| {band('bn', i)} | {band('plain', i)} |"
        )
    return "\n".join(rows)


def cnn_setup_text(results: Results) -> str:
    pc = results["params"]["cnn"]
    cnn = plotted_run(results)["cnn"]
    return (
        "`bnk.CNN` with `normalization=bnk.BatchNorm` or `None` (two conv 5×5 blocks, "
        f"dense 1024, dropout 0.5), Adam, mini-batches of {pc['batch_size']}, "
        f"{pc['steps']:,} steps on {cnn['training_images']:,} training images (a "
        f"short run: {pc['steps'] * pc['batch_size'] / cnn['training_images']:.1f} "
        f"passes); validation accuracy and loss on the {cnn['validation_images']:,} "
        f"held-out training images every {pc['eval_every']} steps, and at the end the "
        f"test accuracy on the {cnn['test_images']:,} test images. In each seed both "
        f"variants of a rate start from the same weights and see the same batches. "
        f"Curves and numbers are means over {seeds_listed(seed_list(results))}, with "
        f"their standard deviation (bands in the figure, ± in the table)."
    )


def cnn_curves(results: Results) -> dict[tuple[float, bool], dict[str, np.ndarray]]:
    """For each (learning rate, with BN?): the mean over seeds and standard deviation
    of the validation accuracy and loss at each evaluation ("val_accuracy",
    "val_accuracy_std", "val_loss", "val_loss_std"; non-finite values left out)."""
    curves = {}
    for rate in learning_rates(results):
        for batch_norm in (True, False):
            curve = {}
            for key in ("val_accuracy", "val_loss"):
                curve[key], curve[f"{key}_std"] = column_spread(
                    cnn_series(results, rate, batch_norm, key)
                )
            curves[(rate, batch_norm)] = curve
    return curves


def cnn_table(results: Results) -> str:
    """Markdown: per rate and variant, the validation accuracy at three evaluations,
    the final test accuracy (what the metrics' cnn_*_final quote at the best rate), the
    final validation loss and the time of a run, over the seeds."""
    steps = plotted_run(results)["cnn"]["steps"]
    shown = sorted({0, len(steps) // 2, len(steps) - 1})
    at = " | ".join(
        f"{'val. accuracy at step ' if i == shown[0] else 'at '}{steps[i]:,}"
        for i in shown
    )
    rows = [
        f"| learning rate | BN | {at} | final test accuracy | final val. loss "
        f"| seconds per run |",
        "|---:|:---|" + "---:|" * len(shown) + "---:|---:|---:|",
    ]
    for rate in learning_rates(results):
        for batch_norm in (True, False):
            acc = cnn_series(results, rate, batch_norm, "val_accuracy")
            loss = cnn_series(results, rate, batch_norm, "val_loss")
            seconds = [
                cnn_run(run, rate, batch_norm)["wall_seconds"]
                for run in results["by_seed"]
            ]
            rows.append(
                f"| {rate:g} | {'yes' if batch_norm else 'no'} | "
                + " | ".join(with_spread(acc[:, i]) for i in shown)
                + f" | {with_spread(cnn_test_accuracy(results, rate, batch_norm))} "
                f"| {spread_number(loss[:, -1], 3)} | {mean_std(seconds)[0]:.0f} |"
            )
    return "\n".join(rows)


# The metrics and plots files.


def finite(value: float) -> float | None:
    """JSON has no NaN: a number that is not finite as None."""
    return float(value) if np.isfinite(value) else None


def metrics(results: Results) -> dict[str, Any]:
    """What `dvc metrics show` lists (six numbers and the seeds), means over the
    seeds: the baseline (BN at the reference learning rate, final test accuracy) with
    its standard deviation, Figure 1's final test accuracies, and with and without BN
    the CNN's final test accuracy at its best learning rate (the highest mean over the
    seeds of the final accuracy, not the best at any step). The report gives every
    one's spread and the rates."""
    rate = reference_rate(results)
    mean, std = mean_std(cnn_test_accuracy(results, rate, True))
    out: dict[str, Any] = {
        "seeds": seed_list(results),
        "baseline_accuracy": finite(mean),
        "baseline_accuracy_std": finite(std),
    }
    for variant in VARIANTS:
        out[f"figure1_{variant}"] = finite(
            mean_std(mlp_accuracy(results, variant)[:, -1])[0]
        )
    for variant, batch_norm in (("bn", True), ("plain", False)):
        best = best_rate(results, batch_norm)
        out[f"cnn_{variant}_final"] = finite(
            mean_std(cnn_test_accuracy(results, best, batch_norm))[0]
        )
    return out


def plots(results: Results) -> str:
    """CSV: Figure 1a, the mean test accuracy over the seeds at each evaluation step
    with and without BN and its standard deviation (`dvc plots show`)."""
    series = figure1a_series(results)
    columns = {"step": [int(s) for s in series["steps"]]}
    for name in ("bn", "plain", "bn_std", "plain_std"):
        # to 1e-9: no rounding error of the mean as a spread (1.7e-17)
        columns[name] = np.round(series[name], 9)
    return csv_columns(columns)
