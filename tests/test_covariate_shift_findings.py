"""The numbers and sentences of the covariate-shift report
(`pipeline.experiments.covariate_shift.analysis`): each measure against a hand-made
case, each verdict flipping when the numbers behind it do.

Plain numpy on small hand-made `details` dicts (the structure of the stage's results
file), so nothing here depends on the Keras backend.
"""

import math

import numpy as np
import pytest

from pipeline.experiments.covariate_shift import analysis as f

STEPS = [0, 50, 100, 150]
STEP_SIZES = [0.1, 0.2]


def probe(loss, losses, changes, gradient_norm=1.0):
    return {
        "loss": loss,
        "losses": list(losses),
        "gradient_changes": list(changes),
        "gradient_norm": gradient_norm,
    }


def steady(mean=0.0, std=1.0, drift=0.0, channels=2):
    """Per-probe channel means moving by `drift` per probe, stds fixed."""
    means = [[mean + drift * i] * channels for i in range(len(STEPS))]
    stds = [[std] * channels for _ in STEPS]
    return means, stds


def variant(accuracy, drift, landscape=None):
    means, stds = steady(drift=drift)
    series = {
        "val_accuracy": list(accuracy),
        "train_loss": [None, 0.5, 0.3, 0.2],
        "input_mean": means,
        "input_std": stds,
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


def make_details(
    bn=(0.1, 0.9, 0.95, 0.97),
    noisy=(0.1, 0.85, 0.94, 0.965),
    plain=(0.1, 0.1, 0.6, 0.9),
    noisy_drift=1.0,
    bn_landscape=SMOOTH,
    plain_landscape=ROUGH,
):
    """By default: noisy BN ends level with BN and beats the plain network, its inputs
    move most, and BN's landscape is the smoother one."""
    return {
        "steps": STEPS,
        "validation_images": 2000,
        "training_images": 50_000,
        "probed_layer": "conv2",
        "params": {
            "seed": 0, "steps": 150, "batch_size": 64, "probe_every": 50,
            "step_sizes": STEP_SIZES,
        },
        "bn": variant(bn, 0.02, bn_landscape),
        "plain": variant(plain, 0.1, plain_landscape),
        "noisy_bn": variant(noisy, noisy_drift),
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
    # The starting point counts: a loss that only rises is spread from it.
    assert f.loss_spread(probe(1.0, [1.2, 1.4], [0, 0])) == pytest.approx(0.4)


def test_headline_holds_the_accuracies_the_shift_and_the_landscape_verdict():
    details = make_details()
    headline = f.metrics(details)
    assert headline == {
        "plain_accuracy": 0.9,
        "bn_accuracy": 0.97,
        "noisy_bn_accuracy": 0.965,
        "noisy_bn_input_shift": pytest.approx(1.0),
        # BN's landscape the smoother by all three measures, at every probe
        "bn_smoother_measures": 3,
    }
    # Smaller loss spread and gradient change with BN, worse β-smoothness: the metric
    # counts every measure, not only the favourable one.
    short = [SMOOTH[0]] + [
        probe(0.5, [0.45, 0.4], [0.1, 0.2], gradient_norm=0.01) for _ in STEPS[1:]
    ]
    assert f.metrics(make_details(bn_landscape=short))["bn_smoother_measures"] == 2
    assert f.metrics(make_details(bn_landscape=ROUGH, plain_landscape=SMOOTH))[
        "bn_smoother_measures"
    ] == 0


def test_noisy_bn_level_with_bn_and_ahead_of_plain_agrees_with_the_paper():
    text = f.training_findings(make_details())
    assert "noisy BN is level with BN and ahead of the network without BN" in text
    # mean accuracies after step 0: BN 94%, noisy BN 91.83%, plain 53.33%: 95% kept
    assert "learned faster than the network without BN, keeping 95% of BN's" in text
    assert "As in the paper" in text and "slower than BN" not in text
    assert "96.50% with noisy BN" in text


def test_noisy_bn_level_with_bn_at_the_end_but_slower_on_the_way_is_said():
    # mean accuracies after step 0: BN 94%, noisy BN 68.83%, plain 53.33%: 38% kept
    text = f.training_findings(make_details(noisy=(0.1, 0.3, 0.8, 0.965)))
    assert "As in the paper" in text
    assert "on the way it is slower than BN (the 38% above)" in text


def test_noisy_bn_far_behind_bn_disagrees_with_the_paper():
    text = f.training_findings(make_details(noisy=(0.1, 0.1, 0.3, 0.8)))
    assert "noisy BN is behind BN by 17.0 points and behind the network" in text
    assert "Unlike the paper" in text


def test_noisy_bn_between_plain_and_bn_is_a_partial_agreement():
    text = f.training_findings(make_details(noisy=(0.1, 0.5, 0.7, 0.8)))
    assert "behind BN by 17.0 points" in text
    assert "learned faster than the network without BN" in text
    assert "Partly as in the paper" in text


def test_noisy_bn_no_better_than_plain_is_said():
    same = (0.1, 0.1, 0.6, 0.9)
    text = f.training_findings(make_details(noisy=same, bn=same))
    assert "level with the network without BN" in text
    assert "learned about as fast" in text
    assert "here it does not" in text


def test_instability_verdict_follows_the_shift():
    unstable = f.instability_findings(make_details())
    assert "by far the most, as in the paper" in unstable
    assert "1.000 standard deviations with noisy BN" in unstable
    # Shifts 1.0 (noisy BN), 0.1 (without BN) and 0.02 (with BN): each ratio is
    # named with the variant it divides by.
    assert (
        "move 10 times as much as the less stable of the other two (without BN) and "
        "50 times as much as the more stable (with BN)"
    ) in unstable
    stable = f.instability_findings(make_details(noisy_drift=0.05))
    assert "Unlike in the paper" in stable


def test_landscape_verdict_follows_the_measures():
    smooth = f.landscape_findings(make_details())
    assert "By all three measures BN's landscape is the smoother one" in smooth
    assert "as in the paper (its Figure 4)" in smooth
    assert "smaller with BN at 3 of 3 probes" in smooth
    assert "BN's gradients were 2.0 times as long (median), so its points lie " \
        "further away by that factor" in smooth
    level = [SMOOTH[0]] + [probe(0.5, [0.9, 3.0], [1.0, 4.0], gradient_norm=1.04)
                           for _ in STEPS[1:]]
    assert "about as long with BN as without (median ratio 0.96)" in (
        f.landscape_findings(make_details(plain_landscape=level))
    )
    rough = f.landscape_findings(
        make_details(bn_landscape=ROUGH, plain_landscape=SMOOTH)
    )
    assert "Unlike the paper's Figure 4" in rough
    mixed_bn = [SMOOTH[0]] + [probe(0.5, [0.45, 0.4], [2.0, 5.0]) for _ in STEPS[1:]]
    mixed = f.landscape_findings(make_details(bn_landscape=mixed_bn))
    assert (
        "The measures disagree: BN's landscape is the smoother one at most probes by "
        "the loss's spread and the β-smoothness, but not by the gradient's change"
    ) in mixed


def test_a_smaller_gradient_change_with_a_worse_smoothness_is_no_smoother_landscape():
    """The loss and the gradient change less with BN, but per unit of parameter
    change the gradient changes more (a gradient 50 times shorter than without BN):
    not the paper's smoother landscape."""
    short = [SMOOTH[0]] + [
        probe(0.5, [0.45, 0.4], [0.1, 0.2], gradient_norm=0.01) for _ in STEPS[1:]
    ]
    text = f.landscape_findings(make_details(bn_landscape=short))
    assert "as in the paper" not in text
    assert "(smaller with BN at 0 of 3)." in text
    assert (
        "by the loss's spread and the gradient's change, but not by the β-smoothness"
    ) in text


def test_a_plain_network_on_its_plateau_is_flagged():
    plateau = [probe(math.log(10), [2.3, 2.3], [0.01, 0.02]) for _ in STEPS]
    text = f.landscape_findings(make_details(plain_landscape=plateau))
    assert "still on its starting plateau" in text and "0, 50, 100, 150" in text
    assert "plateau" not in f.landscape_findings(make_details())


def test_findings_are_the_four_paragraphs():
    paragraphs = f.findings(make_details())
    assert len(paragraphs) == 4
    assert paragraphs[-1].startswith("Caveats: one seed (0)")


def test_probes_csv_has_a_row_per_probe_and_blanks_where_undefined():
    details = make_details()
    details["plain"]["val_accuracy"][2] = None  # diverged
    header, *rows = f.plots(details).splitlines()
    assert header.split(",") == [
        "training_step",
        "plain_val_accuracy", "bn_val_accuracy", "noisy_bn_val_accuracy",
        "plain_input_shift", "bn_input_shift", "noisy_bn_input_shift",
        "plain_loss_spread", "bn_loss_spread",
    ]
    assert len(rows) == len(STEPS)
    # step 0: no shift yet; ROUGH's first probe spreads 0, SMOOTH's 0.2
    assert rows[0].split(",") == ["0", "0.1", "0.1", "0.1", "", "", "", "0", "0.2"]
    assert rows[2].split(",")[:2] == ["100", ""]
    assert rows[1].split(",")[4:7] == ["0.1", "0.02", "1"]
