"""The numbers and sentences of the covariate-shift report
(`pipeline.experiments.covariate_shift.analysis`): each measure against a hand-made
case, each verdict flipping when the numbers behind it do, and staying undecided when
the seeds spread more than the means differ.

Plain numpy on small hand-made results dicts (the structure of the stage's results
file: `by_seed`, one run per seed), so nothing here depends on the Keras backend.
"""

import math

import numpy as np
import pytest

from pipeline.experiments.covariate_shift import analysis as f

SEEDS = [0, 1, 2]
STEPS = [0, 50, 100, 150]
STEP_SIZES = [0.1, 0.2]
#: Each variant's accuracies (after step 0) and test accuracy move by this times
#: -1, 0, 1 over the three seeds: a standard deviation of SPREAD over the seeds.
SPREAD = 0.005


def probe(loss, losses, changes, gradient_norm=1.0):
    return {
        "loss": loss,
        "losses": list(losses),
        "gradient_changes": list(changes),
        "gradient_norm": gradient_norm,
    }


def steady(drift, std=1.0, channels=2):
    """Per-probe channel means moving by `drift` per probe, stds fixed."""
    means = [[drift * i] * channels for i in range(len(STEPS))]
    stds = [[std] * channels for _ in STEPS]
    return means, stds


def variant(accuracy, offset, drift, landscape=None):
    """One variant's series in one seed's run: `accuracy` per probe, moved by
    `offset` after step 0; the test accuracy the last one's."""
    means, stds = steady(drift)
    moved = [accuracy[0], *(a + offset for a in accuracy[1:])]
    series = {
        "val_accuracy": moved,
        "train_loss": [None, 0.5, 0.3, 0.2],
        "input_mean": means,
        "input_std": stds,
        "test_accuracy": moved[-1],
        "wall_seconds": 1.0,
    }
    if landscape is not None:
        series["landscape"] = landscape
    return series


SMOOTH = [probe(2.3, [2.2, 2.1], [0.1, 0.2])] + [
    probe(0.5, [0.45, 0.4], [0.1, 0.2]) for _ in STEPS[1:]
]
ROUGH = [probe(2.0, [2.0, 2.0], [0.01, 0.02])] + [
    probe(0.5, [0.9, 3.0], [1.0, 4.0], gradient_norm=0.5) for _ in STEPS[1:]
]


def scaled_rough(factor):
    """ROUGH with every measure after step 0 times `factor`: loss spread 2.5 *
    factor, gradient change 4 * factor, smoothness 40 * factor."""
    return [ROUGH[0]] + [
        probe(0.5, [0.5 + 0.4 * factor, 0.5 + 2.5 * factor],
              [1.0 * factor, 4.0 * factor], gradient_norm=0.5)
        for _ in STEPS[1:]
    ]


#: Per seed: as rough as ROUGH on average, but spread widely over the seeds.
SCATTERED = [scaled_rough(factor) for factor in (0.2, 1.0, 1.8)]


def per_seed(value, i):
    """`value` for seed number `i`: a list of one value per seed, or the value."""
    return value[i] if isinstance(value, tuple) else value


def make_results(
    bn=(0.1, 0.9, 0.95, 0.97),
    noisy=(0.1, 0.85, 0.94, 0.965),
    plain=(0.1, 0.1, 0.6, 0.9),
    spread=None,
    noisy_drift=1.0,
    bn_drift=0.02,
    plain_drift=0.1,
    bn_landscape=SMOOTH,
    plain_landscape=ROUGH,
):
    """By default: noisy BN ends level with BN and beats the plain network, its inputs
    move most, and BN's landscape is the smoother one, each beyond the spread over
    the seeds. A drift or a landscape may be a tuple of one per seed; `spread` maps
    a variant to its spread over the seeds, SPREAD where not given."""
    spread = {"bn": SPREAD, "noisy_bn": SPREAD, "plain": SPREAD, **(spread or {})}
    runs = []
    for i, seed in enumerate(SEEDS):
        offset = {v: spread[v] * (i - 1) for v in spread}
        runs.append({
            "seed": seed,
            "steps": STEPS,
            "validation_images": 2000,
            "training_images": 50_000,
            "test_images": 10_000,
            "probed_layer": "conv2",
            "bn": variant(bn, offset["bn"], per_seed(bn_drift, i),
                          per_seed(bn_landscape, i)),
            "plain": variant(plain, offset["plain"], per_seed(plain_drift, i),
                             per_seed(plain_landscape, i)),
            "noisy_bn": variant(noisy, offset["noisy_bn"], per_seed(noisy_drift, i)),
            "wall_seconds": 3.0,
        })
    return {
        "backend": "jax",
        "params": {
            "steps": 150, "batch_size": 64, "probe_every": 50,
            "step_sizes": STEP_SIZES,
        },
        "seeds": SEEDS,
        "by_seed": runs,
        "wall_seconds": 9.0,
    }


