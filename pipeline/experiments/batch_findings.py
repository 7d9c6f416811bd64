"""The sentences of the reports of the stages `batch_sizes` and `non_iid`.

Each function reads `details`, the dict the stage writes as its results (keys
"runs", "params", "test_images", ...; a value that was not finite is None), and
returns Markdown. Pure functions of that dict, numpy only, so the verdicts can be
tested without running an experiment, Keras or a notebook. What the papers found is
quoted from them, as constants.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.experiments.findings import percent, standard_error

Details = Mapping[str, Any]

LABELS = {
    "batch_norm": "BN",
    "ghost_batch_norm": "ghost BN",
    "batch_renorm": "Batch Renorm",
    "group_norm": "GroupNorm",
    "layer_norm": "LayerNorm",
    "none": "no normalization",
}
#: Wu & He (2018), Figure 1: ResNet-50 on ImageNet, top-1 validation error by images
#: per worker (their Table 2 lists the same numbers).
WU_HE_BN_ERROR = {32: 23.6, 16: 23.7, 8: 24.8, 4: 27.3, 2: 34.7}
WU_HE_GN_ERROR = {32: 24.1, 16: 24.2, 8: 24.0, 4: 24.2, 2: 24.1}
#: Ioffe (2017), section 4.2: Inception-v3 on ImageNet, batches of 32 made of 16
#: labels with 2 images each; top-1 validation accuracy.
IOFFE_IID, IOFFE_BN_NON_IID, IOFFE_RENORM_NON_IID = 0.783, 0.670, 0.765
#: Moving averages whose initial values keep more weight than this are stale.
STALE = 0.01
#: "Most" of the i.i.d. accuracy: more than this share of BN's loss recovered.
MOST = 0.5


def points(difference: float | None) -> str:
    """A difference of two accuracies in percentage points ("+1.2 points")."""
    if difference is None or not np.isfinite(difference):
        return "n/a"
    return f"{100 * difference:+.1f} points"


def noise(details: Details, accuracy: float) -> float:
    """Twice the standard error of `accuracy` on the report's test images."""
    return 2 * standard_error(accuracy, details["test_images"])


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


def run_of(details: Details, normalization: str, sampling: str) -> Mapping | None:
    """The non_iid run of `normalization` on `sampling` batches, or None."""
    for run in details["runs"]:
        if run["normalization"] == normalization and run["sampling"] == sampling:
            return run
    return None


def recovered_share(iid: float, bn: float, renorm: float) -> float:
    """The share of BN's non-i.i.d. loss (`iid` - `bn`) that Batch Renorm wins back
    (`renorm` - `bn`); NaN if BN lost nothing."""
    lost = iid - bn
    return (renorm - bn) / lost if lost > 0 else float("nan")


