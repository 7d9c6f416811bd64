"""What the report of the experiment `non_iid` shows: its metrics, its plots table,
its figures' numbers and its sentences.

Each function reads `results`, the experiment's results file: its "params", its
"seeds" and "by_seed", one entry per seed holding what run.py's `run()` returned for
that seed ("runs", "steps", "training_images", "test_images",
"few_class_test_images"; a value that was not finite is None). Every number the
report compares is a mean over the seeds with its standard deviation, and every
verdict is chosen from them (`pipeline.reporting.spread.apart`). Pure functions of
that dict, numpy only, so the verdicts can be tested without running an experiment,
Keras or a notebook. What the paper found is quoted from it, as constants.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.core.normalizations import BATCH_STATISTICS, LABELS
from pipeline.reporting.spread import (
    apart,
    mean_std,
    over_seeds,
    rule_words,
    seed_words,
    spread_number,
    spread_points,
    with_spread,
)
from pipeline.reporting.text import (
    csv_columns,
    family,
    joined,
    one_accuracy_error,
    percent,
    shared_count,
    stale_weight,
)

Results = Mapping[str, Any]

TITLE = "bnk: BN on non-i.i.d. batches"
#: Ioffe (2017), section 4.2: Inception-v3 on ImageNet, batches of 32 made of 16
#: labels with 2 images each; top-1 validation accuracy.
IOFFE_IID, IOFFE_BN_NON_IID, IOFFE_RENORM_NON_IID = 0.783, 0.670, 0.765
#: "Most" of the i.i.d. accuracy: more than this share of BN's loss recovered.
MOST = 0.5
#: The normalizations the metrics file may hold, by the short name its keys give
#: them (`renorm_non_iid`): the long ones made its row of `dvc metrics show` wider
#: than a screen.
HEADLINE = {"batch_norm": "bn", "batch_renorm": "renorm", "group_norm": "gn"}
SAMPLINGS = {"iid": "i.i.d.", "non_iid": "non-i.i.d."}
#: The BN family's accuracies after non-i.i.d. training, by what they normalize with.
STATISTICS = (
    "test_accuracy",
    "batch_statistics_accuracy",
    "few_class_batch_statistics_accuracy",
)


# What ran


def normalizations(results: Results) -> list[str]:
    """The normalizations the params run, in the order they list them."""
    return [name for name in results["params"]["normalizations"] if name in LABELS]


def run_of(
    seed: Mapping[str, Any], normalization: str, sampling: str
) -> Mapping[str, Any] | None:
    """The run of one seed of `normalization` on `sampling` batches, or None."""
    for run in seed["runs"]:
        if run["normalization"] == normalization and run["sampling"] == sampling:
            return run
    return None


def values(
    results: Results, normalization: str, sampling: str, key: str = "test_accuracy"
) -> np.ndarray:
    """`key` of `normalization`'s run on `sampling` batches, one value per seed (NaN
    where it did not run or was not finite)."""
    return over_seeds(
        results, lambda seed: (run_of(seed, normalization, sampling) or {}).get(key)
    )


def ran(results: Results, normalization: str, sampling: str = "iid") -> bool:
    """Whether `normalization` has a finite test accuracy on `sampling` batches."""
    return bool(np.isfinite(values(results, normalization, sampling)).any())


def baseline(results: Results) -> np.ndarray:
    """BN's test accuracy after training on i.i.d. batches, per seed."""
    return values(results, "batch_norm", "iid")


def bars(
    results: Results, names: Sequence[str], sampling: str, key: str = "test_accuracy"
) -> tuple[np.ndarray, np.ndarray]:
    """(means over the seeds, standard deviations) of `key` for `names` on
    `sampling` batches: one series of bars."""
    spread = [mean_std(values(results, name, sampling, key)) for name in names]
    return np.array([m for m, _ in spread]), np.array([s for _, s in spread])


# The setup, the table


