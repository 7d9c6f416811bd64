"""What the report of the experiment `non_iid` shows: its metrics and its sentences.

Each function reads `details`, the dict the experiment writes as its results (keys
"runs", "params", "test_images", ...; a value that was not finite is None), and
returns numbers or Markdown. Pure functions of that dict, numpy only, so the verdicts
can be tested without running an experiment, Keras or a notebook. What the paper
found is quoted from it, as constants.
"""

from collections.abc import Mapping
from typing import Any

from pipeline.core.normalizations import LABELS
from pipeline.reporting.text import csv_columns, noise, percent, points

Details = Mapping[str, Any]

TITLE = "bnk: BN on non-i.i.d. batches"
#: Ioffe (2017), section 4.2: Inception-v3 on ImageNet, batches of 32 made of 16
#: labels with 2 images each; top-1 validation accuracy.
IOFFE_IID, IOFFE_BN_NON_IID, IOFFE_RENORM_NON_IID = 0.783, 0.670, 0.765
#: "Most" of the i.i.d. accuracy: more than this share of BN's loss recovered.
MOST = 0.5


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


def metrics(details: Details) -> dict[str, float | None]:
    """`<normalization>_<sampling>`: the test accuracy (inference mode) of each
    run, the first three normalizations only, so `dvc metrics show` fits a screen."""
    runs = details["runs"]
    shown = list(dict.fromkeys(run["normalization"] for run in runs))[:3]
    return {
        f"{run['normalization']}_{run['sampling']}": run["test_accuracy"]
        for run in runs
        if run["normalization"] in shown
    }


def plots(details: Details) -> str:
    """CSV: a row per normalization (numbered in the order the params list them),
    its test accuracy after i.i.d. and after non-i.i.d. training (`dvc plots
    show`)."""
    names = list(dict.fromkeys(run["normalization"] for run in details["runs"]))
    return csv_columns(
        {
            "normalization": list(range(len(names))),
            **{
                sampling: [
                    (run_of(details, name, sampling) or {}).get("test_accuracy")
                    for name in names
                ]
                for sampling in ("iid", "non_iid")
            },
        }
    )
