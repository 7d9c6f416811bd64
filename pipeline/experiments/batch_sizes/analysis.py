"""What the report of the experiment `batch_sizes` shows: its metrics, its plots
table, its figures' numbers and its sentences.

Each function reads `results`, the experiment's results file: its "params", its
"seeds" and "by_seed", one entry per seed holding what run.py's `run()` returned for
that seed ("runs", "test_images", "training_images", "momentum"; a value that was not
finite is None). Every number the report compares is a mean over the seeds with its
standard deviation, and every verdict is chosen from them
(`pipeline.reporting.spread.apart`). Pure functions of that dict, numpy only, so the
verdicts can be tested without running an experiment, Keras or a notebook. What the
paper found is quoted from it, as constants.
"""

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

from pipeline.core.normalizations import BATCH_STATISTICS, LABELS
from pipeline.reporting.spread import (
    apart,
    mean_std,
    over_seeds,
    rule_words,
    seed_words,
    spread_points,
    with_spread,
)
from pipeline.reporting.text import (
    csv_columns,
    family,
    joined,
    one_accuracy_error,
    shared_count,
    stale_weight,
)

Results = Mapping[str, Any]

TITLE = "bnk: batch normalization and the batch size"
#: The normalizations whose accuracies the metrics file holds, by the short name its
#: keys give them (`bn_smallest`): the long ones made its row of `dvc metrics
#: show` wider than a screen.
HEADLINE = {"batch_norm": "bn", "group_norm": "gn"}

#: Wu & He (2018), Figure 1: ResNet-50 on ImageNet, top-1 validation error by images
#: per worker (their Table 2 lists the same numbers).
WU_HE_BN_ERROR = {32: 23.6, 16: 23.7, 8: 24.8, 4: 27.3, 2: 34.7}
WU_HE_GN_ERROR = {32: 24.1, 16: 24.2, 8: 24.0, 4: 24.2, 2: 24.1}
#: Wu & He compare batch sizes at an equal number of epochs; run.py also runs them at
#: an equal number of steps (as many as the largest batch size takes).
BUDGETS = ("epochs", "steps")
BUDGET_NAMES = {"epochs": "equal epochs", "steps": "equal steps"}
#: What each accuracy of a run of the BN family measures.
STATISTICS = {
    "test_accuracy": "moving statistics",
    "batch_statistics_accuracy": "statistics of each test batch",
    "population_accuracy": "population statistics, recomputed",
}


# What ran


def batch_sizes(results: Results) -> list[int]:
    """The batch sizes that ran, smallest first."""
    return sorted(
        {run["batch_size"] for seed in results["by_seed"] for run in seed["runs"]}
    )


def normalizations(results: Results) -> list[str]:
    """The normalizations the params run, in the order of LABELS."""
    wanted = results["params"]["normalizations"]
    return [name for name in LABELS if name in wanted]


def reference_batch_size(results: Results) -> int:
    """The batch size of the baseline: the params' `reference_batch_size` when it is
    one of the batch sizes run; otherwise the batch size run closest to it (of two
    as close, the smaller), which the report then names as the reference."""
    wanted = results["params"]["reference_batch_size"]
    return min(batch_sizes(results), key=lambda size: (abs(size - wanted), size))


def find_run(
    seed: Mapping[str, Any], normalization: str, batch_size: int, budget: str
) -> Mapping[str, Any] | None:
    """The run of one seed at `batch_size` under `budget`. At the largest batch size
    both budgets are the same run, recorded once (as budget "epochs")."""
    largest = max(run["batch_size"] for run in seed["runs"])
    wanted = "epochs" if batch_size == largest else budget
    for run in seed["runs"]:
        if (
            run["normalization"] == normalization
            and run["batch_size"] == batch_size
            and run["budget"] == wanted
        ):
            return run
    return None