def test_input_shift_is_in_units_of_the_channels_spread():
    means = [[0.0, 0.0], [1.0, -3.0], [1.0, -3.0]]
    stds = [[2.0, 2.0], [1.0, 3.0], [1.0, 1.0]]
    np.testing.assert_allclose(f.input_shift(means, stds), [2.0 / 2.0, 0.0])
    np.testing.assert_allclose(f.scale_change(stds), [1.0 / 2.0, 1.0 / 2.0])


def test_landscape_measures_by_hand():
    p = probe(1.0, [0.5, 1.5], [0.3, 0.8], gradient_norm=2.0)
    assert f.loss_spread(p) == 1.0
    assert f.gradient_change(p) == 0.8
    # max(0.3 / (0.1 * 2), 0.8 / (0.2 * 2)) = max(1.5, 2.0)
    assert f.effective_smoothness(p, STEP_SIZES) == pytest.approx(2.0)
    assert math.isnan(f.effective_smoothness({**p, "gradient_norm": 0.0}, STEP_SIZES))
    assert math.isnan(f.effective_smoothness({**p, "gradient_norm": None}, STEP_SIZES))
    # The starting point counts: a loss that only rises is spread from it.
    assert f.loss_spread(probe(1.0, [1.2, 1.4], [0, 0])) == pytest.approx(0.4)
    # A diverged probe (every value None) has no measure, and no warning.
    diverged = probe(None, [None, None], [None, None], gradient_norm=None)
    assert math.isnan(f.loss_spread(diverged))
    assert math.isnan(f.gradient_change(diverged))


def test_curves_are_means_and_spreads_over_the_seeds_at_every_probe():
    results = make_results()
    steps, mean, std = f.curve(results, "noisy_bn", "val_accuracy")
    np.testing.assert_array_equal(steps, STEPS)
    np.testing.assert_allclose(mean, [0.1, 0.85, 0.94, 0.965])
    np.testing.assert_allclose(std, [0.0, SPREAD, SPREAD, SPREAD], atol=1e-12)
    # The changes between probes and the training loss start after step 0.
    steps, mean, std = f.curve(results, "plain", "input_shift")
    np.testing.assert_array_equal(steps, STEPS[1:])
    np.testing.assert_allclose(mean, [0.1] * 3)
    np.testing.assert_allclose(std, [0.0] * 3, atol=1e-12)
    assert list(f.curve(results, "bn", "train_loss")[0]) == STEPS[1:]
    # Over SCATTERED's seeds: loss spreads 0.5, 2.5 and 4.5 after step 0.
    _, mean, std = f.curve(
        make_results(plain_landscape=tuple(SCATTERED)), "plain", "loss_spread"
    )
    np.testing.assert_allclose(mean[1:], [2.5] * 3)
    np.testing.assert_allclose(std[1:], [2.0] * 3)
    with pytest.raises(ValueError, match="no series 'accuracy'"):
        f.curve(results, "bn", "accuracy")


