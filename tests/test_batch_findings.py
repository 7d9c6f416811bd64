"""The sentences and numbers of the batch_sizes and non_iid reports
(`pipeline/experiments/{batch_sizes,non_iid}/analysis.py`): each verdict flips when
the numbers behind it, means over seeds and their spread, do. Plain numpy on small
hand-made results with `by_seed`, so nothing here depends on the backend.
"""

import math

import numpy as np
import pytest

from pipeline.experiments.batch_sizes import analysis as batch_findings
from pipeline.experiments.non_iid import analysis as non_iid_findings

SIZES = (2, 8, 32)
SEEDS = (5, 6, 7)
#: Each seed's value is the mean plus this many `spread`s: a standard deviation of
#: exactly `spread` over the three seeds.
OFFSETS = (-1.0, 0.0, 1.0)
FAMILY = ("batch_norm", "ghost_batch_norm", "batch_renorm")
ENVIRONMENT = {"backend": "jax", "device": "cpu", "keras_version": "3",
               "backend_version": "0.4", "wall_seconds": 600.0}


def batch_sizes_results(accuracy, batch_statistics=None, population=None,
                        steps_accuracy=None, spread=0.001, reference=32,
                        sizes=SIZES):
    """Results as the batch_sizes stage writes them, over SEEDS: `accuracy` maps a
    normalization to its mean test accuracies at `sizes` at equal epochs
    (`steps_accuracy` at equal steps, the largest size's left out: the same run;
    default: as at equal epochs); each seed's values are `spread` apart."""
    batch_statistics = batch_statistics or {}
    population = population or {}
    steps_accuracy = steps_accuracy or {}
    by_seed = []
    for seed, offset in zip(SEEDS, OFFSETS, strict=True):
        runs = []
        for name, means in accuracy.items():
            family = name in FAMILY
            for budget, table in (("epochs", accuracy), ("steps", steps_accuracy)):
                for i, size in enumerate(sizes):
                    if budget == "steps" and size == sizes[-1]:
                        continue
                    value = table.get(name, means)[i] + offset * spread
                    steps = 64 // size if budget == "epochs" else 64 // sizes[-1]
                    runs.append({
                        "normalization": name, "batch_size": size, "budget": budget,
                        "steps": steps, "epochs": steps * size / 64,
                        "learning_rate": 0.001, "test_accuracy": value,
                        "batch_statistics_accuracy": (
                            batch_statistics.get(name, means)[i] + offset * spread
                            if family else None
                        ),
                        "population_accuracy": (
                            population.get(name, means)[i] + offset * spread
                            if family else None
                        ),
                        "statistics_batches": 2, "training_loss": [0.1],
                        "wall_seconds": 1.0,
                    })
        by_seed.append({"seed": seed, "momentum": 0.9, "training_images": 64,
                        "test_images": 10_000, "runs": runs, "wall_seconds": 5.0})
    params = {
        "batch_sizes": list(sizes), "normalizations": list(accuracy), "epochs": 1,
        "learning_rate": 0.001, "reference_batch_size": reference, "limit": None,
        "test_images": 10_000, "statistics_batches": 2,
        "normalizers": {"ghost_batch_size": 4, "groups": 8, "renorm_momentum": 0.99,
                        "renorm_clipping": {"rmax": 3.0, "rmin": 1 / 3, "dmax": 5.0}},
    }
    return {**ENVIRONMENT, "params": params, "seeds": list(SEEDS), "by_seed": by_seed}


# What ran, and the baseline


def test_the_largest_batch_size_serves_both_budgets():
    results = batch_sizes_results(
        {"batch_norm": [0.80, 0.95, 0.96]},
        steps_accuracy={"batch_norm": [0.50, 0.90, 0.0]},
    )
    seed = results["by_seed"][0]
    assert not [r for r in seed["runs"] if r["budget"] == "steps"
                and r["batch_size"] == 32]
    at_32 = batch_findings.find_run(seed, "batch_norm", 32, "steps")
    assert at_32["budget"] == "epochs"
    np.testing.assert_allclose(
        batch_findings.values(results, "batch_norm", 32, "steps"), [0.959, 0.96, 0.961])
    np.testing.assert_allclose(
        batch_findings.values(results, "batch_norm", 2, "steps"), [0.499, 0.5, 0.501])
    sizes, means, stds = batch_findings.curve(results, "batch_norm", "steps")
    assert sizes == [2, 8, 32]
    np.testing.assert_allclose(means, [0.5, 0.9, 0.96])
    np.testing.assert_allclose(stds, [0.001] * 3)
    # A normalization that did not run is NaN, not an error.
    assert np.isnan(batch_findings.values(results, "group_norm", 2)).all()


