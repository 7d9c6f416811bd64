"""The sentences of the batch_sizes and non_iid reports
(`pipeline.experiments.batch_findings`): each verdict flips when the numbers behind it
do. Plain numpy on small hand-made results, so nothing here depends on the backend.
"""

import pytest

from pipeline.experiments.batch_sizes import analysis as batch_findings
from pipeline.experiments.non_iid import analysis as non_iid_findings

SIZES = (2, 8, 32)


def batch_sizes_details(accuracy, batch_statistics=None, test_images=10_000,
                        population=None):
    """Results as the batch_sizes stage writes them; `accuracy` maps a normalization
    to its test accuracies at SIZES."""
    batch_statistics = batch_statistics or {}
    runs = []
    for name, values in accuracy.items():
        for i, (size, value) in enumerate(zip(SIZES, values, strict=True)):
            family = name in ("batch_norm", "ghost_batch_norm", "batch_renorm")
            runs.append({
                "normalization": name, "batch_size": size, "steps": 64 // size,
                "learning_rate": 0.001, "test_accuracy": value,
                "batch_statistics_accuracy": (
                    batch_statistics.get(name, values)[i] if family else None
                ),
                "population_accuracy": (
                    (population or {}).get(name, values)[i] if family else None
                ),
                "wall_seconds": 1.0,
            })
    return {"runs": runs, "test_images": test_images, "training_images": 64,
            "momentum": 0.9, "params": {"seed": 7, "epochs": 1}}


def test_bn_climbing_while_groupnorm_stays_flat_agrees_with_the_paper():
    details = batch_sizes_details(
        {"batch_norm": [0.80, 0.95, 0.96], "group_norm": [0.95, 0.95, 0.951]}
    )
    lines = batch_findings.wu_he_findings(details)
    assert lines[0].startswith("**What Wu & He found.**")
    assert "BN 80.00% at batch 2 (best 96.00%, at 32)" in lines[1]
    assert lines[2].startswith(
        "As in the paper: at batch 2 BN is 16.0 points below its best, GroupNorm 0.1 "
        "points below its own"
    )


@pytest.mark.parametrize(
    "bn, gn, verdict",
    [
        ([0.959, 0.95, 0.96], [0.95, 0.95, 0.951], "Unlike the paper, BN does not"),
        ([0.80, 0.95, 0.96], [0.80, 0.95, 0.96], "Partly as in the paper"),
        ([0.959, 0.95, 0.96], [0.80, 0.95, 0.96],
         "Unlike the paper, GroupNorm loses accuracy at the smallest batch and BN "
         "stays within the noise"),
    ],
)
def test_the_batch_size_verdict_follows_the_numbers(bn, gn, verdict):
    details = batch_sizes_details({"batch_norm": bn, "group_norm": gn})
    assert batch_findings.wu_he_findings(details)[2].startswith(verdict)


def test_the_verdict_needs_more_than_the_noise():
    # 2 points apart on 200 test images is within twice the standard error.
    details = batch_sizes_details(
        {"batch_norm": [0.93, 0.95, 0.95], "group_norm": [0.95, 0.95, 0.95]},
        test_images=200,
    )
    assert batch_findings.wu_he_findings(details)[2].startswith(
        "Unlike the paper, BN does not lose accuracy beyond the noise"
    )


def test_the_gap_says_which_statistics_cost_more():
    moving = [0.80, 0.95, 0.96]
    better = batch_sizes_details({"batch_norm": moving},
                                 {"batch_norm": [0.94, 0.95, 0.96]})
    [line] = batch_findings.gap_findings(better)
    assert "+14.0 points at 2" in line
    assert "moving statistics cost most at batch 2" in line
    # 32 steps at batch 2: 0.9 ** 32 = 3% of the initial values remain.
    assert "initial values a weight of 3% (0.9^32)" in line
    worse = batch_sizes_details({"batch_norm": moving},
                                {"batch_norm": [0.60, 0.95, 0.96]})
    assert "batch statistics cost most at batch 2" in batch_findings.gap_findings(
        worse)[0]
    same = batch_sizes_details({"batch_norm": moving})
    assert "Within the noise at every batch size." in batch_findings.gap_findings(
        same)[0]
    assert batch_findings.gap_findings(
        batch_sizes_details({"group_norm": moving})) == []


def test_caveats_name_the_seed_and_the_steps():
    text = batch_findings.batch_size_caveats(
        batch_sizes_details({"batch_norm": [0.9, 0.9, 0.9]}))
    assert "seed 7" in text and "32 steps at batch 2 but 2 at 32" in text