def values(
    results: Results,
    normalization: str,
    batch_size: int,
    budget: str = "epochs",
    key: str = "test_accuracy",
) -> np.ndarray:
    """`key` of the run of `normalization` at `batch_size` under `budget`, one value
    per seed (NaN where it did not run or was not finite)."""
    return over_seeds(
        results,
        lambda seed: (find_run(seed, normalization, batch_size, budget) or {}).get(key),
    )


def curve(
    results: Results,
    normalization: str,
    budget: str = "epochs",
    key: str = "test_accuracy",
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(batch sizes, mean of `key` at each over the seeds, standard deviation): one
    line of a figure."""
    sizes = batch_sizes(results)
    spread = [mean_std(values(results, normalization, s, budget, key)) for s in sizes]
    return sizes, np.array([m for m, _ in spread]), np.array([s for _, s in spread])


def first_seed_value(
    results: Results, normalization: str, batch_size: int, budget: str, key: str
) -> Any:
    """`key` of the first seed's run (what every seed shares: steps, learning
    rate), or None."""
    for seed in results["by_seed"]:
        run = find_run(seed, normalization, batch_size, budget)
        if run is not None:
            return run.get(key)
    return None


def baseline(results: Results) -> np.ndarray:
    """BN's test accuracy at the reference batch size, at equal epochs, per seed."""
    return values(results, "batch_norm", reference_batch_size(results), "epochs")


# The setup


def setup_text(results: Results) -> str:
    """The environment and the setup of the runs, from the params (only the
    normalizations they run)."""
    p = results["params"]
    normalizers = p["normalizers"]
    sizes = batch_sizes(results)
    names = normalizations(results)
    reference = reference_batch_size(results)
    rate = {
        s: first_seed_value(results, names[0], s, "epochs", "learning_rate")
        for s in sizes
    }
    steps = {
        s: first_seed_value(results, names[0], s, "epochs", "steps") for s in sizes
    }
    lines = [
        f"Backend **{results['backend']}** ({results['device']}), Keras "
        f"{results['keras_version']}, {results['backend']} "
        f"{results['backend_version']}; the whole experiment took "
        f"{results['wall_seconds'] / 60:.1f} minutes for "
        f"{len(results['seeds'])} seed(s)."
    ]
    setup = (
        f"**Setup.** `bnk.CNN(normalization=...)` (two conv 5×5 blocks, each followed "
        f"by the normalization, dense 1024, dropout 0.5) with "
        f"{joined(LABELS[n] for n in names)}, "
        f"trained at batch sizes {', '.join(map(str, sizes))} on "
        f"{shared_count(results, 'training_images')} training images, under two "
        "budgets: "
        f"**equal epochs** ({p['epochs']} pass(es) at every batch size, Wu & He's "
        f"comparison: {steps[sizes[0]]:,} steps at batch {sizes[0]}, "
        f"{steps[sizes[-1]]:,} at {sizes[-1]}) and **equal steps** (every batch size "
        f"takes the {steps[sizes[-1]]:,} steps batch {sizes[-1]} takes, so smaller "
        f"batches see fewer images; at batch {sizes[-1]} the two budgets are the "
        f"same run). Adam at {p['learning_rate']:g} for batches of "
        f"{p['reference_batch_size']}, scaled with the square root of the batch size "
        f"({rate[sizes[0]]:.2g} at {sizes[0]}, {rate[sizes[-1]]:.2g} at "
        f"{sizes[-1]}); tested on {shared_count(results, 'test_images')} test images "
        f"in inference mode. Each seed ({', '.join(map(str, results['seeds']))}) "
        "starts every run from its own initial weights and feeds the images in its own "
        "order, the same for every run of that seed. The baseline is BN at batch "
        f"{reference}, equal epochs"
    )
    if reference != p["reference_batch_size"]:
        setup += (
            f" (the batch size run closest to `reference_batch_size` "
            f"{p['reference_batch_size']}, which did not run)"
        )
    setup += f": {with_spread(baseline(results))}."
    details = []
    bn_family = family(names, BATCH_STATISTICS)
    if bn_family:
        details.append(
            f"The BN family ({joined(LABELS[n] for n in bn_family)}) is also tested "
            "with the statistics of each test batch of the training batch size, and "
            "with population statistics recomputed over up to "
            f"{p['statistics_batches']} training batches of the training size (at "
            "most one pass)."
        )
    if "ghost_batch_norm" in names:
        details.append(
            f"Ghost BN normalizes sub-batches of at most "
            f"{normalizers['ghost_batch_size']} examples (plain BN at smaller "
            "batches)."
        )
    if "batch_renorm" in names:
        clipping = normalizers["renorm_clipping"]
        details.append(
            f"Batch Renorm clips r to [{clipping['rmin']:.3g}, {clipping['rmax']:g}] "
            f"and d to ±{clipping['dmax']:g} (renorm momentum "
            f"{normalizers['renorm_momentum']:g})."
        )
    if "group_norm" in names:
        details.append(f"GroupNorm uses {normalizers['groups']} groups.")
    if "layer_norm" in names:
        details.append(
            "LayerNorm normalizes each example over height, width and channels."
        )
    return "\n\n".join(lines + [" ".join([setup, *details])])