def test_metrics_hold_the_seeds_the_baseline_and_the_landscape_verdict():
    headline = f.metrics(make_results())
    assert headline == {
        "seeds": SEEDS,
        # BN's test accuracy, the reference setting's
        "baseline_accuracy": pytest.approx(0.97),
        "baseline_accuracy_std": pytest.approx(SPREAD),
        "plain_accuracy": pytest.approx(0.9),
        "noisy_bn_accuracy": pytest.approx(0.965),
        "noisy_bn_input_shift": pytest.approx(1.0),
        # BN's landscape the smoother by all three measures, beyond the spread
        "bn_smoother_measures": 3,
    }
    # Smaller loss spread and gradient change with BN, worse β-smoothness: the metric
    # counts every measure, not only the favourable ones.
    short = [SMOOTH[0]] + [
        probe(0.5, [0.45, 0.4], [0.1, 0.2], gradient_norm=0.01) for _ in STEPS[1:]
    ]
    assert f.metrics(make_results(bn_landscape=short))["bn_smoother_measures"] == 2
    assert f.metrics(make_results(bn_landscape=ROUGH, plain_landscape=SMOOTH))[
        "bn_smoother_measures"
    ] == 0
    # As smooth as the plain network's on average, but spread over the seeds: no
    # measure counts.
    scattered = make_results(
        bn_landscape=tuple(SCATTERED), plain_landscape=scaled_rough(1.0)
    )
    assert f.metrics(scattered)["bn_smoother_measures"] == 0


def test_a_measure_with_no_finite_value_is_null_in_the_metrics():
    results = make_results()
    for run in results["by_seed"]:
        run["plain"]["test_accuracy"] = None
    headline = f.metrics(results)
    assert headline["plain_accuracy"] is None


def test_order_needs_the_means_apart_beyond_the_spread():
    assert f.order([0.98, 0.99, 1.0], [0.5, 0.5, 0.5]) == f.ABOVE
    assert f.order([0.5, 0.5, 0.5], [0.98, 0.99, 1.0]) == f.BELOW
    assert f.order([0.6, 0.9, 1.2], [0.8, 0.8, 0.8]) == f.WITHIN


def test_noisy_bn_level_with_bn_and_ahead_of_plain_agrees_with_the_paper():
    text = f.training_findings(make_results())
    assert "noisy BN is level with BN and ahead of the network without BN" in text
    # mean accuracies after step 0: BN 94%, noisy BN 91.83%, plain 53.33%: 95% kept
    assert "learned faster than the network without BN, keeping 95% of BN's" in text
    assert "As in the paper" in text and "slower than BN" not in text
    # Every accuracy quoted with its spread over the seeds.
    assert "96.50% ± 0.50 with noisy BN" in text
    assert "97.00% ± 0.50 with BN" in text and "90.00% ± 0.50 without BN" in text
    assert "the 10,000 test images" in text


def test_noisy_bn_ahead_of_bn_is_said():
    text = f.training_findings(make_results(noisy=(0.1, 0.95, 0.97, 0.99)))
    assert "noisy BN is ahead of BN and ahead of the network without BN" in text
    assert "As in the paper" in text


def test_noisy_bn_level_with_bn_at_the_end_but_slower_on_the_way_is_said():
    # mean accuracies after step 0: BN 94%, noisy BN 68.83%, plain 53.33%: 38% kept
    text = f.training_findings(make_results(noisy=(0.1, 0.3, 0.8, 0.965)))
    assert "As in the paper" in text
    assert "on the way it is slower than BN (the 38% above)" in text


def test_noisy_bn_slower_only_within_the_spread_is_not_called_slower():
    # Noisy BN's mean accuracy 78.33%, 61% of BN's lead kept, but its seeds spread by
    # 15 points: from BN's 94% it is not apart, from the plain 53.33% it is.
    text = f.training_findings(
        make_results(noisy=(0.1, 0.7, 0.8, 0.85), spread={"noisy_bn": 0.15})
    )
    assert "keeping 61% of BN's lead" in text
    assert "As in the paper" in text and "slower than BN" not in text


def test_noisy_bn_far_behind_bn_disagrees_with_the_paper():
    text = f.training_findings(make_results(noisy=(0.1, 0.1, 0.3, 0.8)))
    assert "noisy BN is behind BN by 17.0 ± 0.0 points and behind the network" in text
    assert "Unlike the paper" in text


