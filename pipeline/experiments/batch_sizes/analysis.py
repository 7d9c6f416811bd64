"""What the report of the experiment `batch_sizes` shows: its metrics, its plots
table and its sentences.

Each function reads `details`, the dict the experiment writes as its results (keys
"runs", "params", "test_images", ...; a value that was not finite is None), and
returns numbers or Markdown. Pure functions of that dict, numpy only, so the verdicts
can be tested without running an experiment, Keras or a notebook. What the paper
found is quoted from it, as constants.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.core.normalizations import LABELS
from pipeline.reporting.text import csv_columns, noise, percent, points

Details = Mapping[str, Any]

TITLE = "bnk: batch normalization and the batch size"
#: The normalizations whose accuracies the metrics file holds, by the short name its
#: keys give them (`bn_smallest_batch`): the long ones made its row of `dvc metrics
#: show` wider than a screen.
HEADLINE = {"batch_norm": "bn", "batch_renorm": "renorm", "group_norm": "gn"}

#: Wu & He (2018), Figure 1: ResNet-50 on ImageNet, top-1 validation error by images
#: per worker (their Table 2 lists the same numbers).
WU_HE_BN_ERROR = {32: 23.6, 16: 23.7, 8: 24.8, 4: 27.3, 2: 34.7}
WU_HE_GN_ERROR = {32: 24.1, 16: 24.2, 8: 24.0, 4: 24.2, 2: 24.1}
#: Moving averages whose initial values keep more weight than this are stale.
STALE = 0.01


def accuracy_by_batch_size(
    details: Details, normalization: str, key: str = "test_accuracy"
) -> dict[int, float]:
    """{batch size: accuracy `key`} of `normalization`'s runs, a None as NaN."""
    return {
        run["batch_size"]: np.nan if run[key] is None else run[key]
        for run in details["runs"]
        if run["normalization"] == normalization
    }


def climb(details: Details, normalization: str) -> tuple[int, int, float] | None:
    """(smallest batch size, batch size of the best accuracy, how much lower the
    accuracy at the smallest is than the best) for `normalization`, or None."""
    accuracy = accuracy_by_batch_size(details, normalization)
    if not accuracy or all(np.isnan(v) for v in accuracy.values()):
        return None
    smallest = min(accuracy)
    best = max(accuracy, key=lambda b: np.nan_to_num(accuracy[b], nan=-1))
    return smallest, best, accuracy[best] - np.nan_to_num(accuracy[smallest])


def wu_he_findings(details: Details) -> list[str]:
    """Wu & He's Figure 1 against ours: does BN lose accuracy at the smallest batches
    where GroupNorm does not?"""
    sizes = sorted({run["batch_size"] for run in details["runs"]})
    lines = [
        "**What Wu & He found.** ResNet-50 on ImageNet: BN's top-1 error rises "
        f"from {WU_HE_BN_ERROR[32]}% at 32 images per worker to "
        f"{WU_HE_BN_ERROR[2]}% at 2, while GroupNorm's stays between "
        f"{min(WU_HE_GN_ERROR.values())}% and {max(WU_HE_GN_ERROR.values())}%."
    ]
    measured = []
    for name in LABELS:
        found = climb(details, name)
        if found is None:
            continue
        smallest, best, drop = found
        accuracy = accuracy_by_batch_size(details, name)
        measured.append(
            f"{LABELS[name]} {percent(accuracy[smallest])} at batch {smallest} "
            f"(best {percent(accuracy[best])}, at {best})"
        )
    lines.append(
        f"**What we measured** (batch sizes {', '.join(map(str, sizes))}): "
        + "; ".join(measured)
        + "."
    )
    bn, gn = climb(details, "batch_norm"), climb(details, "group_norm")
    if bn is not None and gn is not None:
        bn_noise = noise(details, accuracy_by_batch_size(details, "batch_norm")[bn[1]])
        gn_noise = noise(details, accuracy_by_batch_size(details, "group_norm")[gn[1]])
        bn_climbs = bn[2] > bn_noise
        gn_flat = gn[2] <= gn_noise
        said = (
            f"at batch {bn[0]} BN is {100 * bn[2]:.1f} points below its best, "
            f"GroupNorm {100 * gn[2]:.1f} points below its own (twice the standard "
            f"error: about {100 * max(bn_noise, gn_noise):.1f} points)"
        )
        if bn_climbs and gn_flat:
            verdict = f"As in the paper: {said}."
        elif bn_climbs:
            verdict = (
                f"Partly as in the paper: BN loses accuracy at the smallest batch, "
                f"but so does GroupNorm here: {said}."
            )
        elif gn_flat:
            verdict = (
                f"Unlike the paper, BN does not lose accuracy beyond the noise at "
                f"the smallest batch here: {said}."
            )
        else:
            verdict = (
                f"Unlike the paper, GroupNorm loses accuracy at the smallest batch "
                f"and BN stays within the noise: {said}."
            )
        lines.append(verdict)
    return lines