def setup_text(results: Results) -> str:
    """The environment and the setup of the runs, from the params (only the
    normalizations they run)."""
    p = results["params"]
    normalizers = p["normalizers"]
    names = normalizations(results)
    text = (
        f"Backend **{results['backend']}** ({results['device']}), Keras "
        f"{results['keras_version']}, {results['backend']} "
        f"{results['backend_version']}; the whole experiment took "
        f"{results['wall_seconds'] / 60:.1f} minutes for "
        f"{len(results['seeds'])} seed(s).\n\n"
        f"**Setup.** `bnk.CNN(normalization=...)` with "
        f"{joined(LABELS[n] for n in names)}, Adam at "
        f"{p['learning_rate']:g}, batches of {p['batch_size']}, "
        f"{shared_count(results, 'steps')} steps on "
        f"{shared_count(results, 'training_images')} training images; either shuffled "
        "(i.i.d.) batches, or batches of "
        f"{p['classes_per_batch']} classes with "
        f"{p['batch_size'] // p['classes_per_batch']} images of each "
        "(`pipeline.core.batches.FewClassBatches`: each pass cuts every class into "
        "such shares and joins shares of different classes). Both start from the "
        "same weights, those of the seed; each seed "
        f"({', '.join(map(str, results['seeds']))}) has its own weights and order. "
        f"Tested on {shared_count(results, 'test_images')} test images in inference "
        "mode. The baseline is BN on shuffled batches: "
        f"{with_spread(baseline(results))} ({seed_words(results['seeds'])})."
    )
    details = []
    bn_family = family(names, BATCH_STATISTICS)
    if bn_family:
        details.append(
            f"The BN family ({joined(LABELS[n] for n in bn_family)}) is also tested "
            f"with the statistics of each test batch of {p['batch_size']}, shuffled "
            f"or made of {p['classes_per_batch']} classes as in training "
            f"({shared_count(results, 'few_class_test_images')} test images fill such "
            "batches)."
        )
    if "ghost_batch_norm" in names:
        details.append(
            f"Ghost BN normalizes sub-batches of at most "
            f"{normalizers['ghost_batch_size']} examples."
        )
    if "batch_renorm" in names:
        clipping = normalizers["renorm_clipping"]
        details.append(
            f"Batch Renorm clips r to [{clipping['rmin']:.3g}, {clipping['rmax']:g}] "
            f"and d to ±{clipping['dmax']:g} from the first step, with renorm "
            f"momentum {normalizers['renorm_momentum']:g}."
        )
    if "group_norm" in names:
        details.append(f"GroupNorm uses {normalizers['groups']} groups.")
    if "layer_norm" in names:
        details.append(
            "LayerNorm normalizes each example over height, width and channels."
        )
    return " ".join([text, *details])


def runs_table(results: Results) -> str:
    """Markdown: a row per normalization and sampling, each number as mean ±
    standard deviation over the seeds."""
    rows = [
        "| normalization | trained on | test accuracy | shuffled test batches "
        "| few-class test batches | final training loss | seconds |",
        "|:---|:---|---:|---:|---:|---:|---:|",
    ]
    for name in normalizations(results):
        for sampling, label in SAMPLINGS.items():
            loss = over_seeds(
                results,
                lambda seed, s=sampling, n=name: (run_of(seed, n, s) or {}).get(
                    "training_loss", [None]
                )[-1],
            )
            loss_mean, loss_std = mean_std(loss)
            loss_text = (
                f"{loss_mean:.3f} ± {loss_std:.3f}" if np.isfinite(loss_mean) else "n/a"
            )
            seconds = mean_std(values(results, name, sampling, "wall_seconds"))[0]
            rows.append(
                f"| {LABELS[name]} | {label} "
                + "".join(
                    f"| {with_spread(values(results, name, sampling, key))} "
                    for key in STATISTICS
                )
                + f"| {loss_text} | {seconds:.0f} |"
            )
    return "\n".join(rows)


# Verdicts


def recovered_share(iid: float, bn: float, renorm: float) -> float:
    """The share of BN's non-i.i.d. loss (`iid` - `bn`) that Batch Renorm wins back
    (`renorm` - `bn`); NaN if BN lost nothing."""
    lost = iid - bn
    return (renorm - bn) / lost if lost > 0 else float("nan")


def measured_line(results: Results) -> str:
    """Each normalization's accuracy after i.i.d. and after non-i.i.d. training."""
    measured = []
    for name in normalizations(results):
        iid, skewed = values(results, name, "iid"), values(results, name, "non_iid")
        if not (np.isfinite(iid).any() and np.isfinite(skewed).any()):
            continue
        measured.append(
            f"{LABELS[name]} {with_spread(iid)} after i.i.d. training, "
            f"{with_spread(skewed)} after non-i.i.d. ({spread_points(skewed - iid)})"
        )
    return (
        f"**What we measured** (test accuracy, {seed_words(results['seeds'])}): "
        + "; ".join(measured)
        + "."
    )