@pytest.mark.parametrize("reference, used", [(8, 8), (16, 8), (5, 2), (1000, 32)])
def test_the_baseline_is_bn_at_the_batch_size_closest_to_the_reference(
    reference, used
):
    results = batch_sizes_results({"batch_norm": [0.90, 0.95, 0.97]},
                                  reference=reference)
    assert batch_findings.reference_batch_size(results) == used
    expected = {2: 0.90, 8: 0.95, 32: 0.97}[used]
    metrics = batch_findings.metrics(results)
    assert metrics["baseline_accuracy"] == pytest.approx(expected)
    assert metrics["baseline_accuracy_std"] == pytest.approx(0.001)
    setup = batch_findings.setup_text(results)
    assert f"The baseline is BN at batch {used}, equal epochs" in setup
    assert ("which did not run" in setup) == (reference != used)


def test_metrics_hold_the_seeds_the_baseline_and_the_headlines():
    results = batch_sizes_results(
        {"batch_norm": [0.80, 0.95, 0.96], "group_norm": [0.94, 0.95, 0.95]})
    metrics = batch_findings.metrics(results)
    assert metrics.pop("seeds") == list(SEEDS)
    assert metrics == pytest.approx({
        "baseline_accuracy": 0.96,
        "baseline_accuracy_std": 0.001, "bn_smallest": 0.80,
        "bn_smallest_std": 0.001, "gn_smallest": 0.94, "gn_smallest_std": 0.001,
    })
    only_bn = batch_findings.metrics(batch_sizes_results({"batch_norm": [0.8] * 3}))
    assert "gn_smallest" not in only_bn


def test_plots_give_means_at_equal_epochs_and_the_rest_beside_them():
    results = batch_sizes_results(
        {"batch_norm": [0.80, 0.95, 0.96]},
        steps_accuracy={"batch_norm": [0.60, 0.90, 0.0]})
    header, *rows = batch_findings.plots(results).splitlines()
    columns = header.split(",")
    assert columns[:7] == ["batch_size", "batch_norm", "ghost_batch_norm",
                           "batch_renorm", "group_norm", "layer_norm", "none"]
    assert columns[7:] == ["batch_norm_std", "batch_norm_equal_steps",
                           "batch_norm_equal_steps_std"]
    cells = [dict(zip(columns, row.split(","), strict=True)) for row in rows]
    assert [int(c["batch_size"]) for c in cells] == list(SIZES)
    assert [float(c["batch_norm"]) for c in cells] == pytest.approx([0.8, 0.95, 0.96])
    assert [float(c["batch_norm_equal_steps"]) for c in cells] == pytest.approx(
        [0.6, 0.9, 0.96])
    assert float(cells[0]["batch_norm_std"]) == pytest.approx(0.001)
    assert cells[0]["group_norm"] == ""


def test_the_texts_promise_only_the_normalizations_that_ran():
    only_bn = batch_sizes_results({"batch_norm": [0.9] * 3})
    texts = [batch_findings.setup_text(only_bn), batch_findings.error_note(only_bn),
             batch_findings.gap_note(only_bn), *batch_findings.wu_he_findings(only_bn)]
    for text in texts:
        for other in ("Batch Renorm", "ghost BN", "Ghost BN", "LayerNorm"):
            assert other not in text, text
    assert "GroupNorm uses" not in texts[0]
    ghost = batch_sizes_results({"batch_norm": [0.9] * 3,
                                 "ghost_batch_norm": [0.9] * 3,
                                 "group_norm": [0.9] * 3})
    setup = batch_findings.setup_text(ghost)
    assert "Ghost BN normalizes sub-batches of at most 4" in setup
    assert "GroupNorm uses 8 groups" in setup and "Batch Renorm" not in setup
    assert "(ghost BN: in its sub-batches)" in batch_findings.gap_note(ghost)


