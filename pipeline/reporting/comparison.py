"""The sentences of the index's comparison of the backends: where their losses part,
what one training step already changes, and how far apart they end.

Each function reads the `compare@<backend>` results (`losses`, one per step, and
`weights_after_first_step`, by weight name) and returns Markdown. Pure functions,
numpy only, so every verdict can be tested without training or a notebook.
"""

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.core.backends import BACKEND_NAMES

#: Two backends' losses are together while their relative gap stays below this.
TOGETHER = 1e-5
#: A weight differs between two backends after step 1 if some entry differs by more.
WEIGHT_TOLERANCE = 1e-6
#: The steps at the end over which the typical gap is taken.
LATE_STEPS = 100
#: The relative gap at which two trajectories count as clearly apart.
APART = 0.01

Losses = Mapping[str, Sequence[float]]
Weights = Mapping[str, Mapping[str, Sequence[float]]]


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
