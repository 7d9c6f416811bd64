"""The sentences of the index: its comparison of the backends (where their losses
part, what one training step already changes, how far apart they end, and whether
they differ beyond the spread between seeds) and of the main model over seeds (the
one model the reports dissect among the seeds, and the choices of BN's inference
statistics against each other and the accuracy goal).

The backends' functions read the `compare@<backend>` results (`losses`, one per step,
`weights_after_first_step`, by weight name, and `runs`, every seed's losses and test
scores); the seeds' functions read stage `seeds`'s per-seed accuracies. Each returns
Markdown. Pure functions, numpy only, so every verdict can be tested without training
or a notebook.
"""

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.core.backends import BACKEND_NAMES
from pipeline.reporting import spread
from pipeline.reporting.text import percent

#: Two backends' losses are together while their relative gap stays below this.
TOGETHER = 1e-5
#: A weight differs between two backends after step 1 if some entry differs by more.
WEIGHT_TOLERANCE = 1e-6
#: The steps at the end over which the typical gap is taken.
LATE_STEPS = 100
#: The relative gap at which two trajectories count as clearly apart.
APART = 0.01

#: The project's goal: the default recipe's mean test accuracy over GOAL_SEEDS seeds.
ACCURACY_GOAL = 0.992
GOAL_SEEDS = 5

Losses = Mapping[str, Sequence[float]]
Weights = Mapping[str, Mapping[str, Sequence[float]]]
#: Per backend (or recipe), one value per seed.
PerSeed = Mapping[str, Sequence[float]]