def test_the_runs_table_has_a_row_per_run_and_the_largest_once():
    results = batch_sizes_results({"batch_norm": [0.80, 0.95, 0.96]})
    rows = batch_findings.runs_table(results).splitlines()[2:]
    assert len(rows) == 5  # batch 2 and 8 under both budgets, 32 once
    assert rows[-1].startswith("| BN | 32 | both |")
    assert "| 80.00% ± 0.10 |" in rows[0]


# Figures


@pytest.mark.parametrize("low, high", [(0.008, 0.7), (0.011, 0.015), (0.02, 0.05),
                                       (0.005, 0.011)])
def test_error_ticks_are_in_range_and_their_labels_distinct(low, high):
    ticks, labels = batch_findings.error_ticks(low, high)
    assert len(ticks) >= 2
    assert all(low <= tick <= high for tick in ticks)
    assert len(set(labels)) == len(labels)


def test_tick_decimals_make_labels_distinct():
    assert batch_findings.tick_decimals([0.2, 0.4, 0.6]) == 0
    assert batch_findings.tick_decimals([0.982, 0.984, 0.986]) == 1
    assert batch_findings.tick_decimals([0.981, 0.9811, 0.9812]) == 2


# Wu & He's verdict


def test_bn_climbing_while_groupnorm_stays_flat_agrees_with_the_paper():
    results = batch_sizes_results(
        {"batch_norm": [0.80, 0.95, 0.96], "group_norm": [0.95, 0.95, 0.951]})
    lines = batch_findings.wu_he_findings(results)
    assert lines[0].startswith("**What Wu & He found.**")
    assert lines[1].startswith("**What we measured at equal epochs**")
    assert "mean ± standard deviation over 3 seeds (5, 6, 7)" in lines[1]
    assert "BN 80.00% ± 0.10 at batch 2 (best 96.00% ± 0.10, at 32)" in lines[1]
    assert lines[2].startswith(
        "At equal epochs, as in the paper: at batch 2 BN is 16.0 ± 0.0 points below "
        "its best (batch 32), GroupNorm 0.1 ± 0.0 points below its own (batch 32)")
    assert lines[3].startswith("**At equal steps** (2 steps at every batch size")
    assert lines[4].startswith("At equal steps, as in the paper")


@pytest.mark.parametrize(
    "bn, gn, verdict",
    [
        ([0.959, 0.95, 0.96], [0.95, 0.95, 0.951],
         "At equal epochs, unlike the paper, BN does not lose accuracy beyond the "
         "spread at the smallest batch, nor does GroupNorm"),
        ([0.80, 0.95, 0.96], [0.80, 0.95, 0.96], "At equal epochs, partly as in"),
        ([0.959, 0.95, 0.96], [0.80, 0.95, 0.96],
         "At equal epochs, unlike the paper, GroupNorm loses accuracy at the "
         "smallest batch and BN stays within the spread"),
        ([0.80, 0.95, 0.96], [0.95, 0.95, 0.951], "At equal epochs, as in the paper"),
    ],
)
def test_the_batch_size_verdict_follows_the_numbers(bn, gn, verdict):
    results = batch_sizes_results({"batch_norm": bn, "group_norm": gn})
    assert batch_findings.climb_verdict(results, "epochs").startswith(verdict)


def test_the_verdict_needs_more_than_the_spread_over_seeds():
    # 2 points apart, but the seeds spread by 3 points: within the spread.
    numbers = {"batch_norm": [0.93, 0.95, 0.95], "group_norm": [0.95, 0.95, 0.95]}
    wide = batch_sizes_results(numbers, spread=0.03)
    assert batch_findings.climb_verdict(wide).startswith(
        "At equal epochs, unlike the paper, BN does not lose accuracy beyond the "
        "spread")
    tight = batch_sizes_results(numbers, spread=0.001)
    assert batch_findings.climb_verdict(tight).startswith(
        "At equal epochs, as in the paper")


def test_each_budget_has_its_own_verdict():
    results = batch_sizes_results(
        {"batch_norm": [0.96, 0.95, 0.96], "group_norm": [0.95, 0.95, 0.951]},
        steps_accuracy={"batch_norm": [0.50, 0.80, 0.0],
                        "group_norm": [0.60, 0.85, 0.0]})
    assert "nor does GroupNorm" in batch_findings.climb_verdict(results, "epochs")
    assert batch_findings.climb_verdict(results, "steps").startswith(
        "At equal steps, partly as in the paper")