def non_iid_details(accuracy, test_images=10_000):
    """Results as the non_iid stage writes them; `accuracy` maps a normalization to
    its (i.i.d., non-i.i.d.) test accuracies."""
    runs = [
        {"normalization": name, "sampling": sampling, "test_accuracy": value,
         "batch_statistics_accuracy": 0.5, "few_class_batch_statistics_accuracy": 0.6,
         "training_loss": [0.1], "wall_seconds": 1.0}
        for name, values in accuracy.items()
        for sampling, value in zip(("iid", "non_iid"), values, strict=True)
    ]
    return {"runs": runs, "steps": 100, "training_images": 3200,
            "test_images": test_images,
            "params": {"seed": 7, "batch_size": 32, "classes_per_batch": 2,
                       "normalizers": {"renorm_momentum": 0.99}}}


@pytest.mark.parametrize(
    "renorm, verdict",
    [(0.95, "As in the paper: BN loses 20.0 points and Batch Renorm wins back 85%"),
     (0.80, "Unlike the paper, Batch Renorm wins back only 10% of the 20.0 points"),
     (0.77, "Unlike the paper, Batch Renorm wins back none of the 20.0 points BN "
            "loses on non-i.i.d. batches (it ends -1.0 points from BN)")],
)
def test_the_non_iid_verdict_follows_the_numbers(renorm, verdict):
    details = non_iid_details({"batch_norm": (0.98, 0.78),
                               "batch_renorm": (0.97, renorm)})
    lines = non_iid_findings.non_iid_findings(details)
    assert lines[0].startswith("**What Ioffe found.**")
    assert "batches of 32 images hold 2 classes each" in lines[0]
    assert "BN 98.00% after i.i.d. training, 78.00% after non-i.i.d. (-20.0 points)" \
        in lines[1]
    assert lines[2].startswith(verdict)
    assert lines[-1].startswith("Caveats: seed 7")


def test_no_loss_leaves_nothing_to_recover():
    details = non_iid_details({"batch_norm": (0.98, 0.979),
                               "batch_renorm": (0.97, 0.97)})
    assert "nothing for Batch Renorm to recover" in non_iid_findings.non_iid_findings(
        details)[2]


@pytest.mark.parametrize(
    "group_norm, verdict",
    [((0.97, 0.87), "BN loses 10.0 points more: that part is what its batch"),
     ((0.97, 0.70), "BN loses no more than that (-20.0 points)")],
)
def test_groupnorm_measures_the_cost_of_few_class_batches_alone(group_norm, verdict):
    details = non_iid_details({"batch_norm": (0.98, 0.78), "group_norm": group_norm})
    [line] = [line for line in non_iid_findings.non_iid_findings(details)
              if line.startswith("GroupNorm has no batch statistics")]
    assert verdict in line


def test_non_iid_caveats_say_how_stale_renorms_averages_are():
    caveats = non_iid_findings.non_iid_findings(
        non_iid_details({"batch_norm": (0.98, 0.78)}))[-1]
    # 0.99 ** 100 = 37%
    assert "still give their initial values a weight of 37%" in caveats


def test_recovered_share():
    assert non_iid_findings.recovered_share(0.9, 0.7, 0.85) == pytest.approx(0.75)
    assert non_iid_findings.recovered_share(0.9, 0.95, 0.9) != \
        non_iid_findings.recovered_share(0.9, 0.95, 0.9)  # NaN: BN lost nothing


@pytest.mark.parametrize(
    "population, verdict",
    [([0.90, 0.95, 0.96], "the recomputed statistics win back 10.0: that much is"),
     ([0.802, 0.95, 0.96], "are not the moving averages' fault"),
     ],
)
def test_population_statistics_say_how_much_is_the_moving_averages_fault(
    population, verdict
):
    details = batch_sizes_details({"batch_norm": [0.80, 0.95, 0.96]},
                                  population={"batch_norm": population})
    [line] = batch_findings.gap_findings(details)
    assert "With population statistics recomputed after training" in line
    assert "Of the 16.0 points lost" in line or "16.0 points lost" in line
    assert verdict in line


def test_no_small_batch_loss_leaves_nothing_for_population_statistics():
    details = batch_sizes_details({"batch_norm": [0.96, 0.96, 0.96]},
                                  population={"batch_norm": [0.97, 0.96, 0.96]})
    assert "no loss beyond the noise for them to explain" in (
        batch_findings.gap_findings(details)[0])
