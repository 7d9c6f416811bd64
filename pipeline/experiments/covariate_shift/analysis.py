"""What the report of the experiment `covariate_shift` shows: its metrics, its plots
table, and the sentences, tables and curves of `notebooks/covariate_shift.ipynb`.

`results` is the dict the stage `experiment@covariate_shift` writes: the environment,
"params", "seeds" and "by_seed", one `run` per seed, each what `run.py`'s run()
returned for it (keys "steps", "plain", "bn", "noisy_bn", ...; a value that was not
finite is stored as None). Every number the report compares is a mean over the seeds
with its standard deviation, and every verdict asks pipeline.reporting.spread whether
two means differ by more than their spread over the seeds. Pure functions of those
dicts, numpy only, so the verdicts can be tested without running the experiment,
Keras or a notebook.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.reporting.spread import (
    BEYOND,
    apart,
    mean_std,
    over_seeds,
    seeds_listed,
    spread_number,
    spread_points,
    with_spread,
)
from pipeline.reporting.text import N_CLASSES, as_array, csv_columns

Results = Mapping[str, Any]
Run = Mapping[str, Any]
TITLE = "bnk: is it internal covariate shift?"
LABELS = {"plain": "without BN", "bn": "with BN", "noisy_bn": "with noisy BN"}
#: The variants whose loss landscape is probed, as run.LANDSCAPE_VARIANTS.
LANDSCAPE_VARIANTS = ("plain", "bn")
#: Below this share of BN's lead in mean accuracy kept, noisy BN is "slower than BN"
#: (if also its mean accuracy is below BN's beyond the spread).
KEPT_LEAD = 0.75
#: Noisy BN's inputs have "by far the most" shift when they move more than this many
#: times as much as the less stable of the other two (and beyond the spread).
FAR_MORE = 2.0
#: Gradients whose lengths are within this factor of each other are "about as long".
ABOUT_AS_LONG = 1.1
#: The three measures of the landscape's smoothness, as the report names them.
MEASURES = {
    "loss_spread": "loss's spread",
    "gradient_change": "gradient's change",
    "smoothness": "β-smoothness",
}
#: A probe whose loss is within this of ln(10) is on the plateau of a network that has
#: not started to learn (a uniform guess over the 10 digits).
PLATEAU_MARGIN = 0.05
#: How two means over seeds compare (`order`).
ABOVE, BELOW, WITHIN = "above", "below", "within"


# --- One run's measures --------------------------------------------------------------


def input_shift(
    means: Sequence[Sequence[float | None]], stds: Sequence[Sequence[float | None]]
) -> np.ndarray:
    """How far a layer's input distribution moved between consecutive probes: for
    each pair, the mean over channels of |change of the channel's mean|, divided by
    the mean over channels of the channel's standard deviation at the earlier probe
    (so a shift of 1 moves the average channel by one standard deviation). `means`
    and `stds` hold one list of per-channel values per probe."""
    mean = np.array([as_array(m) for m in means])
    std = np.array([as_array(s) for s in stds])
    moved = np.abs(np.diff(mean, axis=0)).mean(axis=1)
    return moved / np.maximum(std[:-1].mean(axis=1), np.finfo(float).tiny)


def scale_change(stds: Sequence[Sequence[float | None]]) -> np.ndarray:
    """As `input_shift`, for the channels' standard deviations: the mean over channels
    of |change of the standard deviation| over the mean standard deviation before."""
    std = np.array([as_array(s) for s in stds])
    moved = np.abs(np.diff(std, axis=0)).mean(axis=1)
    return moved / np.maximum(std[:-1].mean(axis=1), np.finfo(float).tiny)


def loss_spread(probe: Mapping[str, Any]) -> float:
    """max - min of the loss over the probe's points along the gradient, its starting
    point included (the paper's Figure 4a, at one step)."""
    values = as_array([probe["loss"], *probe["losses"]])
    if not np.isfinite(values).any():
        return float("nan")
    return float(np.nanmax(values) - np.nanmin(values))


def gradient_change(probe: Mapping[str, Any]) -> float:
    """The largest l2 distance from the starting gradient over the probe's points
    (the paper's Figure 4b, "gradient predictiveness", at one step)."""
    changes = as_array(probe["gradient_changes"])
    return float(np.nanmax(changes)) if np.isfinite(changes).any() else float("nan")


def effective_smoothness(
    probe: Mapping[str, Any], step_sizes: Sequence[float]
) -> float:
    """The largest |gradient change| / |parameter change| over the probe's points, the
    parameter change being eta * |g| (the paper's Figure 4c, "effective
    beta-smoothness", at one step); NaN for a zero or undefined gradient."""
    changes = as_array(probe["gradient_changes"])
    norm = probe["gradient_norm"]
    moved = np.asarray(step_sizes, float) * (np.nan if norm is None else norm)
    if not np.all(moved > 0) or not np.isfinite(changes).any():
        return float("nan")
    return float(np.nanmax(changes / moved))


def landscape_series(
    run: Run, variant: str, step_sizes: Sequence[float]
) -> dict[str, np.ndarray]:
    """Per probe of `variant` in `run`: "loss_spread", "gradient_change",
    "smoothness", "loss" (at the starting point) and "gradient_norm"."""
    probes = run[variant]["landscape"]
    return {
        "loss_spread": np.array([loss_spread(p) for p in probes]),
        "gradient_change": np.array([gradient_change(p) for p in probes]),
        "smoothness": np.array(
            [effective_smoothness(p, step_sizes) for p in probes]
        ),
        "loss": as_array([p["loss"] for p in probes]),
        "gradient_norm": as_array([p["gradient_norm"] for p in probes]),
    }


def after_start(values: np.ndarray) -> np.ndarray:
    """The values of the probes after step 0 (at step 0 nothing has trained yet)."""
    return values[1:] if len(values) > 1 else values


def median(values: Iterable[float]) -> float:
    """The median of the finite `values`, NaN if there are none."""
    values = np.asarray(list(values), float)
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")


def later_landscape(
    run: Run, step_sizes: Sequence[float]
) -> dict[str, dict[str, np.ndarray]]:
    """`landscape_series` of BN and of the plain network, the probes after step 0."""
    return {
        v: {
            k: after_start(a)
            for k, a in landscape_series(run, v, step_sizes).items()
        }
        for v in ("bn", "plain")
    }


def smaller_with_bn(
    later: Mapping[str, Mapping[str, np.ndarray]],
) -> tuple[dict[str, int], int]:
    """Per measure of MEASURES, at how many probes of `later` (`later_landscape`)
    BN's value is the smaller (a NaN never is); and how many probes there are."""
    smaller = {
        measure: int(np.sum(later["bn"][measure] < later["plain"][measure]))
        for measure in MEASURES
    }
    return smaller, len(later["bn"]["loss_spread"])


def mean_accuracy(run: Run, variant: str) -> float:
    """The mean validation accuracy over the probes after step 0: how fast a network
    got where it got (a non-finite value counts as 0)."""
    values = np.nan_to_num(as_array(run[variant]["val_accuracy"]))
    return float(np.mean(after_start(values)))


#: What `series` can follow over the probes.
QUANTITIES = (
    "val_accuracy",
    "train_loss",
    "input_shift",
    "scale_change",
    "loss_spread",
    "gradient_change",
    "smoothness",
    "loss",
    "gradient_norm",
)


def series(
    run: Run, variant: str, quantity: str, step_sizes: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """The steps and the values of `quantity` (one of QUANTITIES) of `variant` in
    `run`: one per probe; the training loss and the changes between probes from the
    first probe after step 0 on."""
    steps = np.array(run["steps"])
    data = run[variant]
    if quantity == "val_accuracy":
        return steps, as_array(data["val_accuracy"])
    if quantity == "train_loss":
        return steps[1:], as_array(data["train_loss"][1:])
    if quantity == "input_shift":
        return steps[1:], input_shift(data["input_mean"], data["input_std"])
    if quantity == "scale_change":
        return steps[1:], scale_change(data["input_std"])
    if quantity in QUANTITIES:
        return steps, landscape_series(run, variant, step_sizes)[quantity]
    raise ValueError(f"no series {quantity!r}; one of {', '.join(QUANTITIES)}")


# --- Over the seeds ------------------------------------------------------------------


def first(results: Results) -> Run:
    """The first seed's run, for what every seed's run shares: the steps, the numbers
    of images, the probed layer."""
    return results["by_seed"][0]


def curve(
    results: Results, variant: str, quantity: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`series` over the seeds: the steps, and per probe the mean and the standard
    deviation over the seeds (of the finite values; NaN where there are none)."""
    step_sizes = results["params"]["step_sizes"]
    runs = results["by_seed"]
    steps, _ = series(runs[0], variant, quantity, step_sizes)
    rows = np.array([series(run, variant, quantity, step_sizes)[1] for run in runs])
    pairs = [mean_std(column) for column in rows.T]
    mean = np.array([m for m, _ in pairs], float)
    std = np.array([s for _, s in pairs], float)
    return steps, mean, std


def test_accuracies(results: Results, variant: str) -> np.ndarray:
    """Per seed, `variant`'s final accuracy on the test images."""
    return over_seeds(results, lambda run: run[variant]["test_accuracy"])


def speeds(results: Results, variant: str) -> np.ndarray:
    """Per seed, `variant`'s `mean_accuracy`."""
    return over_seeds(results, lambda run: mean_accuracy(run, variant))


def shifts(results: Results, variant: str) -> np.ndarray:
    """Per seed, the median over the probes of `variant`'s `input_shift`."""
    return over_seeds(
        results,
        lambda run: median(
            input_shift(run[variant]["input_mean"], run[variant]["input_std"])
        ),
    )


def scale_changes(results: Results, variant: str) -> np.ndarray:
    """Per seed, the median over the probes of `variant`'s `scale_change`."""
    return over_seeds(
        results, lambda run: median(scale_change(run[variant]["input_std"]))
    )


def landscape_medians(results: Results) -> dict[str, dict[str, np.ndarray]]:
    """Per variant of LANDSCAPE_VARIANTS, per measure of MEASURES and
    "gradient_norm": per seed, the median over the probes after step 0."""
    step_sizes = results["params"]["step_sizes"]
    later = [later_landscape(run, step_sizes) for run in results["by_seed"]]
    return {
        v: {
            k: as_array(median(seed[v][k]) for seed in later)
            for k in (*MEASURES, "gradient_norm")
        }
        for v in LANDSCAPE_VARIANTS
    }


def smaller_counts(results: Results) -> tuple[dict[str, int], int]:
    """`smaller_with_bn` summed over the seeds: per measure, at how many probes after
    step 0 BN's value is the smaller, and how many probes there are, all seeds'."""
    step_sizes = results["params"]["step_sizes"]
    totals = dict.fromkeys(MEASURES, 0)
    probes = 0
    for run in results["by_seed"]:
        smaller, count = smaller_with_bn(later_landscape(run, step_sizes))
        probes += count
        for measure, n in smaller.items():
            totals[measure] += n
    return totals, probes


def order(a: Iterable[float], b: Iterable[float]) -> str:
    """How the mean of `a` compares with the mean of `b`: ABOVE or BELOW where they
    differ by more than their spread over the seeds (spread.apart), else WITHIN."""
    a, b = list(a), list(b)
    if not apart(a, b):
        return WITHIN
    return ABOVE if mean_std(a)[0] > mean_std(b)[0] else BELOW


def compared(
    a: Iterable[float], b: Iterable[float], ahead: str, behind: str, tie: str
) -> str:
    """`ahead`, `behind` or `tie`, as `order(a, b)` is ABOVE, BELOW or WITHIN."""
    return {ABOVE: ahead, BELOW: behind, WITHIN: tie}[order(a, b)]


def landscape_verdicts(results: Results) -> dict[str, str]:
    """Per measure of MEASURES, how BN's medians compare with the plain network's
    over the seeds (`order`): BELOW is a smoother landscape with BN."""
    medians = landscape_medians(results)
    return {m: order(medians["bn"][m], medians["plain"][m]) for m in MEASURES}


def number(x: float) -> float | None:
    """`x` as a float, None if not finite (JSON has no NaN)."""
    return float(x) if np.isfinite(x) else None


def times(values: Iterable[float]) -> str:
    """Ratios over the seeds as "48 ± 5 times" (one decimal below 10)."""
    values = list(values)
    mean = mean_std(values)[0]
    return f"{spread_number(values, 0 if mean >= 10 else 1)} times"


def metrics(results: Results) -> dict[str, Any]:
    """What `dvc metrics show` lists: the seeds; `baseline_accuracy`, BN's (the
    reference setting's) final accuracy on the test images, and the other two
    variants' (`plain_accuracy`, `noisy_bn_accuracy`); the noisy BN network's median
    input shift between probes; each a mean over the seeds, the baseline with its
    standard deviation (`_std`; the report gives every spread). And
    `bn_smoother_measures`: by how many of the three measures
    of the landscape (MEASURES) BN's is the smoother beyond the spread over the seeds
    (the report's verdict: 3 as in the paper, 0 unlike it)."""
    baseline, spread = mean_std(test_accuracies(results, "bn"))
    headline: dict[str, Any] = {
        "seeds": list(results["seeds"]),
        "baseline_accuracy": number(baseline),
        "baseline_accuracy_std": number(spread),
    }
    for key, values in (
        ("plain_accuracy", test_accuracies(results, "plain")),
        ("noisy_bn_accuracy", test_accuracies(results, "noisy_bn")),
        ("noisy_bn_input_shift", shifts(results, "noisy_bn")),
    ):
        headline[key] = number(mean_std(values)[0])
    headline["bn_smoother_measures"] = sum(
        verdict == BELOW for verdict in landscape_verdicts(results).values()
    )
    return headline


def plots(results: Results) -> str:
    """The plots file `dvc plots` draws (and `dvc plots diff` compares between runs):
    one row per probe, its training step, each variant's validation accuracy and
    input shift since the probe before (empty at step 0), and with and without BN the
    loss spread along the gradient: means over the seeds, then their standard
    deviations (columns `..._std`)."""
    columns: dict[str, list] = {}
    spreads: dict[str, list] = {}
    for quantity, variants in (
        ("val_accuracy", LABELS),
        ("input_shift", LABELS),
        ("loss_spread", LANDSCAPE_VARIANTS),
    ):
        for v in variants:
            _, mean, std = curve(results, v, quantity)
            before = [None] if quantity == "input_shift" else []
            columns[f"{v}_{quantity}"] = [*before, *mean]
            spreads[f"{v}_{quantity}_std"] = [*before, *std]
    # Not "step": DVC's own name for a plot's row index.
    return csv_columns(
        {"training_step": first(results)["steps"], **columns, **spreads}
    )


# --- The report's text ---------------------------------------------------------------


def setup(results: Results) -> str:
    """The report's paragraphs on where and how the experiment ran."""
    p = results["params"]
    run = first(results)
    noise = p["noise"]
    seeds = results["seeds"]
    took = ", ".join(
        f"{label} {sum(r[v]['wall_seconds'] for r in results['by_seed']):.0f} s"
        for v, label in LABELS.items()
    )
    return (
        f"Backend **{results['backend']}** ({results['device']}), Keras "
        f"{results['keras_version']}, {results['backend']} "
        f"{results['backend_version']}. The whole experiment took "
        f"{results['wall_seconds'] / 60:.1f} minutes for {len(seeds)} seed"
        f"{'s' if len(seeds) != 1 else ''} ({took}, summed over the seeds).\n\n"
        f"**Setup.** `bnk.CNN` (two conv 5×5 blocks, dense 1024; dropout off, so that "
        f"a probe's loss depends on the weights alone) in three variants: without "
        f"normalization, with `bnk.BatchNorm` after each convolution, and with noisy "
        f"BN: `bnk.BatchNorm` followed by a layer that, at every training step and for "
        f"every channel, multiplies by a scale drawn from U(1, {noise['max_scale']:g}) "
        f"and adds a shift drawn from U(−{noise['mean']:g}, {noise['mean']:g}) (at "
        f"inference, the noise's expected map). The paper draws its noise per example "
        f"too; here each step draws one scale and shift per channel, which moves the "
        f"distribution the next layer sees as a whole. Per seed, all three start from "
        f"the same weights and see the same batches: {p['steps']:,} steps of SGD "
        f"(learning rate {p['learning_rate']:g}, momentum {p['momentum']:g}) on "
        f"mini-batches of {p['batch_size']} from {run['training_images']:,} training "
        f"images. Every {p['probe_every']} steps, and at step 0: the validation "
        f"accuracy on {run['validation_images']:,} held-out training images, the mean "
        f"and standard deviation per channel of the input of `{run['probed_layer']}` "
        f"(the second convolution) on a fixed batch of {p['batch_size']} training "
        f"images, in training mode, and, without and with BN, the loss landscape "
        f"along the gradient. At the end, the accuracy on the {run['test_images']:,} "
        f"test images. Seeds {', '.join(map(str, seeds))}: every number below is a "
        f"mean over them ± the standard deviation over them, and the curves' bands "
        f"are that mean ± that standard deviation at each probe."
    )


def training_findings(results: Results) -> str:
    """Claim (a), first half: noisy BN trains about as well as BN, better than none."""
    run = first(results)
    steps = run["steps"]
    final = {v: test_accuracies(results, v) for v in LABELS}
    speed = {v: speeds(results, v) for v in LABELS}
    mean = {v: mean_std(speed[v])[0] for v in LABELS}
    text = (
        f"**Training.** After {steps[-1]:,} steps the accuracy on the "
        f"{run['test_images']:,} test images is {with_spread(final['bn'])} with BN, "
        f"{with_spread(final['noisy_bn'])} with noisy BN and "
        f"{with_spread(final['plain'])} without BN; the validation accuracy averaged "
        f"over the {len(after_start(np.array(steps)))} probes after step 0, which "
        f"rewards learning early, is {with_spread(speed['bn'])}, "
        f"{with_spread(speed['noisy_bn'])} and {with_spread(speed['plain'])} "
        f"(mean ± standard deviation over the {len(results['by_seed'])} seeds, in "
        f"points). Two means count as different only where they differ by more than "
        f"{BEYOND:g} standard errors of their difference over the seeds. "
    )
    behind = spread_points(final["bn"] - final["noisy_bn"], signed=False)
    versus_bn = compared(
        final["noisy_bn"],
        final["bn"],
        "ahead of BN",
        f"behind BN by {behind}",
        "level with BN",
    )
    versus_plain = compared(
        final["noisy_bn"],
        final["plain"],
        "ahead of the network without BN",
        "behind the network without BN",
        "level with the network without BN",
    )
    early = compared(
        speed["noisy_bn"],
        speed["plain"],
        "learned faster than the network without BN",
        "learned more slowly than the network without BN",
        "learned about as fast as the network without BN",
    )
    text += f"At the end noisy BN is {versus_bn} and {versus_plain}; over the run it "
    text += f"{early}"
    # BN's lead over the plain network, if beyond the spread: how much noisy BN kept.
    lead = order(speed["bn"], speed["plain"]) == ABOVE
    if lead:
        kept = (mean["noisy_bn"] - mean["plain"]) / (mean["bn"] - mean["plain"])
        text += (
            f", keeping {100 * kept:.0f}% of BN's lead in mean accuracy over the "
            "probes (of the means over the seeds)"
        )
    text += ". "
    level_with_bn = order(final["noisy_bn"], final["bn"]) != BELOW
    better = ABOVE in (
        order(final["noisy_bn"], final["plain"]),
        order(speed["noisy_bn"], speed["plain"]),
    )
    if level_with_bn and better:
        text += (
            "As in the paper (its Figure 2), the noise that unsettles every BN "
            "output does not stop noisy BN from ending level with BN and training "
            "better than the network without BN"
        )
        if lead and kept < KEPT_LEAD and order(speed["noisy_bn"], speed["bn"]) == BELOW:
            text += f"; on the way it is slower than BN (the {100 * kept:.0f}% above)"
        text += "."
    elif level_with_bn:
        text += (
            "The paper's noisy BN also beat the network without BN (its Figure 2); "
            "here it does not, neither at the end nor on average over the run."
        )
    elif better:
        text += (
            "Partly as in the paper (its Figure 2): the noise does not take all of "
            "what BN buys, but here noisy BN does not train as well as BN."
        )
    else:
        text += (
            "Unlike the paper (its Figure 2), the noise takes away what BN buys here."
        )
    return text


def instability_findings(results: Results) -> str:
    """Claim (a), second half: noisy BN's layer inputs are far from stable."""
    layer = first(results)["probed_layer"]
    shift = {v: shifts(results, v) for v in LABELS}
    scale = {v: scale_changes(results, v) for v in LABELS}
    every = results["params"]["probe_every"]
    text = (
        f"**Instability of the layer inputs.** Between probes ({every} steps apart) "
        f"the per-channel mean of the input of `{layer}` moved by a median of "
        f"{spread_number(shift['noisy_bn'])} standard deviations with noisy BN, "
        f"{spread_number(shift['bn'])} with BN and {spread_number(shift['plain'])} "
        f"without BN; the per-channel standard deviation changed by a median of "
        f"{spread_number(scale['noisy_bn'], 1, 100, '%')}, "
        f"{spread_number(scale['bn'], 1, 100, '%')} and "
        f"{spread_number(scale['plain'], 1, 100, '%')} of itself (per seed the "
        f"median over the probes; mean ± standard deviation over the seeds). "
    )
    # The more stable of the other two moves less (the smaller mean shift).
    more_stable, less_stable = sorted(
        ("bn", "plain"), key=lambda v: np.nan_to_num(mean_std(shift[v])[0])
    )

    def ratio(variant: str) -> str:
        per_seed = shift["noisy_bn"] / np.maximum(shift[variant], 1e-12)
        return f"{times(per_seed)} as much"

    noisy_mean = np.nan_to_num(mean_std(shift["noisy_bn"])[0])
    less_mean = np.nan_to_num(mean_std(shift[less_stable])[0])
    versus = order(shift["noisy_bn"], shift[less_stable])
    if versus == ABOVE and noisy_mean > FAR_MORE * less_mean:
        text += (
            f"Noisy BN's inputs move {ratio(more_stable)} as the most stable of the "
            f"other two ({LABELS[more_stable]}) and {ratio(less_stable)} as the less "
            f"stable ({LABELS[less_stable]}): by the measure of internal covariate "
            "shift, it has by far the most, as in the paper."
        )
    elif versus == WITHIN:
        text += (
            f"Noisy BN's inputs move {ratio(more_stable)} as the most stable of the "
            f"other two ({LABELS[more_stable]}), but from the less stable "
            f"({LABELS[less_stable]}) they differ by less than the spread over the "
            "seeds: these seeds do not show noisy BN with the most internal "
            "covariate shift, which the paper found."
        )
    else:
        text += (
            "Unlike in the paper, noisy BN's inputs do not move much more than the "
            "others': the noise did not produce the instability it was meant to."
        )
    return text


def landscape_findings(results: Results) -> str:
    """Claim (b): with BN the loss and the gradient change less along the gradient."""
    step_sizes = results["params"]["step_sizes"]
    medians = landscape_medians(results)
    verdicts = landscape_verdicts(results)
    smaller, probes = smaller_counts(results)
    seeds = len(results["by_seed"])
    state = {
        BELOW: "smaller with BN",
        ABOVE: "larger with BN",
        WITHIN: "within the spread",
    }

    def measure(m: str) -> str:
        return (
            f"{spread_number(medians['bn'][m])} with BN against "
            f"{spread_number(medians['plain'][m])} without ({state[verdicts[m]]}; "
            f"BN's the smaller at {smaller[m]} of {probes} probes)"
        )

    text = (
        f"**Loss landscape.** Moving along the gradient by {step_sizes[0]:g} to "
        f"{step_sizes[-1]:g} times it, at the "
        f"{len(after_start(np.array(first(results)['steps'])))} probes after step 0 "
        f"of each of the {seeds} seeds (per seed the median over those probes; mean "
        f"± standard deviation over the seeds): the loss varied by "
        f"{measure('loss_spread')}; the gradient changed in l2 norm by at most "
        f"{measure('gradient_change')}; the effective β-smoothness "
        f"(gradient change per unit of parameter change) was "
        f"{measure('smoothness')}. "
    )
    favour = [m for m in MEASURES if verdicts[m] == BELOW]
    if len(favour) == len(MEASURES):
        text += (
            "By all three measures BN's landscape is the smoother one along the path "
            "training takes, beyond the spread over the seeds, as in the paper (its "
            "Figure 4)."
        )
    elif favour:
        against = [
            f"the {MEASURES[m]} ({state[verdicts[m]]})"
            for m in MEASURES
            if m not in favour
        ]
        text += (
            "The measures disagree: BN's landscape is the smoother one beyond the "
            f"spread by the {' and the '.join(MEASURES[m] for m in favour)}, but not "
            f"by {' or '.join(against)}, a weaker result than the paper's Figure 4."
        )
    else:
        text += (
            "Unlike the paper's Figure 4, BN's landscape is not the smoother one "
            "beyond the spread over the seeds by any of the three measures here."
        )
    bn_norm = medians["bn"]["gradient_norm"]
    plain_norm = medians["plain"]["gradient_norm"]
    ratios = bn_norm / np.maximum(plain_norm, 1e-12)
    mean_ratio = mean_std(ratios)[0]
    text += " The steps are the same multiples of the gradient for both; "
    if abs(np.log(max(np.nan_to_num(mean_ratio), 1e-12))) < np.log(ABOUT_AS_LONG):
        text += (
            f"the gradients were about as long with BN as without (ratio of the "
            f"medians {spread_number(ratios, 2)}), so both probes reach about as far."
        )
    elif order(bn_norm, plain_norm) == WITHIN:
        text += (
            f"BN's gradients were {spread_number(ratios, 2)} times as long (ratio of "
            "the medians), but the lengths differ by less than their spread over the "
            "seeds, so whether its points lie further away or closer is not settled."
        )
    else:
        text += (
            f"BN's gradients were {spread_number(ratios, 2)} times as long (ratio of "
            f"the medians), so its points lie "
            f"{'further away' if mean_ratio > 1 else 'closer'} by that factor."
        )
    plateaus = []
    for run in results["by_seed"]:
        plateau = [
            step
            for step, probe in zip(run["steps"], run["plain"]["landscape"], strict=True)
            if probe["loss"] is not None  # not finite: no plateau
            and abs(probe["loss"] - np.log(N_CLASSES)) < PLATEAU_MARGIN
        ]
        if plateau:
            plateaus.append(
                f"{', '.join(f'{s:,}' for s in plateau)} (seed {run['seed']})"
            )
    if plateaus:
        text += (
            f" Without BN the network was still on its starting plateau (loss "
            f"≈ ln {N_CLASSES}) at step(s) {'; '.join(plateaus)}, where the landscape "
            "is flat because nothing has been learned yet: there its small spread "
            "does not mean a well-conditioned problem."
        )
    return text


def landscape_table(results: Results) -> str:
    """A Markdown table of the landscape verdict: per measure, BN's and the plain
    network's medians (mean ± standard deviation over the seeds), at how many probes
    BN's is the smaller, and the verdict."""
    medians = landscape_medians(results)
    verdicts = landscape_verdicts(results)
    smaller, probes = smaller_counts(results)
    word = {BELOW: "smoother with BN", ABOVE: "smoother without BN",
            WITHIN: "within the spread"}
    rows = [
        "| measure (median over the probes after step 0) | with BN | without BN "
        "| BN's the smaller at | verdict |",
        "|---|---:|---:|---:|---|",
    ]
    for m, name in MEASURES.items():
        rows.append(
            f"| {name} | {spread_number(medians['bn'][m])} "
            f"| {spread_number(medians['plain'][m])} "
            f"| {smaller[m]} of {probes} probes | {word[verdicts[m]]} |"
        )
    return "\n".join(rows)


def probe_table(results: Results) -> str:
    """A Markdown table of the landscape's measures at every probe, with and without
    BN: means ± standard deviations over the seeds."""
    columns = {
        (m, v): curve(results, v, m) for m in MEASURES for v in ("bn", "plain")
    }
    steps = columns["loss_spread", "bn"][0]
    rows = [
        "| step | loss spread, BN | without BN | gradient change, BN | without BN "
        "| β-smoothness, BN | without BN |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(mean: float, std: float) -> str:
        return "n/a" if not np.isfinite(mean) else f"{mean:.3f} ± {std:.3f}"

    for i, step in enumerate(steps):
        cells = [
            cell(columns[key][1][i], columns[key][2][i]) for key in columns
        ]
        rows.append(f"| {step:,} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def still_rising(results: Results) -> dict[str, np.ndarray]:
    """The variants whose validation accuracy rose between the last two probes
    beyond the spread over the seeds (`order`): each one's rise per seed."""
    rising = {}
    for v in LABELS:
        accuracy = np.array(
            [as_array(run[v]["val_accuracy"]) for run in results["by_seed"]]
        )
        if accuracy.shape[1] > 1 and order(accuracy[:, -1], accuracy[:, -2]) == ABOVE:
            rising[v] = accuracy[:, -1] - accuracy[:, -2]
    return rising


def caveats(results: Results) -> str:
    """What the measurements do not show; whether the runs had converged
    (`still_rising`)."""
    p = results["params"]
    steps = first(results)["steps"]
    rising = still_rising(results)
    if rising:
        listed = "; ".join(
            f"{LABELS[v]} {spread_points(rise)}" for v, rise in rising.items()
        )
        run = (
            f"a short run ({p['steps']:,} steps of {p['batch_size']}), not converged: "
            f"between the last two probes (steps {steps[-2]:,} and {steps[-1]:,}) the "
            f"validation accuracy still rose beyond the spread ({listed})"
        )
    else:
        run = (
            f"a short run ({p['steps']:,} steps of {p['batch_size']}), though no "
            f"variant's validation accuracy rose beyond the spread between the last "
            f"two probes"
        )
    return (
        f"Caveats: {seeds_listed(results['seeds'])}, so a spread is the standard "
        f"deviation of few values, and the test images are the same for every seed: "
        f"the spread is that of the initial weights, the batches and the noise, not "
        f"of the test set; {run}; the landscape is probed on one batch per probe, the "
        f"batch of the next step, with BN in training mode as in a step. The paper "
        f"trains VGG on CIFAR-10; here it is the seed's MNIST CNN."
    )


def findings(results: Results) -> list[str]:
    """The report's reading, one Markdown paragraph each."""
    return [
        training_findings(results),
        instability_findings(results),
        landscape_findings(results),
        caveats(results),
    ]