@pytest.mark.parametrize(
    "bn, verdict",
    [([0.80, 0.95, 0.96], "At equal epochs, BN loses accuracy at the smallest batch "
      "beyond the spread, as in the paper"),
     ([0.96, 0.95, 0.96], "At equal epochs, unlike the paper, BN does not lose")],
)
def test_without_groupnorm_the_verdict_is_bns_alone(bn, verdict):
    text = batch_findings.climb_verdict(batch_sizes_results({"batch_norm": bn}))
    assert text.startswith(verdict)
    assert "GroupNorm is not among the normalizations run" in text
    assert batch_findings.climb_verdict(
        batch_sizes_results({"group_norm": bn})) is None


def test_one_seed_claims_no_difference_beyond_a_spread_it_cannot_measure():
    results = batch_sizes_results({"batch_norm": [0.5, 0.7]}, sizes=(2, 4))
    results["seeds"] = results["seeds"][:1]
    results["by_seed"] = results["by_seed"][:1]
    lines = batch_findings.wu_he_findings(results)
    assert "over 1 seed (5)" in lines[1]
    assert lines[2].startswith(
        "At equal epochs, unlike the paper, BN does not lose accuracy beyond the spread"
    )


# The train/inference gap and the population statistics


def test_the_gap_says_which_statistics_cost_more():
    moving = [0.80, 0.95, 0.96]
    better = batch_sizes_results({"batch_norm": moving},
                                 {"batch_norm": [0.94, 0.95, 0.96]})
    [line] = batch_findings.gap_findings(better)
    assert "+14.0 ± 0.0 points at 2" in line
    assert "moving statistics cost most at batch 2" in line
    # 32 steps at batch 2: 0.9 ** 32 = 3% of the initial values remain.
    assert "initial values a weight of 3% (0.9^32)" in line
    worse = batch_sizes_results({"batch_norm": moving},
                                {"batch_norm": [0.60, 0.95, 0.96]})
    assert "batch statistics cost most at batch 2" in batch_findings.gap_findings(
        worse)[0]
    same = batch_sizes_results({"batch_norm": moving})
    assert "Within the spread over seeds at every batch size." in (
        batch_findings.gap_findings(same)[0])
    assert batch_findings.gap_findings(
        batch_sizes_results({"group_norm": moving})) == []


def test_a_gap_within_the_spread_is_no_gap():
    # 1 point apart on average, but the batch statistics swing by 3 points a seed.
    results = batch_sizes_results({"batch_norm": [0.80, 0.95, 0.96]},
                                  {"batch_norm": [0.81, 0.95, 0.96]})
    for seed, swing in zip(results["by_seed"], (-0.03, 0.0, 0.03), strict=True):
        for run in seed["runs"]:
            run["batch_statistics_accuracy"] += swing
    assert "Within the spread over seeds" in batch_findings.gap_findings(results)[0]


def test_stale_moving_averages_are_named_only_when_stale():
    results = batch_sizes_results({"batch_norm": [0.80, 0.95, 0.96]},
                                  {"batch_norm": [0.94, 0.95, 0.96]})
    for seed in results["by_seed"]:
        for run in seed["runs"]:
            run["steps"] *= 100  # 0.9 ** 3200: nothing of the initial values left
    assert "stale" not in batch_findings.gap_findings(results)[0]


@pytest.mark.parametrize(
    "population, verdict",
    [([0.90, 0.95, 0.96], "the recomputed statistics win back 10.0: that much is"),
     ([0.8005, 0.95, 0.96], "are not the moving averages' fault"),
     ([0.70, 0.95, 0.96], "are not the moving averages' fault")],
)
def test_population_statistics_say_how_much_is_the_moving_averages_fault(
    population, verdict
):
    results = batch_sizes_results({"batch_norm": [0.80, 0.95, 0.96]},
                                  population={"batch_norm": population})
    [line] = batch_findings.gap_findings(results)
    assert "With population statistics recomputed after training" in line
    assert "16.0 points lost at batch 2 against batch 32" in line
    assert verdict in line


def test_no_small_batch_loss_leaves_nothing_for_population_statistics():
    results = batch_sizes_results({"batch_norm": [0.96, 0.96, 0.96]},
                                  population={"batch_norm": [0.97, 0.96, 0.96]})
    assert "no loss beyond the spread for them to explain" in (
        batch_findings.gap_findings(results)[0])