def test_noisy_bn_far_behind_bn_within_a_wide_spread_is_level():
    """The same means as above, but seeds 20 points apart: no verdict against it."""
    text = f.training_findings(
        make_results(noisy=(0.1, 0.1, 0.3, 0.8), spread={"noisy_bn": 0.2})
    )
    assert "noisy BN is level with BN and level with the network without BN" in text
    assert "Unlike the paper" not in text
    assert "here it does not" in text


def test_noisy_bn_between_plain_and_bn_is_a_partial_agreement():
    text = f.training_findings(make_results(noisy=(0.1, 0.5, 0.7, 0.8)))
    assert "behind BN by 17.0 ± 0.0 points" in text
    assert "learned faster than the network without BN" in text
    assert "Partly as in the paper" in text


def test_noisy_bn_no_better_than_plain_is_said():
    same = (0.1, 0.1, 0.6, 0.9)
    text = f.training_findings(make_results(noisy=same, bn=same))
    assert "level with the network without BN" in text
    assert "learned about as fast" in text
    assert "keeping" not in text  # BN has no lead to keep
    assert "here it does not" in text


def test_noisy_bn_behind_plain_is_said():
    text = f.training_findings(make_results(noisy=(0.1, 0.05, 0.1, 0.2)))
    assert "behind the network without BN" in text
    assert "learned more slowly than the network without BN" in text


def test_instability_verdict_follows_the_shift():
    unstable = f.instability_findings(make_results())
    assert "by far the most, as in the paper" in unstable
    assert "1.000 ± 0.000 standard deviations with noisy BN" in unstable
    # Shifts 1.0 (noisy BN), 0.1 (without BN) and 0.02 (with BN): each ratio is
    # named with the variant it divides by, the headline one by the most stable
    # (the smaller shift).
    assert (
        "move 50 ± 0 times as much as the most stable of the other two (with BN) and "
        "10 ± 0 times as much as the less stable (without BN)"
    ) in unstable
    # With BN the less stable instead: the divisors follow.
    swapped = f.instability_findings(make_results(bn_drift=0.4, plain_drift=0.1))
    assert (
        "move 10 ± 0 times as much as the most stable of the other two (without BN) "
        "and 2.5 ± 0.0 times as much as the less stable (with BN)"
    ) in swapped
    stable = f.instability_findings(make_results(noisy_drift=0.05))
    assert "Unlike in the paper" in stable
    # More than the others beyond the spread, but not twice the less stable.
    assert "Unlike in the paper" in f.instability_findings(
        make_results(noisy_drift=0.15)
    )


def test_instability_within_the_spread_is_no_verdict():
    # Noisy BN's shift 0.01, 0.2 and 0.6 over the seeds: mean 0.27, against 0.1
    # without BN, but spread by 0.3.
    text = f.instability_findings(make_results(noisy_drift=(0.01, 0.2, 0.6)))
    assert "differ by less than the spread over the seeds" in text
    assert "as the most stable of the other two (with BN)" in text
    assert "as in the paper" not in text and "Unlike" not in text


def test_landscape_verdict_follows_the_measures():
    smooth = f.landscape_findings(make_results())
    assert "By all three measures BN's landscape is the smoother one" in smooth
    assert "as in the paper (its Figure 4)" in smooth
    assert (
        "the loss varied by 0.100 ± 0.000 with BN against 2.500 ± 0.000 without "
        "(smaller with BN; BN's the smaller at 9 of 9 probes)"
    ) in smooth
    rough = f.landscape_findings(
        make_results(bn_landscape=ROUGH, plain_landscape=SMOOTH)
    )
    assert "Unlike the paper's Figure 4" in rough
    assert "(larger with BN; BN's the smaller at 0 of 9 probes)" in rough
    mixed_bn = [SMOOTH[0]] + [probe(0.5, [0.45, 0.4], [2.0, 5.0]) for _ in STEPS[1:]]
    mixed = f.landscape_findings(make_results(bn_landscape=mixed_bn))
    assert (
        "The measures disagree: BN's landscape is the smoother one beyond the spread "
        "by the loss's spread and the β-smoothness, but not by the gradient's change "
        "(larger with BN)"
    ) in mixed


