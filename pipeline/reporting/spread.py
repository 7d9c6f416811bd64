"""Numbers over seeds: each experiment runs once per seed (`results["by_seed"]`), and
every number a report compares is a mean with its spread. Pure functions, numpy only.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.reporting.text import as_array, standard_error

#: How many standard errors of a difference of two means make it more than noise.
BEYOND = 2.0


def _finite(values: Iterable[float | None]) -> np.ndarray:
    """The finite ones of `values` (None counts as not finite)."""
    array = as_array(values)
    return array[np.isfinite(array)]


def seed_count(seeds: Sequence[int]) -> str:
    """How many seeds: "3 seeds", "1 seed"."""
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}"


def seeds_listed(seeds: Sequence[int]) -> str:
    """The seeds, counted and listed: "3 seeds (0, 1, 2)"."""
    return f"{seed_count(seeds)} ({', '.join(map(str, seeds))})"


def seed_words(seeds: Sequence[int]) -> str:
    """What a number "a ± b" over `seeds` is: "mean ± standard deviation over 3
    seeds (0, 1, 2)"."""
    return f"mean ± standard deviation over {seeds_listed(seeds)}"


def rule_words() -> str:
    """The rule `apart` applies, in words."""
    return (
        "a difference counts when the means are more than "
        f"{BEYOND:g} standard errors of their difference apart"
    )


def over_seeds(
    results: Mapping[str, Any], pick: Callable[[Mapping[str, Any]], float | None]
) -> np.ndarray:
    """`pick` applied to every seed's run, in the order of the seeds (None: NaN)."""
    return as_array(pick(run) for run in results["by_seed"])


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and standard deviation (n - 1) of the finite `values`; the deviation is 0
    for one value, and both are NaN for none."""
    finite = _finite(values)
    if len(finite) == 0:
        return float("nan"), float("nan")
    std = float(finite.std(ddof=1)) if len(finite) > 1 else 0.0
    return float(finite.mean()), std


def with_spread(values: Iterable[float]) -> str:
    """An accuracy over seeds as "98.71% ± 0.08" (mean, and standard deviation in
    percentage points), "n/a" if no value is finite."""
    values = _finite(values)
    if len(values) == 0:
        return "n/a"
    mean, std = mean_std(values)
    if len(values) == 1:
        return f"{100 * mean:.2f}% (one seed)"
    return f"{100 * mean:.2f}% ± {100 * std:.2f}"


def spread_number(
    values: Iterable[float], decimals: int = 3, scale: float = 1.0, unit: str = ""
) -> str:
    """Any number over seeds as "0.460 ± 0.021" (mean ± standard deviation; with
    `scale` 100 and `unit` "%": "46.0% ± 2.1"), "n/a" if no value is finite."""
    mean, std = mean_std(values)
    if not np.isfinite(mean):
        return "n/a"
    return f"{scale * mean:.{decimals}f}{unit} ± {scale * std:.{decimals}f}"


def spread_points(differences: Iterable[float], signed: bool = True) -> str:
    """Differences of accuracies over seeds in percentage points, "+1.2 ± 0.3
    points", "n/a" if none is finite."""
    mean, std = mean_std(differences)
    if not np.isfinite(mean):
        return "n/a"
    return f"{100 * mean:{'+' if signed else ''}.1f} ± {100 * std:.1f} points"


def difference_noise(a: Iterable[float], b: Iterable[float]) -> float:
    """BEYOND standard errors of the difference of the means of `a` and `b`."""
    a, b = _finite(a), _finite(b)
    variance = sum(mean_std(v)[1] ** 2 / len(v) for v in (a, b) if len(v) > 0)
    return BEYOND * float(np.sqrt(variance))


def measurement_noise(accuracy: float, images: int) -> float:
    """BEYOND standard errors of `accuracy` measured on `images` images: a gap
    below it is noise however many seeds agree, since every seed is evaluated on
    the same images."""
    return BEYOND * standard_error(accuracy, images)


def apart(a: Iterable[float], b: Iterable[float]) -> bool:
    """Whether the means of `a` and `b` differ by more than `difference_noise`;
    never with fewer than two finite values on a side."""
    a, b = _finite(a), _finite(b)
    if len(a) < 2 or len(b) < 2:  # one seed: no spread to tell noise from a gap
        return False
    gap = mean_std(a)[0] - mean_std(b)[0]
    return bool(abs(gap) > difference_noise(a, b))