def test_caveats_name_the_seeds_and_the_steps():
    text = batch_findings.batch_size_caveats(
        batch_sizes_results({"batch_norm": [0.9, 0.9, 0.9]}))
    assert "3 seed(s) (5, 6, 7)" in text
    assert "32 steps at batch 2 but 2 at 32" in text
    assert "2 standard errors of their difference apart" in text


@pytest.mark.parametrize(
    "accuracy, said",
    [({"batch_norm": [0.90, 0.95, 0.90], "group_norm": [0.90, 0.95, 0.90]},
      ": at batch 32 every normalization ends below its best batch size beyond the "
      "spread (BN -5.0 ± 0.0 points; GroupNorm -5.0 ± 0.0 points), so the largest "
      "batches are undertrained, whatever the normalization;"),
     ({"batch_norm": [0.90, 0.95, 0.90], "group_norm": [0.90, 0.95, 0.95]},
      ": at batch 32 the accuracy ends below that of the best batch size beyond the "
      "spread for BN -5.0 ± 0.0 points but not for GroupNorm, so the fewer steps "
      "cost only some normalizations;"),
     ({"batch_norm": [0.90, 0.95, 0.96], "group_norm": [0.90, 0.95, 0.949]},
      ", yet at batch 32 no normalization ends below its best batch size beyond the "
      "spread: the fewer steps show no undertraining here;")],
)
def test_caveats_call_the_largest_batches_undertrained_only_where_they_are(
    accuracy, said
):
    text = batch_findings.batch_size_caveats(batch_sizes_results(accuracy))
    assert said in text
    if "every normalization" not in said:
        assert "undertrained, whatever" not in text


def test_an_accuracy_below_the_best_within_the_spread_is_not_undertrained():
    # 1 point below batch 8 on average, but each seed swings by 2 points.
    results = batch_sizes_results({"batch_norm": [0.90, 0.95, 0.94]}, spread=0.02)
    assert batch_findings.short_at_largest(results) == {"batch_norm": None}
    assert "no normalization ends below" in batch_findings.batch_size_caveats(results)


def test_caveats_quote_the_error_of_one_accuracy_at_the_baselines_mean():
    text = batch_findings.batch_size_caveats(
        batch_sizes_results({"batch_norm": [0.90, 0.95, 0.99]}))
    # sqrt(0.99 * 0.01 / 10,000) = 0.0995 points
    assert text.endswith(
        "One accuracy of 99.0% (the baseline's mean) on 10,000 test images has a "
        "standard error of ≈0.10 points.")
    without_bn = batch_findings.batch_size_caveats(
        batch_sizes_results({"group_norm": [0.90, 0.95, 0.99]}))
    assert "One accuracy" not in without_bn
    assert without_bn.endswith("difference apart.")


# non_iid


def non_iid_results(accuracy, spread=0.001, normalizations=None,
                    renorm_momentum=0.99):
    """Results as the non_iid stage writes them, over SEEDS; `accuracy` maps a
    normalization to its mean (i.i.d., non-i.i.d.) test accuracies; each seed's
    values are `spread` apart."""
    by_seed = []
    for seed, offset in zip(SEEDS, OFFSETS, strict=True):
        runs = [
            {"normalization": name, "sampling": sampling,
             "test_accuracy": value + offset * spread,
             "batch_statistics_accuracy": 0.5 if name in FAMILY else None,
             "few_class_batch_statistics_accuracy": 0.6 if name in FAMILY else None,
             "training_loss": [0.2, 0.1], "wall_seconds": 1.0}
            for name, values in accuracy.items()
            for sampling, value in zip(("iid", "non_iid"), values, strict=True)
        ]
        by_seed.append({"seed": seed, "runs": runs, "steps": 100,
                        "training_images": 3200, "test_images": 10_000,
                        "few_class_test_images": 9_984, "wall_seconds": 5.0})
    params = {"batch_size": 32, "classes_per_batch": 2,
              "normalizations": normalizations or list(accuracy), "epochs": 1,
              "learning_rate": 0.001, "limit": None, "test_images": 10_000,
              "normalizers": {"ghost_batch_size": 4, "groups": 8,
                              "renorm_momentum": renorm_momentum,
                              "renorm_clipping": {"rmax": 3.0, "rmin": 1 / 3,
                                                  "dmax": 5.0}}}
    return {**ENVIRONMENT, "params": params, "seeds": list(SEEDS), "by_seed": by_seed}