def renorm_verdict(results: Results) -> str | None:
    """How much of BN's loss on non-i.i.d. batches Batch Renorm wins back, judged
    against the spread over seeds; None unless both ran on both kinds of batches."""
    bn_iid = values(results, "batch_norm", "iid")
    bn = values(results, "batch_norm", "non_iid")
    renorm = values(results, "batch_renorm", "non_iid")
    if not all(np.isfinite(v).any() for v in (bn_iid, bn, renorm)):
        return None
    rule = f"{seed_words(results['seeds'])}; {rule_words()}"
    lost = mean_std(bn_iid - bn)[0]
    if lost <= 0 or not apart(bn_iid, bn):
        return (
            f"Unlike the paper, BN loses no accuracy beyond the spread on "
            f"non-i.i.d. batches here ({spread_points(bn - bn_iid)}; {rule}), so there "
            "is nothing for Batch Renorm to recover."
        )
    share = recovered_share(mean_std(bn_iid)[0], mean_std(bn)[0], mean_std(renorm)[0])
    shares = (renorm - bn) / (bn_iid - bn)
    said = (
        f"BN loses {spread_points(bn_iid - bn, signed=False)} and Batch Renorm wins "
        f"back {100 * share:.0f}% of them (per seed "
        f"{spread_number(shares, 0, 100, '%')}; {rule})"
    )
    if share <= 0 or not apart(renorm, bn):
        return (
            f"Unlike the paper, Batch Renorm wins back none of the "
            f"{100 * lost:.1f} points BN loses on non-i.i.d. batches beyond the "
            f"spread: it ends {spread_points(renorm - bn)} from BN ({rule})."
        )
    halfway = (bn_iid + bn) / 2
    if not apart(renorm, halfway):
        return (
            f"Partly as in the paper: {said}; about half, within the spread, where "
            "the paper's Batch Renorm recovers most."
        )
    if share > MOST:
        return f"As in the paper: {said}."
    return f"Unlike the paper, Batch Renorm wins back only part: {said}."


def group_norm_verdict(results: Results) -> str | None:
    """What GroupNorm, which has no batch statistics, loses on few-class batches,
    against what BN loses; None unless both ran on both kinds of batches."""
    gn_iid, gn = (
        values(results, "group_norm", "iid"),
        values(results, "group_norm", "non_iid"),
    )
    bn_iid, bn = (
        values(results, "batch_norm", "iid"),
        values(results, "batch_norm", "non_iid"),
    )
    if not all(np.isfinite(v).any() for v in (gn_iid, gn, bn_iid, bn)):
        return None
    gn_change, bn_change = gn - gn_iid, bn - bn_iid
    if apart(gn_iid, gn) and mean_std(gn_change)[0] < 0:
        text = (
            "GroupNorm has no batch statistics, so what it loses "
            f"({spread_points(gn_change)}) is the cost of training on few-class "
            "batches itself (each step's gradient sees only those classes). "
        )
    else:
        text = (
            "GroupNorm has no batch statistics, and loses no accuracy beyond the "
            f"spread on few-class batches ({spread_points(gn_change)}): training on "
            "them costs it nothing measurable. "
        )
    more = mean_std(gn_change - bn_change)[0]
    if not apart(bn_change, gn_change):
        return text + (
            f"BN's change ({spread_points(bn_change)}) is within the spread of "
            "GroupNorm's: on these batches BN's statistics add no loss of their own."
        )
    if more > 0:
        return text + (
            f"BN loses {spread_points(gn_change - bn_change, signed=False)} more: that "
            "part is what its batch statistics add."
        )
    return text + (
        f"BN loses {spread_points(bn_change - gn_change, signed=False)} less "
        f"({spread_points(bn_change)}): its batch statistics cost it nothing here that "
        "GroupNorm avoids."
    )


def batch_statistics_line(results: Results) -> str | None:
    """BN after non-i.i.d. training, tested with the statistics of each test batch;
    None if BN did not run."""
    if not ran(results, "batch_norm", "non_iid"):
        return None
    p = results["params"]
    moving, shuffled, few = (
        values(results, "batch_norm", "non_iid", key) for key in STATISTICS
    )
    return (
        "BN after non-i.i.d. training, tested with the statistics of each test "
        f"batch: {with_spread(shuffled)} on shuffled test batches, "
        f"{with_spread(few)} on test batches of {p['classes_per_batch']} classes like "
        f"its training batches, against {with_spread(moving)} with its moving "
        "statistics."
    )


