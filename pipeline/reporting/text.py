"""Number formatting and small statistics the experiments' analyses share: pure
functions, numpy only, so every verdict built on them can be tested without running
an experiment, Keras or a notebook."""

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

#: MNIST's digits.
N_CLASSES = 10
#: Moving averages whose initial values keep more weight than this are stale.
STALE = 0.01


def as_array(values: Iterable[float | None]) -> np.ndarray:
    """A float array of `values`, None (a non-finite value in the JSON) as NaN."""
    return np.array([np.nan if v is None else v for v in values], float)


def percent(x: float | None) -> str:
    """A fraction as a percentage with two decimals ("98.34%"), "n/a" if not finite."""
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.2f}%"


def decimal(x: float | None) -> str:
    """A number with three decimals ("0.042"), "n/a" if not finite."""
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3f}"


def rate_list(rates: Iterable[float], empty: str = "") -> str:
    """Learning rates as "0.0005, 0.002"; `empty` when there are none."""
    return ", ".join(f"{r:g}" for r in rates) or empty


def standard_error(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on `n` images (never exactly 0)."""
    return float(np.sqrt(max(accuracy * (1 - accuracy), 1e-12) / n))


def one_accuracy_error(accuracy: float, images: int, what: str) -> str:
    """A sentence: the standard error of one accuracy of `accuracy` (what it is:
    `what`) measured on `images` test images; "" if `accuracy` is not finite."""
    if not np.isfinite(accuracy):
        return ""
    return (
        f"One accuracy of {100 * accuracy:.1f}% ({what}) on {images:,} test images has "
        f"a standard error of ≈{100 * standard_error(accuracy, images):.2f} points."
    )


def stale_weight(momentum: float, steps: int) -> float | None:
    """The weight moving averages of `momentum` still give their initial values
    after `steps` updates, `momentum ** steps`, if it is more than STALE (they are
    stale); None if not."""
    remembered = momentum**steps
    return remembered if remembered > STALE else None


def joined(words: Iterable[str]) -> str:
    """Words as "a and b", "a, b and c"."""
    words = list(words)
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def family(names: Iterable[str], batch_statistics: Collection[str]) -> list[str]:
    """The normalizations of `names` that normalize with batch statistics in
    training (`batch_statistics`: pipeline.core.normalizations.BATCH_STATISTICS),
    the BN family, in the order of `names`."""
    return [name for name in names if name in batch_statistics]


def shared_count(results: Mapping[str, Any], key: str) -> str:
    """A count every seed's run records (`results["by_seed"]`: `training_images`,
    `steps`, ...), as "60,000", or as a range where the seeds differ."""
    counts = sorted({seed[key] for seed in results["by_seed"]})
    return f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}–{counts[-1]:,}"


def points(difference: float | None) -> str:
    """A difference of two accuracies in percentage points ("+1.2 points")."""
    if difference is None or not np.isfinite(difference):
        return "n/a"
    return f"{100 * difference:+.1f} points"


def csv_columns(columns: Mapping[str, Sequence[float | int | None]]) -> str:
    """CSV text of equally long `columns`, by name: a plots file `dvc plots show` draws
    (a missing or non-finite value is an empty cell)."""

    def cell(value: float | int | None) -> str:
        if value is None or not np.isfinite(value):
            return ""
        return str(value) if isinstance(value, int) else f"{value:.6g}"

    rows = [",".join(columns)]
    for values in zip(*columns.values(), strict=True):
        rows.append(",".join(map(cell, values)))
    return "\n".join(rows) + "\n"