@pytest.mark.parametrize(
    "renorm, verdict",
    [(0.95, "As in the paper: BN loses 20.0 ± 0.0 points and Batch Renorm wins back "
            "85% of them (per seed 85% ± 0"),
     (0.80, "Unlike the paper, Batch Renorm wins back only part: BN loses 20.0 ± 0.0 "
            "points and Batch Renorm wins back 10% of them"),
     (0.88, "Partly as in the paper: BN loses 20.0 ± 0.0 points and Batch Renorm "
            "wins back 50%"),
     (0.77, "Unlike the paper, Batch Renorm wins back none of the 20.0 points BN "
            "loses on non-i.i.d. batches beyond the spread: it ends -1.0 ± 0.0 "
            "points from BN"),
     (0.7805, "Unlike the paper, Batch Renorm wins back none")],
)
def test_the_non_iid_verdict_follows_the_numbers(renorm, verdict):
    results = non_iid_results({"batch_norm": (0.98, 0.78),
                               "batch_renorm": (0.97, renorm)})
    lines = non_iid_findings.non_iid_findings(results)
    assert lines[0].startswith("**What Ioffe found.**")
    assert "batches of 32 images hold 2 classes each" in lines[0]
    assert ("BN 98.00% ± 0.10 after i.i.d. training, 78.00% ± 0.10 after "
            "non-i.i.d. (-20.0 ± 0.0 points)") in lines[1]
    assert lines[2].startswith(verdict)
    assert lines[-1].startswith("Caveats: 3 seed(s) (5, 6, 7)")


def test_about_half_is_about_half_only_within_the_spread():
    # 60% back on average, but each seed's accuracies swing by 8 points.
    results = non_iid_results({"batch_norm": (0.98, 0.78),
                               "batch_renorm": (0.97, 0.90)}, spread=0.08)
    for seed in results["by_seed"]:  # BN itself as tight as before
        for run in seed["runs"]:
            if run["normalization"] == "batch_norm":
                run["test_accuracy"] = {"iid": 0.98, "non_iid": 0.78}[run["sampling"]]
    assert non_iid_findings.renorm_verdict(results).startswith(
        "Partly as in the paper")
    tight = non_iid_results({"batch_norm": (0.98, 0.78),
                             "batch_renorm": (0.97, 0.90)})
    assert non_iid_findings.renorm_verdict(tight).startswith("As in the paper")


@pytest.mark.parametrize(
    "bn, spread",
    [((0.98, 0.979), 0.001),  # lost less than the spread
     ((0.98, 0.95), 0.03),  # 3 points, but the seeds swing by 3
     ((0.97, 0.98), 0.001)],  # gained
)
def test_no_loss_beyond_the_spread_leaves_nothing_to_recover(bn, spread):
    results = non_iid_results({"batch_norm": bn, "batch_renorm": (0.97, 0.97)},
                              spread=spread)
    assert "nothing for Batch Renorm to recover" in non_iid_findings.renorm_verdict(
        results)


def test_no_renorm_no_renorm_verdict():
    results = non_iid_results({"batch_norm": (0.98, 0.78), "group_norm": (0.97, 0.9)})
    assert non_iid_findings.renorm_verdict(results) is None
    text = " ".join([*non_iid_findings.non_iid_findings(results),
                     non_iid_findings.setup_text(results)])
    assert "clips r" not in text and "relaxes Batch Renorm's clipping" not in text
    assert "Batch Renorm's own moving averages" not in text


@pytest.mark.parametrize(
    "group_norm, start, verdict",
    [((0.97, 0.87), "GroupNorm has no batch statistics, so what it loses",
      "BN loses 10.0 ± 0.0 points more: that part is what its batch"),
     ((0.97, 0.77), "GroupNorm has no batch statistics, so what it loses",
      "BN's change (-20.0 ± 0.0 points) is within the spread of GroupNorm's"),
     ((0.97, 0.70), "GroupNorm has no batch statistics, so what it loses",
      "BN loses 7.0 ± 0.0 points less (-20.0 ± 0.0 points)"),
     ((0.97, 0.969), "GroupNorm has no batch statistics, and loses no accuracy "
      "beyond the spread", "BN loses 19.9 ± 0.0 points more")],
)
def test_groupnorm_measures_the_cost_of_few_class_batches_alone(
    group_norm, start, verdict
):
    results = non_iid_results({"batch_norm": (0.98, 0.78), "group_norm": group_norm})
    line = non_iid_findings.group_norm_verdict(results)
    assert line.startswith(start)
    assert verdict in line
    assert line in non_iid_findings.non_iid_findings(results)