def caveats(results: Results) -> str:
    """The seeds, the short training, the staleness of Batch Renorm's own averages
    (where it ran and they are stale: `pipeline.reporting.text.stale_weight`), and
    the noise of one accuracy."""
    p = results["params"]
    test_images = results["by_seed"][0]["test_images"]
    steps = results["by_seed"][0]["steps"]
    text = (
        f"Caveats: {len(results['seeds'])} seed(s) "
        f"({', '.join(map(str, results['seeds']))}), one run per setting and seed; "
        f"{shared_count(results, 'steps')} steps on "
        f"{shared_count(results, 'training_images')} training images"
    )
    momentum = p["normalizers"]["renorm_momentum"]
    remembered = stale_weight(momentum, steps)
    if "batch_renorm" in normalizations(results) and remembered is not None:
        text += (
            f", after which Batch Renorm's own moving averages (momentum "
            f"{momentum:g}) still give their initial values a weight of "
            f"{remembered:.0%}"
        )
    error = one_accuracy_error(
        mean_std(baseline(results))[0], test_images, "the baseline's mean"
    )
    return (
        text + f". Every number compared is a mean over the seeds with its standard "
        f"deviation, and {rule_words()}. {error}"
    ).rstrip()


def non_iid_findings(results: Results) -> list[str]:
    """Ioffe's section 4.2 against ours: what we measured, Batch Renorm's verdict,
    GroupNorm's, BN with batch statistics, and the caveats."""
    p = results["params"]
    paper = (
        "**What Ioffe found.** Inception-v3 on ImageNet, batches of 32 made of 16 "
        f"labels with 2 images each: BN reaches {percent(IOFFE_BN_NON_IID)} top-1 "
        f"accuracy against {percent(IOFFE_IID)} with i.i.d. batches; Batch Renorm "
        f"on the same non-i.i.d. batches {percent(IOFFE_RENORM_NON_IID)}, most of "
        "the gap recovered. MNIST has only 10 classes, so our batches of "
        f"{p['batch_size']} images hold {p['classes_per_batch']} classes each, a "
        "harsher skew than the paper's."
    )
    if "batch_renorm" in normalizations(results):
        paper += (
            " The paper also relaxes Batch Renorm's clipping gradually (r from 1 to "
            "3, d from 0 to 5) over a long run; here the bounds of params.yaml hold "
            "from the first step, as Keras's layer takes them."
        )
    lines = [paper, measured_line(results)]
    for line in (
        renorm_verdict(results),
        group_norm_verdict(results),
        batch_statistics_line(results),
    ):
        if line is not None:
            lines.append(line)
    lines.append(caveats(results))
    return lines


# Metrics and plots


def metrics(results: Results) -> dict[str, Any]:
    """The seeds; the baseline (BN on i.i.d. batches); and the test accuracy after
    non-i.i.d. training of the first two of BN, Batch Renorm and GroupNorm that ran:
    means over the seeds and their standard deviations, what `dvc metrics show`
    lists (two, so that its row fits on a screen; None where not finite: strict
    JSON)."""
    mean, std = mean_std(baseline(results))
    numbers: dict[str, Any] = {
        "seeds": list(results["seeds"]),
        "baseline_accuracy": mean,
        "baseline_accuracy_std": std,
    }
    shown = [name for name in HEADLINE if name in normalizations(results)][:2]
    for name in shown:
        mean, std = mean_std(values(results, name, "non_iid"))
        numbers[f"{HEADLINE[name]}_non_iid"] = mean
        numbers[f"{HEADLINE[name]}_non_iid_std"] = std
    return {
        key: value if key == "seeds" or np.isfinite(value) else None
        for key, value in numbers.items()
    }


def plots(results: Results) -> str:
    """CSV: a row per normalization (numbered in the order the params list them),
    its mean test accuracy after i.i.d. and after non-i.i.d. training (`dvc plots
    show`), and their standard deviations over the seeds."""
    names = normalizations(results)
    columns: dict[str, list] = {"normalization": list(range(len(names)))}
    for sampling in SAMPLINGS:
        mean, _ = bars(results, names, sampling)
        columns[sampling] = list(mean)
    for sampling in SAMPLINGS:
        _, std = bars(results, names, sampling)
        columns[f"{sampling}_std"] = list(std)
    return csv_columns(columns)