def test_landscape_measures_within_the_spread_favour_neither():
    """BN's landscape as rough as the plain network's on average, its seeds spread
    widely: no measure is decided, and the verdict says so."""
    text = f.landscape_findings(
        make_results(bn_landscape=tuple(SCATTERED), plain_landscape=scaled_rough(1.0))
    )
    assert "(within the spread; " in text
    assert "by any of the three measures" in text
    # One measure decided, the others within the spread.
    smoother_loss = tuple(
        [seed[0]] + [probe(0.5, [0.45, 0.4], p["gradient_changes"], 0.5)
                     for p in seed[1:]]
        for seed in SCATTERED
    )
    partly = f.landscape_findings(
        make_results(bn_landscape=smoother_loss, plain_landscape=scaled_rough(1.0))
    )
    assert (
        "by the loss's spread, but not by the gradient's change (within the spread) "
        "or the β-smoothness (within the spread)"
    ) in partly


def test_a_smaller_gradient_change_with_a_worse_smoothness_is_no_smoother_landscape():
    """The loss and the gradient change less with BN, but per unit of parameter
    change the gradient changes more (a gradient 50 times shorter than without BN):
    not the paper's smoother landscape."""
    short = [SMOOTH[0]] + [
        probe(0.5, [0.45, 0.4], [0.1, 0.2], gradient_norm=0.01) for _ in STEPS[1:]
    ]
    text = f.landscape_findings(make_results(bn_landscape=short))
    assert "as in the paper" not in text
    assert "(larger with BN; BN's the smaller at 0 of 9 probes)." in text
    assert (
        "by the loss's spread and the gradient's change, but not by the β-smoothness"
    ) in text


def test_gradient_lengths_are_compared_beyond_the_spread():
    further = f.landscape_findings(make_results())
    assert "BN's gradients were 2.00 ± 0.00 times as long (ratio of the medians), " \
        "so its points lie further away by that factor" in further
    level = [SMOOTH[0]] + [probe(0.5, [0.9, 3.0], [1.0, 4.0], gradient_norm=1.04)
                           for _ in STEPS[1:]]
    assert "about as long with BN as without (ratio of the medians 0.96 ± 0.00)" in (
        f.landscape_findings(make_results(plain_landscape=level))
    )
    long_plain = [SMOOTH[0]] + [probe(0.5, [0.9, 3.0], [1.0, 4.0], gradient_norm=2.0)
                                for _ in STEPS[1:]]
    assert "0.50 ± 0.00 times as long (ratio of the medians), so its points lie " \
        "closer" in f.landscape_findings(make_results(plain_landscape=long_plain))
    # BN's gradients 0.2, 1 and 2.8 long over the seeds, the plain network's 0.5.
    scattered = tuple(
        [SMOOTH[0]] + [probe(0.5, [0.45, 0.4], [0.1, 0.2], gradient_norm=norm)
                       for _ in STEPS[1:]]
        for norm in (0.2, 1.0, 2.8)
    )
    text = f.landscape_findings(make_results(bn_landscape=scattered))
    assert "2.67 ± 2.66 times as long (ratio of the medians), but the lengths " \
        "differ by less than their spread over the seeds" in text


def test_a_plain_network_on_its_plateau_is_flagged_with_its_seed():
    plateau = [probe(math.log(10), [2.3, 2.3], [0.01, 0.02]) for _ in STEPS]
    text = f.landscape_findings(
        make_results(plain_landscape=(ROUGH, plateau, ROUGH))
    )
    assert "still on its starting plateau" in text
    assert "at step(s) 0, 50, 100, 150 (seed 1)," in text
    assert "plateau" not in f.landscape_findings(make_results())


def test_landscape_table_has_a_row_and_a_verdict_per_measure():
    rows = f.landscape_table(
        make_results(bn_landscape=tuple(SCATTERED), plain_landscape=scaled_rough(1.0))
    ).splitlines()
    assert len(rows) == 2 + len(f.MEASURES)
    assert rows[2] == (
        "| loss's spread | 2.500 ± 2.000 | 2.500 ± 0.000 | 3 of 9 probes "
        "| within the spread |"
    )
    smooth = f.landscape_table(make_results()).splitlines()
    assert smooth[4].endswith("| 9 of 9 probes | smoother with BN |")
    rough = f.landscape_table(make_results(bn_landscape=ROUGH, plain_landscape=SMOOTH))
    assert rough.splitlines()[3].endswith("| smoother without BN |")


