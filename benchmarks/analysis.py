"""What the benchmark's measurements say: summaries, matmul fractions, targets.

Configurations are named `task/backend/label/mode` (`train/jax/bnk.BatchNorm/xla`,
`infer/torch/folded/eager`) or `peak/<library>-matmul`. Ratios between two
configurations are paired round by round: the rates measured in the same round
are divided, and those ratios summarized, so that a slow round slows both.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pipeline.backends import BACKENDS

PLAIN_PYTORCH = "train/torch-native/BatchNorm2d/eager"


class Target(NamedTuple):
    """A ratio of throughputs that should reach `goal` (median over the rounds)."""

    goal: float
    description: str


TARGETS: dict[str, Target] = {
    "bnk_vs_keras_bn": Target(
        1.0,
        "The bnk.BatchNorm training step is at least as fast as "
        "keras.layers.BatchNormalization, on every backend in its faster compile "
        "mode (bnk / keras >= 1)",
    ),
    "keras_vs_plain_pytorch": Target(
        1.0,
        "The fastest Keras backend (bnk.CNN + bnk.BatchNorm) trains at least as fast "
        "as the plain PyTorch loop (ratio >= 1)",
    ),
    "folding_speedup": Target(
        1.3,
        "Folded inference is at least 1.3x unfolded, on every backend in its faster "
        "compile mode (folded / unfolded >= 1.3)",
    ),
}


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and relative spread ((max - min) / median) of `values`."""
    median = statistics.median(values)
    return {
        "median": median,
        "min": min(values),
        "max": max(values),
        "spread": (max(values) - min(values)) / median if median else None,
        "values": values,
    }


def paired(
    rates: Mapping[str, Sequence[float]], numerator: str, denominator: str
) -> dict[str, Any]:
    """Round-by-round ratios of two configurations' rates, summarized."""
    # Every configuration is measured once per round, so the lists pair up.
    pairs = zip(rates[numerator], rates[denominator], strict=True)
    return summarize([a / b for a, b in pairs])


def analyze(
    rates: Mapping[str, Sequence[float]],
    kinds: Mapping[str, Mapping[str, str]],
    workers: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Summaries, fractions of the matmul limit, and the targets' verdicts.

    Args:
        rates: configuration name -> its rate (images/s or FLOP/s) in each
            round, in round order.
        kinds: configuration name -> `{"device": ..., "unit": ...}`.
        workers: worker name -> what it reports about itself; a Keras worker
            reports bnk.CNN's `flop_forward_per_image` and
            `flop_train_per_image`.

    Returns:
        A dict: `flop_per_image` (`(forward, training)`, or None without a
        Keras worker); `peak_flop_per_s` (device -> best median matmul rate
        on it); `results` (configuration name -> `summarize` of its rates,
        with its `device`, `unit` and, where a peak and FLOP count are known,
        `fraction_of_peak`); `targets` (target name -> one row per backend
        compared: `backend`, `ratio` (`paired`), `goal`, whether it is
        `counted` in the verdict, and whether it `pass`es); `verdicts`
        (target name -> True, False, or None when no row counts).
    """
    results = {name: summarize(values) for name, values in rates.items()}
    peaks = {}
    for name, summary in results.items():
        if name.startswith("peak/"):
            device = kinds[name]["device"]
            peaks[device] = max(peaks.get(device, 0.0), summary["median"])
    flop = next(
        (
            (info["flop_forward_per_image"], info["flop_train_per_image"])
            for info in workers.values()
            if "flop_train_per_image" in info
        ),
        None,
    )
    for name, summary in results.items():
        device = kinds[name]["device"]
        if flop and device in peaks and not name.startswith("peak/"):
            per_image = flop[1] if name.startswith("train/") else flop[0]
            summary["fraction_of_peak"] = summary["median"] * per_image / peaks[device]
        summary.update(kinds[name])

    # Where a backend ran in two compile modes (torch: eager, torch.compile;
    # tensorflow: graph, xla), the targets count the mode in which bnk.CNN as
    # it comes (bnk.BatchNorm, unfolded) is faster, as a user would keep that
    # one; the other mode is shown.
    targets = {
        "bnk_vs_keras_bn": _per_backend_ratios(
            rates,
            "bnk_vs_keras_bn",
            "train/{}/bnk.BatchNorm/{}",
            "train/{}/keras.BatchNormalization/{}",
            _fastest_modes(results, "train", "bnk.BatchNorm"),
        ),
        "keras_vs_plain_pytorch": _fastest_keras_vs_plain_pytorch(rates, results),
        "folding_speedup": _per_backend_ratios(
            rates,
            "folding_speedup",
            "infer/{}/folded/{}",
            "infer/{}/unfolded/{}",
            _fastest_modes(results, "infer", "unfolded"),
        ),
    }
    verdicts = {}
    for name, rows in targets.items():
        for row in rows:
            row["pass"] = row["ratio"]["median"] >= row["goal"]
        counted = [row["pass"] for row in rows if row["counted"]]
        verdicts[name] = all(counted) if counted else None
    return {
        "flop_per_image": flop,
        "peak_flop_per_s": peaks,
        "results": results,
        "targets": targets,
        "verdicts": verdicts,
    }


def _per_backend_ratios(rates, target, numerator, denominator, counted_modes):
    """The rows of `target`: `numerator` over `denominator`, per backend and mode.

    Args:
        rates: as for `analyze`.
        target: a name in `TARGETS`.
        numerator: configuration name pattern, `{}` for the backend and the
            mode: "train/{}/bnk.BatchNorm/{}".
        denominator: the same for the configuration divided by.
        counted_modes: backend -> the one mode whose row counts in the verdict.
    """
    rows = []
    for name in rates:
        parts = name.split("/")
        if len(parts) != 4:
            continue
        _, backend, _, mode = parts
        other = denominator.format(backend, mode)
        if name == numerator.format(backend, mode) and other in rates:
            rows.append(
                {
                    "backend": f"{backend} ({mode})",
                    "ratio": paired(rates, name, other),
                    "goal": TARGETS[target].goal,
                    "counted": counted_modes[backend] == mode,
                }
            )
    return rows


def _fastest_keras_vs_plain_pytorch(rates, results):
    """The fastest Keras backend's bnk.CNN training over the plain PyTorch loop."""
    keras_bnk = [
        name
        for name in rates
        if name.startswith("train/")
        and "/bnk.BatchNorm/" in name
        and name.split("/")[1] in BACKENDS
    ]
    if PLAIN_PYTORCH not in rates or not keras_bnk:
        return []
    best = max(keras_bnk, key=lambda name: results[name]["median"])
    _, backend, _, mode = best.split("/")
    return [
        {
            "backend": f"{backend} ({mode}) vs plain PyTorch",
            "ratio": paired(rates, best, PLAIN_PYTORCH),
            "goal": TARGETS["keras_vs_plain_pytorch"].goal,
            "counted": True,
        }
    ]


def _fastest_modes(results, task, label):
    """backend -> the compile mode in which `task/backend/label` is fastest."""
    best = {}
    for name, summary in results.items():
        parts = name.split("/")
        if len(parts) == 4 and parts[0] == task and parts[2] == label:
            backend = parts[1]
            fastest = best.get(backend)
            if fastest is None or summary["median"] > results[fastest]["median"]:
                best[backend] = name
    return {backend: name.split("/")[3] for backend, name in best.items()}