def non_iid_findings(details: Details) -> list[str]:
    """Ioffe's section 4.2 against ours: BN's accuracy after non-i.i.d. training,
    Batch Renorm's, and the i.i.d. baseline."""
    p = details["params"]
    lines = [
        "**What Ioffe found.** Inception-v3 on ImageNet, batches of 32 made of 16 "
        f"labels with 2 images each: BN reaches {percent(IOFFE_BN_NON_IID)} top-1 "
        f"accuracy against {percent(IOFFE_IID)} with i.i.d. batches; Batch Renorm "
        f"on the same non-i.i.d. batches {percent(IOFFE_RENORM_NON_IID)}, most of "
        "the gap recovered. MNIST has only 10 classes, so our batches of "
        f"{p['batch_size']} images hold {p['classes_per_batch']} classes each, a "
        "harsher skew than the paper's. The paper also relaxes Batch Renorm's "
        "clipping gradually (r from 1 to 3, d from 0 to 5) over a long run; here "
        "the bounds of params.yaml hold from the first step, as Keras's layer takes "
        "them."
    ]
    measured = []
    for name in LABELS:
        iid, skewed = run_of(details, name, "iid"), run_of(details, name, "non_iid")
        if iid is None or skewed is None:
            continue
        measured.append(
            f"{LABELS[name]} {percent(iid['test_accuracy'])} after i.i.d. training, "
            f"{percent(skewed['test_accuracy'])} after non-i.i.d. "
            f"({points(_difference(skewed, iid))})"
        )
    lines.append("**What we measured** (test accuracy): " + "; ".join(measured) + ".")
    bn_iid, bn = run_of(details, "batch_norm", "iid"), run_of(
        details, "batch_norm", "non_iid"
    )
    renorm = run_of(details, "batch_renorm", "non_iid")
    if bn_iid and bn and renorm and None not in (
        bn_iid["test_accuracy"], bn["test_accuracy"], renorm["test_accuracy"]
    ):
        share = recovered_share(
            bn_iid["test_accuracy"], bn["test_accuracy"], renorm["test_accuracy"]
        )
        margin = noise(details, bn_iid["test_accuracy"])
        lost = bn_iid["test_accuracy"] - bn["test_accuracy"]
        if lost <= margin:
            lines.append(
                "Unlike the paper, BN loses no accuracy beyond the noise "
                f"(≈{100 * margin:.1f} points) on non-i.i.d. batches here, so "
                "there is nothing for Batch Renorm to recover."
            )
        elif share > MOST:
            lines.append(
                f"As in the paper: BN loses {100 * lost:.1f} points and Batch Renorm "
                f"wins back {100 * share:.0f}% of them."
            )
        elif share <= 0:
            lines.append(
                f"Unlike the paper, Batch Renorm wins back none of the "
                f"{100 * lost:.1f} points BN loses on non-i.i.d. batches (it ends "
                f"{points(renorm['test_accuracy'] - bn['test_accuracy'])} from BN)."
            )
        else:
            lines.append(
                f"Unlike the paper, Batch Renorm wins back only {100 * share:.0f}% "
                f"of the {100 * lost:.1f} points BN loses on non-i.i.d. batches."
            )
    gn_iid, gn = run_of(details, "group_norm", "iid"), run_of(
        details, "group_norm", "non_iid"
    )
    gn_lost, bn_lost = _difference(gn, gn_iid), _difference(bn, bn_iid)
    if None not in (gn_lost, bn_lost):
        text = (
            "GroupNorm has no batch statistics, so what it loses "
            f"({points(gn_lost)}) is the cost of training on few-class batches "
            "itself (each step's gradient sees only those classes). "
        )
        if -bn_lost > -gn_lost + noise(details, bn_iid["test_accuracy"]):
            text += (
                f"BN loses {100 * (gn_lost - bn_lost):.1f} points more: that part "
                "is what its batch statistics add."
            )
        else:
            text += (
                f"BN loses no more than that ({points(bn_lost)}): on these batches "
                "the loss is the few-class training, not BN's statistics."
            )
        lines.append(text)
    if bn:
        lines.append(
            "BN after non-i.i.d. training, tested with the statistics of each test "
            "batch: "
            f"{percent(bn['batch_statistics_accuracy'])} on shuffled test batches, "
            f"{percent(bn['few_class_batch_statistics_accuracy'])} on test batches "
            f"of {p['classes_per_batch']} classes like its training batches, against "
            f"{percent(bn['test_accuracy'])} with its moving statistics."
        )
    remembered = p["normalizers"]["renorm_momentum"] ** details["steps"]
    lines.append(
        f"Caveats: seed {p['seed']}, one run per setting; {details['steps']:,} steps "
        f"on {details['training_images']:,} training images, after which Batch "
        f"Renorm's own moving averages (momentum "
        f"{p['normalizers']['renorm_momentum']:g}) still give their initial values "
        f"a weight of {remembered:.0%}; twice the standard error on "
        f"{details['test_images']:,} test images is ≈"
        f"{100 * noise(details, 0.9):.1f} points at 90%."
    )
    return lines


def _difference(run: Mapping | None, baseline: Mapping | None) -> float | None:
    """`run`'s test accuracy minus `baseline`'s; None if either is missing."""
    if run is None or baseline is None:
        return None
    if run["test_accuracy"] is None or baseline["test_accuracy"] is None:
        return None
    return run["test_accuracy"] - baseline["test_accuracy"]