def test_probe_table_has_a_row_per_probe():
    rows = f.probe_table(make_results()).splitlines()
    assert len(rows) == 2 + len(STEPS)
    # step 50: BN's loss spread 0.1, the plain network's 2.5
    assert rows[3].startswith("| 50 | 0.100 ± 0.000 | 2.500 ± 0.000 |")


def test_setup_names_the_seeds_and_the_time():
    results = {
        **make_results(),
        "device": "cpu", "keras_version": "3", "backend_version": "0.4",
    }
    results["params"].update(
        learning_rate=0.05, momentum=0.9, noise={"mean": 1.0, "max_scale": 3.0}
    )
    text = f.setup(results)
    assert "for 3 seeds (without BN 3 s, with BN 3 s, with noisy BN 3 s" in text
    assert "Seeds 0, 1, 2: every number below is a mean over them" in text


def test_the_runs_still_rising_at_the_end_are_not_converged():
    caveats = f.caveats(make_results())
    assert (
        "a short run (150 steps of 64), not converged: between the last two probes "
        "(steps 100 and 150) the validation accuracy still rose beyond the spread "
        "(without BN +30.0 ± 0.0 points; with BN +2.0 ± 0.0 points; with noisy BN "
        "+2.5 ± 0.0 points);"
    ) in caveats


def test_runs_level_over_the_last_probes_are_not_called_unconverged():
    results = make_results(
        bn=(0.1, 0.9, 0.97, 0.97), noisy=(0.1, 0.85, 0.965, 0.965),
        plain=(0.1, 0.1, 0.9, 0.9),
    )
    caveats = f.caveats(results)
    assert "not converged" not in caveats
    assert (
        "a short run (150 steps of 64), though no variant's validation accuracy rose "
        "beyond the spread between the last two probes;"
    ) in caveats
    # A rise of 1 point, with seeds 5 points apart: within the spread.
    wide = make_results(bn=(0.1, 0.9, 0.96, 0.97), noisy=(0.1, 0.85, 0.965, 0.965),
                        plain=(0.1, 0.1, 0.9, 0.9), spread={"bn": 0.05})
    assert f.still_rising(wide) == {}


def test_the_rule_of_the_training_verdicts_is_spread_beyond():
    text = f.training_findings(make_results())
    assert (
        "differ by more than 2 standard errors of their difference over the seeds"
        in text
    )


def test_findings_are_the_four_paragraphs():
    paragraphs = f.findings(make_results())
    assert len(paragraphs) == 4
    assert paragraphs[-1].startswith("Caveats: 3 seeds (0, 1, 2)")


def test_probes_csv_has_a_row_per_probe_and_blanks_where_undefined():
    results = make_results()
    for run in results["by_seed"]:
        run["plain"]["val_accuracy"][2] = None  # diverged
    header, *rows = f.plots(results).splitlines()
    means = [
        "plain_val_accuracy", "bn_val_accuracy", "noisy_bn_val_accuracy",
        "plain_input_shift", "bn_input_shift", "noisy_bn_input_shift",
        "plain_loss_spread", "bn_loss_spread",
    ]
    assert header.split(",") == ["training_step", *means, *(f"{m}_std" for m in means)]
    assert len(rows) == len(STEPS)
    # step 0: no shift yet; ROUGH's first probe spreads 0, SMOOTH's 0.2; no spread
    # over the seeds at step 0.
    assert rows[0].split(",")[:9] == ["0", "0.1", "0.1", "0.1", "", "", "", "0", "0.2"]
    assert [float(x) for x in rows[0].split(",")[9:12]] == pytest.approx([0, 0, 0])
    assert rows[2].split(",")[:2] == ["100", ""]
    assert rows[1].split(",")[4:7] == ["0.1", "0.02", "1"]
    assert rows[1].split(",")[10] == "0.005"  # BN's accuracy's spread