def relative_gap(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """|a - b| / |b|, per step."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.abs(a - b) / np.abs(b)


def first_step_above(
    a: Sequence[float], b: Sequence[float], level: float
) -> int | None:
    """The first step (counted from 1) whose relative gap exceeds `level`, or None."""
    above = np.flatnonzero(relative_gap(a, b) > level)
    return int(above[0]) + 1 if above.size else None


def _pairs(backends: Sequence[str]) -> list[tuple[str, str]]:
    return list(itertools.combinations(backends, 2))


def _names(*backends: str) -> list[str]:
    return [BACKEND_NAMES[b] for b in backends]


def parting(losses: Losses) -> str:
    """Which backends stay together longest and which parts first, by the first step
    at which each pair's losses differ by more than TOGETHER."""
    backends = list(losses)
    steps = len(next(iter(losses.values())))
    first = {
        (a, b): first_step_above(losses[a], losses[b], TOGETHER)
        for a, b in _pairs(backends)
    }
    if not first:
        return ""
    if all(step is None for step in first.values()):
        return (
            f"No two backends' losses differ by more than {TOGETHER:.0e} (relative) in "
            f"{steps:,} steps."
        )

    def order(pair: tuple[str, str]) -> float:
        return np.inf if first[pair] is None else first[pair]

    def when(pair: tuple[str, str]) -> str:
        if first[pair] is None:
            return f"in none of {steps:,} steps"
        return f"at step {first[pair]}"

    listing = "; ".join(
        f"{' vs '.join(_names(*pair))} {when(pair)}" for pair in first
    )
    text = (
        f"The first step at which two backends' losses differ by more than "
        f"{TOGETHER:.0e} (relative): {listing}."
    )
    if len(backends) != 3:
        return text
    together = max(first, key=order)
    (third,) = set(backends) - set(together)
    others = [pair for pair in first if third in pair]
    if all(order(pair) < order(together) for pair in others):
        a, b = _names(*together)
        text += (
            f" {a} and {b} stay together longest; {BACKEND_NAMES[third]} parts from "
            "both of them first."
        )
    else:
        text += " No backend parts from both others before they part from each other."
    return text


def is_cancelled_bias(name: str) -> bool:
    """A convolution's bias, which the BN after it subtracts again."""
    layer, _, weight = name.rpartition("/")
    return weight == "bias" and layer.rpartition("/")[2].startswith("conv")


def largest_differences(after: Weights) -> dict[str, float]:
    """Per weight, the largest difference of any entry between any two backends
    after the first step, for the weights where it exceeds WEIGHT_TOLERANCE."""
    backends = list(after)
    largest = {}
    for name in next(iter(after.values())):
        difference = max(
            (
                float(np.max(np.abs(np.subtract(after[a][name], after[b][name]))))
                for a, b in _pairs(backends)
            ),
            default=0.0,
        )
        if difference > WEIGHT_TOLERANCE:
            largest[name] = difference
    return largest


def first_step(after: Weights, learning_rate: float) -> str:
    """What one Adam step does to round-off: the cancelled biases, and whether any
    other weight already differs between backends."""
    apart = largest_differences(after)
    biases = {n: d for n, d in apart.items() if is_cancelled_bias(n)}
    others = {n: d for n, d in apart.items() if not is_cancelled_bias(n)}
    text = (
        "Adam's first step moves every weight by about the learning rate "
        f"({learning_rate:g}) in the direction of its gradient's sign, however small "
        "the gradient. A gradient that is zero in exact arithmetic (the convolution "
        "biases: the batch mean that BN subtracts cancels them) is pure round-off, and "
        "its sign can differ between backends"
    )
    if biases:
        text += (
            f": after one step those biases differ by up to {max(biases.values()):.1e} "
            f"(twice the learning rate is {2 * learning_rate:g}); they cannot change "
            "the output, since BN removes them again."
        )
    else:
        text += (
            f"; here no convolution bias differs by more than {WEIGHT_TOLERANCE:.0e} "
            "after one step."
        )
    if others:
        listed = ", ".join(f"`{n}` ({d:.1e})" for n, d in others.items())
        text += (
            f" Other weights differ by more than {WEIGHT_TOLERANCE:.0e} after step 1 "
            f"too: {listed}; there a gradient's round-off already moved a weight "
            "differently."
        )
    else:
        text += (
            f" No other weight differs by more than {WEIGHT_TOLERANCE:.0e} between any "
            "two backends after step 1: the trajectories part later, as each "
            "backend's round-off accumulates over the steps that follow."
        )
    return text


def late_gap(losses: Losses) -> str:
    """How far apart the pairs' losses end (median relative gap per step over the
    last LATE_STEPS steps), and when each pair first drifted more than APART."""
    pairs = _pairs(list(losses))
    if not pairs:
        return ""
    steps = len(next(iter(losses.values())))
    late = min(LATE_STEPS, steps)
    medians = [
        float(np.median(relative_gap(losses[a][-late:], losses[b][-late:])))
        for a, b in pairs
    ]
    firsts = [first_step_above(losses[a], losses[b], APART) for a, b in pairs]
    text = (
        f"Over the last {late} steps the loss of one backend differs from another's "
        f"by a median of {100 * min(medians):.1f}% to {100 * max(medians):.1f}% per "
        "step (relative, over the pairs of backends)"
    )
    reached = sorted({step for step in firsts if step is not None})
    if reached:
        text += (
            f"; the gap first exceeds {100 * APART:.0f}% at step {reached[0]:,}"
            + (f" to {reached[-1]:,}" if len(reached) > 1 else "")
            + ". The same start and the same batches, then, but by the end different "
            "trajectories of the same course."
        )
    else:
        text += (
            f"; no pair's gap exceeds {100 * APART:.0f}% at any step: the backends "
            "follow one trajectory to the end."
        )
    return text


def per_seed(
    runs: Mapping[str, Mapping[str, Any]], pick: Callable[[Mapping[str, Any]], float]
) -> dict[str, np.ndarray]:
    """Per backend, `pick` applied to every seed's run of its compare results (its
    `runs`), in the order of the seeds."""
    return {
        backend: np.array([pick(run) for run in result["runs"]], float)
        for backend, result in runs.items()
    }


def late_loss(losses: Sequence[float]) -> float:
    """The mean training loss of the last LATE_STEPS steps (all, if fewer)."""
    losses = np.asarray(losses, float)
    return float(losses[-min(LATE_STEPS, len(losses)):].mean())


def _finite(values: Sequence[float]) -> np.ndarray:
    values = np.asarray(values, float)
    return values[np.isfinite(values)]


def _accuracy_gap(difference: float, decimals: int = 2) -> str:
    return f"{100 * difference:.{decimals}f} points"


def loss_with_spread(values: Sequence[float]) -> str:
    """A loss over seeds as "0.0312 ± 0.0011" (mean, standard deviation)."""
    mean, std = spread.mean_std(values)
    return f"{mean:.4f} ± {std:.4f}"


def _loss_gap(difference: float, decimals: int = 2) -> str:
    return f"{difference:.{decimals + 2}f}"


def _listing(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _seed_count(counts: Sequence[int]) -> str:
    low, high = min(counts), max(counts)
    return f"{low} seed{'s' if low != 1 else ''}" if low == high else (
        f"{low} to {high} seeds"
    )


def between_backends(values: PerSeed, quantity: str, accuracy: bool = True) -> str:
    """Whether the backends differ in `quantity` (one value per seed each; a
    fraction if `accuracy`, else a loss) beyond the spread between seeds.

    The test is `spread.apart` on every pair of backends: two backends differ when
    their means over the seeds differ by more than spread.BEYOND standard errors of
    the difference, each mean's error taken from its own seeds' standard deviation.
    The sentence gives each backend's mean ± std, the range of the backends' means,
    and the spread between seeds on one backend (the standard deviation, pooled over
    the backends: the root of their mean variance) for scale. One backend, or a
    backend with fewer than two seeds, has no spread to test against: said so.
    """
    show, gap = (spread.with_spread, _accuracy_gap)
    if not accuracy:
        show, gap = loss_with_spread, _loss_gap
    finite = {b: _finite(v) for b, v in values.items()}
    counts = [len(v) for v in finite.values()]
    listing = "; ".join(f"{BACKEND_NAMES[b]} {show(v)}" for b, v in finite.items())
    head = f"{quantity[:1].upper()}{quantity[1:]} over {_seed_count(counts)}: {listing}"
    if len(finite) < 2:
        return (
            f"{head}. Only one backend was compared: no spread between backends to "
            "set against the spread between seeds."
        )
    single = [BACKEND_NAMES[b] for b, v in finite.items() if len(v) < 2]
    if single:
        return (
            f"{head}. {_listing(single)} ran fewer than two seeds, so the spread "
            "between seeds is not measured, and whether the backends differ beyond it "
            "cannot be told."
        )
    means = {b: float(v.mean()) for b, v in finite.items()}
    pooled = float(np.sqrt(np.mean([v.var(ddof=1) for v in finite.values()])))
    span = max(means.values()) - min(means.values())
    text = (
        f"{head}. The backends' means lie {gap(span)} apart; between seeds on one "
        f"backend the standard deviation is {gap(pooled)} (pooled over the backends)"
    )
    pairs = _pairs(list(finite))
    apart = [(a, b) for a, b in pairs if spread.apart(finite[a], finite[b])]
    if not apart:
        return (
            f"{text}. No two backends' means differ by more than "
            f"{spread.BEYOND:g} standard errors of the difference: the spread between "
            "backends is within the spread between seeds."
        )
    # One more digit: a gap just beyond its noise must not read as equal to it.
    named = [
        f"{' and '.join(_names(a, b))} ({gap(abs(means[a] - means[b]), 3)} apart, "
        f"beyond {gap(spread.difference_noise(finite[a], finite[b]), 3)})"
        for a, b in apart
    ]
    text += (
        f". Beyond the spread between seeds ({spread.BEYOND:g} standard errors of the "
        f"difference of two means), the backends differ: {_listing(named)}"
    )
    if len(apart) < len(pairs):
        within = [" and ".join(_names(a, b)) for a, b in pairs if (a, b) not in apart]
        text += f"; {_listing(within)} are within it"
    return text + "."


def one_run_among_seeds(accuracy: float, values: Sequence[float]) -> str:
    """Where one training run's test accuracy (the model the reports dissect) lies
    among the same recipe's accuracies over seeds: within spread.BEYOND standard
    deviations of their mean (a typical draw), or outside."""
    mean, std = spread.mean_std(values)
    count = len(_finite(values))
    text = (
        f"The model the reports dissect, one training run, scores {percent(accuracy)} "
        f"on the test images; the same recipe over {_seed_count([count])} scores "
        f"{spread.with_spread(values)}"
    )
    if count < 2:
        return text + ": one seed has no spread to place the run in."
    distance = accuracy - mean
    if abs(distance) <= spread.BEYOND * std:
        return (
            text + f", and the run lies within {spread.BEYOND:g} standard deviations "
            "of that mean: a typical draw of the recipe."
        )
    return (
        text + f", and the run lies {100 * abs(distance):.2f} points "
        f"{'above' if distance > 0 else 'below'} that mean, more than "
        f"{spread.BEYOND:g} standard deviations: an unusual draw, which the reports' "
        "single-model numbers inherit."
    )


#: What each known momentum is.
MOMENTUM_NOTES = {"0.9": "the seed tutorial's", "0.99": "Keras's default"}


def recipe_label(recipe: str) -> str:
    """A reader's name for a recipe key of stage `seeds` ("moving_0_9")."""
    if recipe == "recomputed":
        return "population statistics recomputed after training"
    if recipe.startswith("moving_"):
        momentum = recipe.removeprefix("moving_").replace("_", ".")
        note = MOMENTUM_NOTES.get(momentum)
        return f"moving averages at momentum {momentum}" + (
            f" ({note})" if note else ""
        )
    return f"`{recipe}`"


def recipes(
    accuracies: PerSeed,
    default: str,
    goal: float = ACCURACY_GOAL,
    goal_seeds: int = GOAL_SEEDS,
) -> str:
    """Which choice of BN's inference statistics has the highest mean test accuracy
    over the seeds, and whether it is apart from each other (`spread.apart` on the
    per-seed accuracies); whether the default recipe (`train.statistics`) is that
    one or within its spread; and whether the default's mean reaches `goal` (over at
    least `goal_seeds` seeds)."""
    means = {r: spread.mean_std(v)[0] for r, v in accuracies.items()}
    best = max(means, key=lambda r: -np.inf if np.isnan(means[r]) else means[r])
    others = [r for r in accuracies if r != best]
    apart = [r for r in others if spread.apart(accuracies[best], accuracies[r])]
    within = [r for r in others if r not in apart]

    def listed(names: Sequence[str]) -> str:
        return " and of ".join(
            f"{recipe_label(r)}, {spread.with_spread(accuracies[r])}" for r in names
        )

    text = (
        f"The highest mean test accuracy is that of {recipe_label(best)}, "
        f"{spread.with_spread(accuracies[best])}"
    )
    if not others:
        text += "."
    elif not within:
        text += f", beyond the spread between seeds of {listed(apart)}."
    elif not apart:
        text += (
            f", but within the spread between seeds of {listed(within)}: over these "
            "seeds no choice of statistics is shown to beat it."
        )
    else:
        text += (
            f", beyond the spread between seeds of {listed(apart)}; but within that "
            f"of {listed(within)}."
        )
    if default == best:
        text += " It is the default recipe (`train.statistics`)."
    elif default in apart:
        text += (
            f" The default recipe, {recipe_label(default)}, falls below it beyond the "
            "spread: the better choice is not the default."
        )
    else:
        text += (
            f" The default recipe, {recipe_label(default)}, is within the spread "
            "between seeds of it."
        )
    mean = means[default]
    count = len(_finite(accuracies[default]))
    if mean >= goal:
        text += (
            f" The default's mean, {percent(mean)}, reaches the goal of "
            f"{percent(goal)}"
        )
    else:
        text += (
            f" The default's mean, {percent(mean)}, falls short of the goal of "
            f"{percent(goal)} by {_accuracy_gap(goal - mean)}"
        )
    if count < goal_seeds:
        text += f" (over {_seed_count([count])}; the goal asks for {goal_seeds})"
    return text + "."


def bn_buys(bn: Sequence[float], plain: Sequence[float]) -> str:
    """Figure 1's network with and without BN, its test accuracy after the last step
    over seeds: which is ahead beyond the spread between seeds, if either."""
    count = len(_finite(bn))
    text = (
        "What BN buys, in one line: in Ioffe & Szegedy's Figure 1 network the test "
        f"accuracy after the last step is {spread.with_spread(bn)} with BN against "
        f"{spread.with_spread(plain)} without, over {_seed_count([count])}"
    )
    if not spread.apart(bn, plain):
        return text + ": the two are within the spread between seeds."
    if spread.mean_std(bn)[0] > spread.mean_std(plain)[0]:
        return text + ": BN's lead is beyond the spread between seeds."
    return text + ": the network without BN is ahead, beyond the spread between seeds."