def error_note(results: Results) -> str:
    """What the error in the main figure is, for the normalizations that ran."""
    text = "Error is 1 − accuracy on the test images, in inference mode"
    bn_family = family(normalizations(results), BATCH_STATISTICS)
    if bn_family:
        text += (
            f": {joined(LABELS[n] for n in bn_family)} normalize with their moving "
            "statistics there"
        )
    return (
        text + f". Points are the {seed_words(results['seeds'])}; the bars span one "
        "standard deviation either side."
    )


def gap_note(results: Results) -> str:
    """What the three accuracies of the BN family measure."""
    ghost = (
        " (ghost BN: in its sub-batches)"
        if "ghost_batch_norm" in normalizations(results)
        else ""
    )
    return (
        "With batch statistics the test images are normalized as training normalized "
        f"its batches: in batches of the training batch size{ghost}, everything else "
        "in inference mode (dropout off); the moving statistics are what a deployed "
        "model uses. The population statistics replace the moving averages after "
        "training with exact averages over training batches of the training size "
        "(`bnk.recompute_statistics`, Ioffe & Szegedy's Algorithm 2): what the "
        "moving averages would be without their lag and noise. All at equal epochs; "
        f"{seed_words(results['seeds'])}."
    )


def runs_table(results: Results) -> str:
    """Markdown: a row per normalization, batch size and budget, each accuracy as
    mean ± standard deviation over the seeds."""
    rows = [
        "| normalization | batch size | budget | learning rate | steps | passes "
        "| test accuracy | with batch statistics | with population statistics "
        "| seconds |",
        "|:---|---:|:---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    sizes = batch_sizes(results)
    for name in normalizations(results):
        for size in sizes:
            for budget in BUDGETS:
                if budget == "steps" and size == sizes[-1]:
                    continue  # the same run as at equal epochs
                row = _table_row(results, name, size, budget, size == sizes[-1])
                if row:
                    rows.append(row)
    return "\n".join(rows)


def _table_row(
    results: Results, name: str, size: int, budget: str, both: bool
) -> str | None:
    """One row of `runs_table`, None if the run is in no seed."""
    record = None
    for seed in results["by_seed"]:
        record = record or find_run(seed, name, size, budget)
    if record is None:
        return None
    seconds = mean_std(values(results, name, size, budget, "wall_seconds"))[0]
    accuracies = "".join(
        f"| {with_spread(values(results, name, size, budget, key))} "
        for key in STATISTICS
    )
    return (
        f"| {LABELS[name]} | {size} | {'both' if both else BUDGET_NAMES[budget]} "
        f"| {record['learning_rate']:.2g} | {record['steps']:,} "
        f"| {record['epochs']:.3g} {accuracies}| {seconds:.0f} |"
    )


# Figures


def error_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Ticks for a log axis of errors (fractions) from `low` to `high`: 1, 2 and 5
    times powers of ten, or finer steps where those give fewer than three, labelled
    as distinct percentages."""
    low, high = max(low, 1e-5), min(max(high, low * 1.01), 1.0)
    decades = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    ticks: list[float] = []
    for mantissas in (
        (1, 2, 5),
        tuple(range(1, 10)),
        tuple(np.arange(10, 100) / 10),
        tuple(np.arange(100, 1000) / 100),
    ):
        ticks = sorted(
            {
                float(f"{m * 10.0**k:.6g}")
                for k in decades
                for m in mantissas
                if low <= m * 10.0**k <= high
            }
        )
        if len(ticks) >= 3:
            break
    labels = [f"{100 * tick:.4g}%" for tick in ticks]
    return ticks, labels


def tick_decimals(ticks: Sequence[float], most: int = 4) -> int:
    """The fewest decimals (up to `most`) that give distinct percentage labels to
    `ticks` (fractions)."""
    for decimals in range(most + 1):
        labels = [f"{100 * t:.{decimals}f}" for t in ticks]
        if len(set(labels)) == len(labels):
            return decimals
    return most


# Verdicts


def best_batch_size(accuracy: Mapping[int, np.ndarray]) -> int:
    """Of the batch sizes of `accuracy` (per seed at each), the one of the highest
    mean (the first of equals; one with no finite value never is)."""
    return max(accuracy, key=lambda s: np.nan_to_num(mean_std(accuracy[s])[0], nan=-1))


class Climb(NamedTuple):
    """How much accuracy `normalization` loses at the smallest batch size."""

    smallest: int
    best: int
    smallest_values: np.ndarray
    best_values: np.ndarray
    #: Per seed: accuracy at the best batch size minus at the smallest.
    drop: np.ndarray
    #: Whether the loss is beyond the spread over seeds.
    loses: bool


def climb(results: Results, normalization: str, budget: str = "epochs") -> Climb | None:
    """The smallest batch size against the one of the best mean accuracy, for
    `normalization` under `budget`; None if it did not run."""
    sizes = batch_sizes(results)
    accuracy = {size: values(results, normalization, size, budget) for size in sizes}
    means = {size: mean_std(v)[0] for size, v in accuracy.items()}
    if not sizes or all(not np.isfinite(m) for m in means.values()):
        return None
    smallest = sizes[0]
    best = best_batch_size(accuracy)
    drop = accuracy[best] - accuracy[smallest]
    loses = best != smallest and apart(accuracy[best], accuracy[smallest])
    return Climb(smallest, best, accuracy[smallest], accuracy[best], drop, loses)


def measured_line(results: Results, budget: str) -> str:
    """What each normalization reaches at the smallest batch size and at its best,
    under `budget`."""
    sizes = batch_sizes(results)
    steps = first_seed_value(
        results, normalizations(results)[0], sizes[-1], "epochs", "steps"
    )
    if budget == "epochs":
        head = (
            f"**What we measured at equal epochs** "
            f"({results['params']['epochs']} pass(es) at every batch size"
        )
    else:
        head = (
            f"**At equal steps** ({steps:,} steps at every batch size, as batch "
            f"{sizes[-1]} takes in its pass(es): batch {sizes[0]} sees "
            f"{Fraction(sizes[0], sizes[-1])} of the images"
        )
    measured = []
    for name in normalizations(results):
        found = climb(results, name, budget)
        if found is None:
            continue
        measured.append(
            f"{LABELS[name]} {with_spread(found.smallest_values)} at batch "
            f"{found.smallest} (best {with_spread(found.best_values)}, at "
            f"{found.best})"
        )
    return (
        f"{head}; test accuracy, {seed_words(results['seeds'])}): "
        + "; ".join(measured)
        + "."
    )


def climb_verdict(results: Results, budget: str = "epochs") -> str | None:
    """Wu & He's Figure 1 against ours under `budget`: does BN lose accuracy at the
    smallest batch beyond the spread over seeds, where GroupNorm does not? Without
    GroupNorm in the params, BN alone; None without BN."""
    lead = f"At {BUDGET_NAMES[budget]}"
    bn, gn = climb(results, "batch_norm", budget), climb(results, "group_norm", budget)
    if bn is None:
        return None
    said_bn = (
        f"at batch {bn.smallest} BN is {spread_points(bn.drop, signed=False)} below "
        f"its best (batch {bn.best})"
    )
    rule = f"{seed_words(results['seeds'])}; {rule_words()}"
    if gn is None:
        if bn.loses:
            return (
                f"{lead}, BN loses accuracy at the smallest batch beyond the spread, "
                f"as in the paper: {said_bn} ({rule}). GroupNorm is not among the "
                "normalizations run, so there is no flat line to set against it."
            )
        return (
            f"{lead}, unlike the paper, BN does not lose accuracy beyond the spread "
            f"at the smallest batch: {said_bn} ({rule}). GroupNorm is not among the "
            "normalizations run."
        )
    said = (
        f"{said_bn}, GroupNorm {spread_points(gn.drop, signed=False)} below its own "
        f"(batch {gn.best}) ({rule})"
    )
    if bn.loses and not gn.loses:
        return f"{lead}, as in the paper: {said}."
    if bn.loses:
        return (
            f"{lead}, partly as in the paper: BN loses accuracy at the smallest "
            f"batch, but so does GroupNorm: {said}."
        )
    if not gn.loses:
        return (
            f"{lead}, unlike the paper, BN does not lose accuracy beyond the spread "
            f"at the smallest batch, nor does GroupNorm: {said}."
        )
    return (
        f"{lead}, unlike the paper, GroupNorm loses accuracy at the smallest batch "
        f"and BN stays within the spread: {said}."
    )


def wu_he_findings(results: Results) -> list[str]:
    """What Wu & He found, then, under each budget, what we measured and the
    verdict."""
    lines = [
        "**What Wu & He found.** ResNet-50 on ImageNet, at equal epochs: BN's top-1 "
        f"error rises from {WU_HE_BN_ERROR[32]}% at 32 images per worker to "
        f"{WU_HE_BN_ERROR[2]}% at 2, while GroupNorm's stays between "
        f"{min(WU_HE_GN_ERROR.values())}% and {max(WU_HE_GN_ERROR.values())}%."
    ]
    for budget in BUDGETS:
        lines.append(measured_line(results, budget))
        verdict = climb_verdict(results, budget)
        if verdict is not None:
            lines.append(verdict)
    return lines


def gap_findings(results: Results) -> list[str]:
    """The train/inference gap of the BN family at equal epochs: accuracy with the
    statistics of each test batch minus accuracy with the moving statistics, by
    batch size, and what recomputed population statistics win back."""
    lines = []
    sizes = batch_sizes(results)
    for name in family(normalizations(results), BATCH_STATISTICS):
        moving = {s: values(results, name, s) for s in sizes}
        batch = {
            s: values(results, name, s, key="batch_statistics_accuracy") for s in sizes
        }
        gaps = {s: batch[s] - moving[s] for s in sizes}
        listed = ", ".join(f"{spread_points(gaps[s])} at {s}" for s in sizes)
        text = f"- {LABELS[name]}: batch statistics minus moving statistics: {listed}. "
        beyond = [s for s in sizes if apart(batch[s], moving[s])]
        if not beyond:
            text += "Within the spread over seeds at every batch size."
        else:
            widest = max(beyond, key=lambda s: abs(mean_std(gaps[s])[0]))
            if mean_std(gaps[widest])[0] > 0:
                text += (
                    f"The moving statistics cost most at batch {widest}: the network "
                    "does better on the batch statistics it trained with."
                )
                text += _stale(results, name, widest)
            else:
                text += (
                    f"The batch statistics cost most at batch {widest}: normalizing "
                    "by so few test images is noisier than the moving averages."
                )
        text += population_sentence(results, name)
        lines.append(text)
    return lines


def _stale(results: Results, name: str, batch_size: int) -> str:
    """A sentence if the moving averages at `batch_size` (equal epochs) are stale
    (`pipeline.reporting.text.stale_weight`); else ""."""
    steps = first_seed_value(results, name, batch_size, "epochs", "steps")
    momentum = results["by_seed"][0]["momentum"]
    remembered = stale_weight(momentum, steps)
    if remembered is None:
        return ""
    return (
        f" After {steps:,} steps, moving averages of momentum {momentum:g} still give "
        f"their initial values a weight of {remembered:.0%} ({momentum:g}^{steps}): "
        "there they are stale rather than wrong."
    )


def population_sentence(results: Results, name: str) -> str:
    """How much recomputing the population statistics after training changes the
    accuracy of `name` at equal epochs: the share of its small-batch loss that is
    the moving averages' fault. "" if not measured."""
    sizes = batch_sizes(results)
    moving = {s: values(results, name, s) for s in sizes}
    population = {s: values(results, name, s, key="population_accuracy") for s in sizes}
    if all(not np.isfinite(v).any() for v in population.values()):
        return ""
    listed = ", ".join(
        f"{spread_points(population[s] - moving[s])} at {s}" for s in sizes
    )
    text = (
        " With population statistics recomputed after training "
        f"(`bnk.recompute_statistics`) instead of the moving averages: {listed}."
    )
    smallest = sizes[0]
    best = best_batch_size(moving)
    lost = mean_std(moving[best] - moving[smallest])[0]
    regained = mean_std(population[smallest] - moving[smallest])[0]
    if best == smallest or not apart(moving[best], moving[smallest]):
        return text + (
            f" At batch {smallest} there is no loss beyond the spread for them to "
            "explain."
        )
    if regained > 0 and apart(population[smallest], moving[smallest]):
        return text + (
            f" Of the {100 * lost:.1f} points lost at batch {smallest} against batch "
            f"{best}, the recomputed statistics win back "
            f"{100 * min(regained, lost):.1f}: that much is the moving averages' "
            "fault, the rest the training on noisy batch statistics."
        )
    return text + (
        f" The {100 * lost:.1f} points lost at batch {smallest} against batch {best} "
        "are not the moving averages' fault: recomputed statistics do not win them "
        "back beyond the spread."
    )


def short_at_largest(results: Results) -> dict[str, np.ndarray | None]:
    """At equal epochs, per normalization that ran: its accuracy at the largest
    batch size (the fewest steps) minus at its best batch size, per seed, where the
    largest is below the best beyond the spread over seeds; None where it is not."""
    sizes = batch_sizes(results)
    short: dict[str, np.ndarray | None] = {}
    for name in normalizations(results):
        accuracy = {size: values(results, name, size) for size in sizes}
        if not any(np.isfinite(v).any() for v in accuracy.values()):
            continue
        best, largest = best_batch_size(accuracy), sizes[-1]
        below = best != largest and apart(accuracy[best], accuracy[largest])
        short[name] = accuracy[largest] - accuracy[best] if below else None
    return short


def undertrained_text(results: Results) -> str:
    """Whether the largest batch size, with the fewest steps at equal epochs, ends
    below the best batch size beyond the spread: for every normalization, for some,
    or for none (`short_at_largest`)."""
    largest = batch_sizes(results)[-1]
    short = short_at_largest(results)
    below = [name for name, gap in short.items() if gap is not None]
    level = [name for name, gap in short.items() if gap is None]
    listed = "; ".join(
        f"{LABELS[name]} {spread_points(short[name])}" for name in below
    )
    if below and not level:
        return (
            f": at batch {largest} every normalization ends below its best batch size "
            f"beyond the spread ({listed}), so the largest batches are undertrained, "
            "whatever the normalization"
        )
    if below:
        return (
            f": at batch {largest} the accuracy ends below that of the best batch size "
            f"beyond the spread for {listed} but not for "
            f"{joined(LABELS[n] for n in level)}, so the fewer steps cost only some "
            "normalizations"
        )
    return (
        f", yet at batch {largest} no normalization ends below its best batch size "
        "beyond the spread: the fewer steps show no undertraining here"
    )


def batch_size_caveats(results: Results) -> str:
    """The seeds, the short training, whether the budgets' steps leave the largest
    batches undertrained, and the noise of one accuracy."""
    sizes = batch_sizes(results)
    name = normalizations(results)[0]
    steps = {s: first_seed_value(results, name, s, "epochs", "steps") for s in sizes}
    test_images = results["by_seed"][0]["test_images"]
    error = one_accuracy_error(
        mean_std(baseline(results))[0], test_images, "the baseline's mean"
    )
    return (
        f"Caveats: {len(results['seeds'])} seed(s) "
        f"({', '.join(map(str, results['seeds']))}), one run per setting and seed; "
        f"{results['params']['epochs']} pass(es) at equal epochs give "
        f"{steps[sizes[0]]:,} steps at batch {sizes[0]} but {steps[sizes[-1]]:,} at "
        f"{sizes[-1]}{undertrained_text(results)}; at equal steps the smaller "
        "batches see fewer images instead. Every number compared is a mean over the "
        f"seeds with its standard deviation, and {rule_words()}. {error}"
    ).rstrip()


# Metrics and plots


def metrics(results: Results) -> dict[str, Any]:
    """The seeds; the baseline (BN at the reference batch size, equal epochs); and
    the test accuracy at the smallest batch size, equal epochs, of BN and GroupNorm
    (those that ran): means over the seeds and their standard deviations, what `dvc
    metrics show` lists (None where not finite: strict JSON)."""
    reference_mean, reference_std = mean_std(baseline(results))
    numbers: dict[str, Any] = {
        "seeds": list(results["seeds"]),
        "baseline_accuracy": reference_mean,
        "baseline_accuracy_std": reference_std,
    }
    smallest = batch_sizes(results)[0]
    for name, short in HEADLINE.items():
        if name in normalizations(results):
            mean, std = mean_std(values(results, name, smallest))
            numbers[f"{short}_smallest"] = mean
            numbers[f"{short}_smallest_std"] = std
    return {
        key: value if key == "seeds" or np.isfinite(value) else None
        for key, value in numbers.items()
    }


def plots(results: Results) -> str:
    """CSV: a row per batch size; the mean test accuracy at equal epochs of each
    normalization in a column of its name (every known one, empty where it did not
    run), the columns dvc.yaml's plot names; then, for those that ran, its standard
    deviation (`<name>_std`) and the same at equal steps (`<name>_equal_steps`,
    `<name>_equal_steps_std`)."""
    sizes = batch_sizes(results)
    ran = normalizations(results)
    columns: dict[str, list] = {"batch_size": sizes}
    for name in LABELS:
        columns[name] = (
            list(curve(results, name)[1]) if name in ran else [None] * len(sizes)
        )
    for name in ran:
        _, _, std = curve(results, name)
        _, steps_mean, steps_std = curve(results, name, "steps")
        columns[f"{name}_std"] = list(std)
        columns[f"{name}_equal_steps"] = list(steps_mean)
        columns[f"{name}_equal_steps_std"] = list(steps_std)
    return csv_columns(columns)