def gap_findings(details: Details) -> list[str]:
    """The train/inference gap of the BN family: accuracy with the statistics of
    each test batch minus accuracy with the moving statistics, by batch size."""
    lines = []
    for name in ("batch_norm", "ghost_batch_norm", "batch_renorm"):
        moving = accuracy_by_batch_size(details, name)
        if not moving:
            continue
        batch = accuracy_by_batch_size(details, name, "batch_statistics_accuracy")
        gaps = {size: batch[size] - moving[size] for size in moving}
        sizes = sorted(gaps)
        widest = max(sizes, key=lambda size: np.nan_to_num(abs(gaps[size]), nan=-1))
        listed = ", ".join(f"{points(gaps[size])} at {size}" for size in sizes)
        text = (
            f"- {LABELS[name]}: batch statistics minus moving statistics: {listed}. "
        )
        if abs(np.nan_to_num(gaps[widest])) <= noise(details, moving[widest]):
            text += "Within the noise at every batch size."
        elif gaps[widest] > 0:
            text += (
                f"The moving statistics cost most at batch {widest}: the network "
                "does better on the batch statistics it trained with."
            )
            steps = next(
                run["steps"]
                for run in details["runs"]
                if run["normalization"] == name and run["batch_size"] == widest
            )
            remembered = details["momentum"] ** steps
            if remembered > STALE:
                text += (
                    f" After {steps:,} steps, moving averages of momentum "
                    f"{details['momentum']:g} still give their initial values a "
                    f"weight of {remembered:.0%} ({details['momentum']:g}^{steps}): "
                    "there they are stale rather than wrong."
                )
        else:
            text += (
                f"The batch statistics cost most at batch {widest}: normalizing by "
                "so few test images is noisier than the moving averages."
            )
        text += population_sentence(details, name, moving)
        lines.append(text)
    return lines


def population_sentence(details: Details, name: str, moving: dict[int, float]) -> str:
    """How much recomputing the population statistics after training changes the
    accuracy of `name` (whose moving-statistics accuracies are `moving`): the share
    of its small-batch loss that is the moving averages' fault. "" if not measured."""
    population = accuracy_by_batch_size(details, name, "population_accuracy")
    if not population or all(np.isnan(v) for v in population.values()):
        return ""
    sizes = sorted(population)
    listed = ", ".join(
        f"{points(population[size] - moving[size])} at {size}" for size in sizes
    )
    smallest = sizes[0]
    best = max(moving, key=lambda b: np.nan_to_num(moving[b], nan=-1))
    lost = moving[best] - moving[smallest]
    regained = population[smallest] - moving[smallest]
    text = (
        f" With population statistics recomputed after training "
        f"(`bnk.recompute_statistics`) instead of the moving averages: {listed}."
    )
    margin = noise(details, moving[best])
    if lost <= margin:
        return text + (
            f" At batch {smallest} there is no loss beyond the noise for them to "
            "explain."
        )
    if regained > margin:
        return text + (
            f" Of the {100 * lost:.1f} points lost at batch {smallest} against batch "
            f"{best}, the recomputed statistics win back "
            f"{100 * min(regained, lost):.1f}: that much is the moving averages' "
            "fault, the rest the training on noisy batch statistics."
        )
    return text + (
        f" The {100 * lost:.1f} points lost at batch {smallest} against batch {best} "
        "are not the moving averages' fault: recomputed statistics do not win them "
        "back."
    )


def batch_size_caveats(details: Details) -> str:
    """One seed, short training, and fewer steps for larger batches."""
    steps = {run["batch_size"]: run["steps"] for run in details["runs"]}
    sizes = sorted(steps)
    return (
        f"Caveats: seed {details['params']['seed']}, one run per setting; "
        f"{details['training_images']:,} training images for "
        f"{details['params']['epochs']} pass(es), so a fixed number of passes gives "
        f"{steps[sizes[0]]:,} steps at batch {sizes[0]} but {steps[sizes[-1]]:,} at "
        f"{sizes[-1]}: the largest batches are undertrained, whatever the "
        f"normalization. Differences below about twice the standard error on "
        f"{details['test_images']:,} test images (≈"
        f"{100 * noise(details, 0.9):.1f} points at 90%) are noise."
    )


def metrics(details: Details) -> dict[str, float | None]:
    """Test accuracy at the smallest and the largest batch size of BN, Batch Renorm
    and GroupNorm (those that ran): what `dvc metrics show` lists."""
    numbers = {}
    for name, short in HEADLINE.items():
        accuracy = {
            run["batch_size"]: run["test_accuracy"]
            for run in details["runs"]
            if run["normalization"] == name
        }
        if accuracy:
            numbers[f"{short}_smallest_batch"] = accuracy[min(accuracy)]
            numbers[f"{short}_largest_batch"] = accuracy[max(accuracy)]
    return numbers


def plots(details: Details) -> str:
    """CSV: a row per batch size, the test accuracy of each normalization in a column
    of its name (every known one, empty where it did not run or diverged), the
    columns dvc.yaml's plot names."""
    runs = details["runs"]
    accuracy = {(r["normalization"], r["batch_size"]): r["test_accuracy"] for r in runs}
    sizes = sorted({r["batch_size"] for r in runs})
    return csv_columns(
        {
            "batch_size": sizes,
            **{name: [accuracy.get((name, size)) for size in sizes] for name in LABELS},
        }
    )