def test_groupnorm_verdict_needs_both():
    assert non_iid_findings.group_norm_verdict(
        non_iid_results({"batch_norm": (0.98, 0.78)})) is None


def test_non_iid_caveats_say_how_stale_renorms_averages_are():
    caveats = non_iid_findings.caveats(
        non_iid_results({"batch_norm": (0.98, 0.78), "batch_renorm": (0.9, 0.9)}))
    # 0.99 ** 100 = 37%
    assert "still give their initial values a weight of 37%" in caveats
    assert "2 standard errors of their difference apart" in caveats
    assert caveats.endswith(
        "One accuracy of 98.0% (the baseline's mean) on 10,000 test images has a "
        "standard error of ≈0.14 points.")


def test_non_iid_caveats_leave_out_renorms_averages_when_not_stale():
    # 0.9 ** 100: under text.STALE, as batch_sizes judges BN's averages
    caveats = non_iid_findings.caveats(
        non_iid_results({"batch_norm": (0.98, 0.78), "batch_renorm": (0.9, 0.9)},
                        renorm_momentum=0.9))
    assert "Batch Renorm's own moving averages" not in caveats
    assert "100 steps on 3,200 training images. Every number" in caveats


def test_bn_with_batch_statistics_reports_its_spread():
    line = non_iid_findings.batch_statistics_line(
        non_iid_results({"batch_norm": (0.98, 0.78)}))
    assert "50.00% ± 0.00 on shuffled test batches" in line
    assert "against 78.00% ± 0.10 with its moving statistics" in line
    assert non_iid_findings.batch_statistics_line(
        non_iid_results({"group_norm": (0.98, 0.78)})) is None


def test_recovered_share():
    assert non_iid_findings.recovered_share(0.9, 0.7, 0.85) == pytest.approx(0.75)
    assert math.isnan(non_iid_findings.recovered_share(0.9, 0.95, 0.9))


def test_non_iid_metrics_and_plots():
    results = non_iid_results({"batch_norm": (0.98, 0.78),
                               "batch_renorm": (0.97, 0.95),
                               "group_norm": (0.97, 0.87)})
    metrics = non_iid_findings.metrics(results)
    assert metrics.pop("seeds") == list(SEEDS)
    assert metrics == pytest.approx({
        "baseline_accuracy": 0.98,
        "baseline_accuracy_std": 0.001, "bn_non_iid": 0.78, "bn_non_iid_std": 0.001,
        "renorm_non_iid": 0.95, "renorm_non_iid_std": 0.001,
    })
    header, *rows = non_iid_findings.plots(results).splitlines()
    assert header == "normalization,iid,non_iid,iid_std,non_iid_std"
    assert rows[2].split(",")[:3] == ["2", "0.97", "0.87"]
    assert float(rows[0].split(",")[3]) == pytest.approx(0.001)


def test_non_iid_table_has_a_row_per_run():
    results = non_iid_results({"batch_norm": (0.98, 0.78), "group_norm": (0.97, 0.9)})
    rows = non_iid_findings.runs_table(results).splitlines()[2:]
    assert len(rows) == 4
    assert rows[0].startswith("| BN | i.i.d. | 98.00% ± 0.10 | 50.00% ± 0.00 ")
    assert "| GroupNorm | non-i.i.d. | 90.00% ± 0.10 | n/a | n/a | 0.100 ± 0.000" in (
        rows[3])


def test_metrics_are_strict_json_where_a_normalization_did_not_run():
    results = non_iid_results({"group_norm": (0.97, 0.9)})
    metrics = non_iid_findings.metrics(results)
    assert metrics["baseline_accuracy"] is None  # BN did not run
    assert metrics["gn_non_iid"] == pytest.approx(0.9)
    results = batch_sizes_results({"group_norm": [0.9] * 3})
    assert batch_findings.metrics(results)["baseline_accuracy"] is None
