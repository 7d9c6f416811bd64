"""The sentences of the bn_experiment report's "Reading" section
(`pipeline.reporting.text`): each verdict flips when the numbers behind it do.

Plain numpy on small hand-made `details` dicts (the structure of the experiment's
results file), so nothing here depends on the Keras backend.
"""

import math

import numpy as np
import pytest

from pipeline.experiments.bn_experiment import analysis as findings
from pipeline.reporting import text as formatting

MLP_STEPS = [0, 100, 200, 300, 400]
CNN_STEPS = [50, 100, 150, 200]
RATES = [0.001, 0.01]
# A healthy CNN run: it learns and keeps what it learned.
GOOD = [0.90, 0.95, 0.97, 0.98]


def band(median, width):
    """Percentiles "15", "50" and "85" around `median`, `width` apart."""
    median, width = np.asarray(median, float), np.asarray(width, float)
    return {
        "15": list(median - width / 2),
        "50": list(median),
        "85": list(median + width / 2),
    }


def cnn_run(rate, batch_norm, val_accuracy=GOOD, val_loss=None, loss=None):
    val_loss = [0.3, 0.15, 0.1, 0.07] if val_loss is None else val_loss
    return {
        "learning_rate": rate,
        "batch_norm": batch_norm,
        "val_accuracy": list(val_accuracy),
        "val_loss": list(val_loss),
        "loss": list(val_loss if loss is None else loss),
        "wall_seconds": 1.0,
    }


def make_details(
    bn=(0.1, 0.95, 0.97, 0.98, 0.985),
    plain=(0.1, 0.90, 0.95, 0.97, 0.975),
    bn_percentiles=None,
    plain_percentiles=None,
    runs=None,
    test_images=10_000,
):
    """A `details` dict as the stage writes it, for a few steps: by default BN reaches
    each accuracy level first and ends ahead, its sigmoid input holds still while the
    plain one's drifts, and every CNN run trains."""
    steps = len(MLP_STEPS)
    if bn_percentiles is None:
        bn_percentiles = band([0.3, 0.0, 0.0, 0.0, 0.0], [0.1, 2.0, 2.0, 2.0, 2.0])
    if plain_percentiles is None:
        plain_percentiles = band([0.3, -0.5, -1.0, -1.5, -2.0], [0.1, 1, 2, 3, 4])
    if runs is None:
        runs = [cnn_run(rate, bn) for rate in RATES for bn in (True, False)]
    return {
        "backend": "jax",
        "device": "cpu",
        "keras_version": "3",
        "backend_version": "0",
        "wall_seconds": 10.0,
        "mlp": {
            "steps": MLP_STEPS,
            "bn": list(bn),
            "plain": list(plain),
            "percentiles": {"bn": bn_percentiles, "plain": plain_percentiles},
            "bn_gamma": list(np.linspace(1.0, 1.5, steps)),
            "bn_beta": list(np.linspace(0.0, -0.2, steps)),
            "unit": 0,
            "test_images": test_images,
            "training_images": 60_000,
            "wall_seconds": {"bn": 2.0, "plain": 1.0},
        },
        "cnn": {
            "steps": CNN_STEPS,
            "runs": runs,
            "training_images": 57_600,
            "validation_images": 2_000,
        },
        "params": {
            "seed": 0,
            "mlp": {"steps": MLP_STEPS[-1], "eval_every": 100, "unit": 0},
            "cnn": {"learning_rates": RATES, "steps": CNN_STEPS[-1], "eval_every": 50},
        },
    }


def line_starting(lines, prefix):
    (line,) = [line for line in lines if line.startswith(prefix)]
    return line


def figure1_verdict(details):
    """The sentence after the accuracy levels: does BN train faster, end higher?"""
    return findings.figure1_findings(details)[3]


def learning_rate_claim(details):
    return line_starting(findings.cnn_findings(details), "Rates at which")


# Helpers.


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.98346, "98.35%"), (1.0, "100.00%"), (None, "n/a"), (math.nan, "n/a")],
)
def test_percent(value, text):
    assert formatting.percent(value) == text


@pytest.mark.parametrize(
    ("value", "text"), [(2.302585, "2.303"), (None, "n/a"), (math.inf, "n/a")]
)
def test_decimal(value, text):
    assert formatting.decimal(value) == text


def test_standard_error_of_an_accuracy():
    assert formatting.standard_error(0.9, 10_000) == pytest.approx(0.003)
    # a perfect score still has a (tiny) positive error, so a zero gap is "within" it
    assert 0 < formatting.standard_error(1.0, 100) < 1e-6


def test_first_step_reaching_a_level():
    accuracy = np.array([0.1, np.nan, 0.96, 0.95, 0.99])
    assert findings.first_step_reaching(MLP_STEPS, accuracy, 0.95) == 200
    assert findings.first_step_reaching(MLP_STEPS, accuracy, 0.99) == 400
    assert findings.first_step_reaching(MLP_STEPS, accuracy, 0.995) is None


def test_accuracy_levels_stop_at_the_best_accuracy():
    assert findings.accuracy_levels(0.975) == [0.9, 0.95, 0.97]
    assert findings.accuracy_levels(0.8567) == [0.857]


def test_drift_summary_from_the_first_evaluation_after_step_0():
    # step 0's wide band at 9 is left out
    drift = findings.drift_summary(band([9, 1, 3, 2], [9, 1, 1, 5]), start=1)
    assert (drift.start, drift.end, drift.range) == (1, 2, 2)
    assert (drift.width_start, drift.width_end) == (1, 5)
    assert drift.all_range == 3  # the 15th and the 85th percentile both moved by 3


# Figure 1a.


def test_bn_reaching_the_accuracy_levels_sooner_trains_faster():
    lines = findings.figure1_findings(make_details())
    assert lines[1] == (
        "- 97% test accuracy: with BN at step 200, without BN at step 300."
    )
    assert lines[2] == (
        "- 98% test accuracy: with BN at step 300, without BN never in 400 steps."
    )
    assert figure1_verdict(make_details()).startswith(
        "BN trains faster, as in the paper, and ends higher (+1.00 points"
    )


def test_bn_reaching_the_accuracy_levels_later_does_not_train_faster():
    details = make_details(
        bn=(0.1, 0.90, 0.95, 0.97, 0.98), plain=(0.1, 0.95, 0.97, 0.98, 0.98)
    )
    verdict = figure1_verdict(details)
    assert verdict.startswith("BN does not train faster here, unlike the paper")
    assert "as in the paper" not in verdict


def test_bn_reaching_one_level_sooner_and_one_later_is_partly_as_in_the_paper():
    details = make_details(
        bn=(0.1, 0.97, 0.97, 0.97, 0.98), plain=(0.1, 0.90, 0.97, 0.98, 0.98)
    )
    assert figure1_verdict(details).startswith(
        "BN reaches some accuracy levels sooner and others not, only partly as in the "
        "paper"
    )


@pytest.mark.parametrize(("bn_final", "plain_final"), [(0.982, 0.98), (0.98, 0.982)])
def test_a_final_gap_within_noise_is_not_resolved(bn_final, plain_final):
    # 0.2 points: more than one standard error of 10,000 test images at 98% (0.13),
    # less than two
    bn, plain = (0.1, 0.95, 0.97, 0.98, bn_final), (0.1, 0.90, 0.95, 0.97, plain_final)
    verdict = figure1_verdict(make_details(bn=bn, plain=plain))
    assert verdict.endswith(
        f"; at the end the two are within 0.27 points (twice the standard error of "
        f"10,000 test images) of each other ({100 * (bn_final - plain_final):+.2f}), "
        f"so the final advantage the paper's figure shows is not resolved here."
    )
    # on a hundred times as many test images the same gap is resolved
    many = figure1_verdict(make_details(bn=bn, plain=plain, test_images=1_000_000))
    assert "not resolved" not in many
    assert "ends higher" in many


def test_reaching_the_levels_at_the_same_steps_is_not_faster():
    same = (0.1, 0.95, 0.97, 0.98, 0.985)
    assert figure1_verdict(make_details(bn=same, plain=same)).startswith(
        "BN does not train faster here, unlike the paper; at the end the two are within"
    )


def test_neither_reaching_a_rounded_up_best_accuracy_is_not_faster():
    # below 90% the only level asked about is the best accuracy rounded to 0.1 points,
    # here upwards, so that neither network reaches it
    lines = findings.figure1_findings(
        make_details(bn=(0.1, 0.8, 0.85, 0.8567, 0.85), plain=(0.1, 0.8, 0.8, 0.8, 0.8))
    )
    assert lines[1] == (
        "- 85.7% test accuracy: with BN never in 400 steps, without BN never in 400 "
        "steps."
    )
    assert lines[2].startswith("BN does not train faster here, unlike the paper")


def test_a_final_gap_beyond_noise_in_favour_of_the_plain_network():
    details = make_details(
        bn=(0.1, 0.95, 0.97, 0.98, 0.95), plain=(0.1, 0.90, 0.95, 0.97, 0.975)
    )
    assert figure1_verdict(details).endswith(
        "; the network without BN ends higher (-2.50 points), unlike the paper."
    )


def test_figure_1a_quotes_the_first_tenth_and_last_evaluation():
    first = findings.figure1_findings(make_details())[0]
    assert first == (
        "**Figure 1a.** Test accuracy with BN vs without: at step 0: 10.00% vs 10.00%; "
        "at step 100: 95.00% vs 90.00%; at step 400: 98.50% vs 97.50%."
    )


# Figures 1b/1c.


def test_a_steady_bn_input_against_a_drifting_plain_one_is_as_in_the_paper():
    text = line_starting(findings.figure1_findings(make_details()), "**Figures 1b/1c")
    assert text.startswith(
        "**Figures 1b/1c.** Without BN the distribution drifts; with BN it is steadier "
        "(largest percentile movement 0.00 vs 3.00), as in the paper."
    )
    assert "γ went from 1.12 to 1.50 and its β from -0.05 to -0.20" in text
    assert "not frozen" not in text
    conclusion = findings.figure1_findings(make_details())[-1]
    assert conclusion.startswith("This shows that BN reduces the drift")


def test_a_bn_input_drifting_like_the_plain_one_is_unlike_the_paper():
    drifting = band([0.3, -0.5, -1.0, -1.5, -2.0], [0.1, 1, 2, 3, 4])
    details = make_details(bn_percentiles=drifting, plain_percentiles=drifting)
    text = line_starting(findings.figure1_findings(details), "**Figures 1b/1c")
    assert text.startswith(
        "**Figures 1b/1c.** Unlike the paper, the BN network's sigmoid input moves "
        "more than half as much as the plain one's (largest percentile movement 3.00 "
        "vs 3.00)."
    )
    # its band widened from 1 to 4: more than a quarter
    assert " So the BN input is not frozen: its 15th–85th band went from 1.00 to " in (
        text
    )
    # No conclusion the numbers above contradict.
    lines = findings.figure1_findings(details)
    assert not any("This shows that BN reduces the drift" in line for line in lines)
    assert lines[-1].startswith("So this run does not show BN reducing the drift")


def test_a_bn_input_moving_more_than_half_as_much_is_not_steadier():
    # the plain network's percentiles move by 3.00, BN's by 1.80
    bn = band([0.3, 0.0, 0.6, 1.2, 1.8], [0.1, 2.0, 2.0, 2.0, 2.0])
    text = line_starting(
        findings.figure1_findings(make_details(bn_percentiles=bn)), "**Figures 1b/1c"
    )
    assert text.startswith(
        "**Figures 1b/1c.** Unlike the paper, the BN network's sigmoid input moves "
        "more than half as much as the plain one's (largest percentile movement 1.80 "
        "vs 3.00)."
    )


def test_drift_sentences_quote_the_medians_and_bands():
    lines = findings.figure1_findings(make_details())
    assert line_starting(lines, "- Without BN") == (
        "- Without BN, the median input to sigmoid 0 went from -0.50 (step 100) to "
        "-2.00 (step 400), spanning 1.50 over training; the 15th–85th percentile band "
        "went from 1.00 to 4.00 wide (largest movement of any of the three "
        "percentiles: 3.00)."
    )


# The CNN.


def runs_with(rate, batch_norm, **changes):
    """The default runs, one of them changed."""
    return [
        cnn_run(r, bn, **changes) if (r, bn) == (rate, batch_norm) else cnn_run(r, bn)
        for r in RATES
        for bn in (True, False)
    ]


def rate_line(details, rate):
    return line_starting(findings.cnn_findings(details), f"- Learning rate {rate:g}:")


@pytest.mark.parametrize("missing", [None, math.nan])
def test_a_non_finite_loss_is_divergence(missing):
    details = make_details(
        runs=runs_with(0.01, False, loss=[0.5, 3.0, missing, missing])
    )
    assert rate_line(details, 0.01).endswith(
        " The network without BN diverged: its loss was no longer finite from step 150."
    )
    assert "diverged" not in rate_line(details, 0.001)


def test_a_non_finite_validation_loss_is_divergence_too():
    details = make_details(
        runs=runs_with(
            0.001, True, val_loss=[0.3, None, None, None], loss=[0.3, 0.2, 0.1, 0.1]
        )
    )
    line = rate_line(details, 0.001)
    assert "(loss n/a vs 0.070)" in line
    assert line.endswith(
        " The network with BN diverged: its loss was no longer finite from step 100."
    )


def test_chance_level_accuracy_is_a_stall():
    chance = [0.11, 0.10, 0.09, 0.1045]
    details = make_details(
        runs=runs_with(0.01, False, val_accuracy=chance, val_loss=[2.302] * 4)
    )
    assert rate_line(details, 0.01).endswith(
        " The network without BN never left chance level (best 11.00%, final loss "
        "2.302; ln 10 = 2.303 is the loss of a uniform guess over the 10 digits): "
        "it stalled."
    )


def test_a_late_drop_in_accuracy_is_reported():
    details = make_details(
        runs=runs_with(0.001, True, val_accuracy=[0.9, 0.97, 0.95, 0.8])
    )
    assert rate_line(details, 0.001).endswith(
        " The network with BN got worse late in the run (best 97.00%, final 80.00%)."
    )


def test_a_healthy_run_adds_no_remark():
    assert rate_line(make_details(), 0.001) == (
        "- Learning rate 0.001: validation accuracy after 200 steps 98.00% with BN vs "
        "98.00% without (loss 0.070 vs 0.070); after 50 steps 90.00% vs 90.00%."
    )


def test_bn_training_at_a_rate_where_plain_does_not_supports_the_paper():
    chance = [0.11, 0.10, 0.09, 0.10]
    details = make_details(runs=runs_with(0.01, False, val_accuracy=chance))
    claim = learning_rate_claim(details)
    assert "with BN 0.001, 0.01; without BN 0.001." in claim
    assert claim.endswith(
        "BN allows higher learning rates; that holds here: BN trains at a rate where "
        "the network without it does not. Where both train, BN's lead in validation "
        "accuracy after 50 steps was +0.0 points at 0.001; by step 200 the gap is "
        "within noise at 0.001. The best final accuracy is at rate 0.001 with BN and "
        "0.001 without."
    )


def test_a_run_ending_at_or_below_half_did_not_train():
    # it left chance level (best 40%) but ends at 30%: not a rate the network trains at
    details = make_details(
        runs=runs_with(0.01, False, val_accuracy=[0.2, 0.4, 0.35, 0.3])
    )
    claim = learning_rate_claim(details)
    assert claim.startswith(
        "Rates at which the network trained (final validation accuracy above 50%): "
        "with BN 0.001, 0.01; without BN 0.001."
    )
    assert "that holds here" in claim


def test_both_training_at_the_same_rates_does_not_show_higher_rates():
    claim = learning_rate_claim(make_details())
    assert "these runs do not show it: both train at the same rates." in claim
    assert "that holds here" not in claim
    # every rate trains with and without BN, and the final gap is 0: within noise
    assert "the gap is within noise at 0.001, 0.01." in claim
    assert "+0.0 points at 0.001, +0.0 points at 0.01" in claim


def test_plain_training_at_a_higher_rate_than_bn_does_not_show_it():
    diverged = [0.5, None, None, None]
    details = make_details(
        runs=runs_with(0.01, True, val_accuracy=[0.5, 0.1, 0.1, 0.1], loss=diverged)
    )
    claim = learning_rate_claim(details)
    assert "with BN 0.001; without BN 0.001, 0.01." in claim
    assert "BN allows higher learning rates; these runs do not show it. Where" in claim


def test_bn_and_plain_training_at_different_rates_does_not_show_it():
    chance = [0.11, 0.10, 0.09, 0.10]
    runs = [
        cnn_run(0.001, True),
        cnn_run(0.001, False, val_accuracy=chance),
        cnn_run(0.01, True, val_accuracy=chance),
        cnn_run(0.01, False),
    ]
    claim = learning_rate_claim(make_details(runs=runs))
    assert "with BN 0.001; without BN 0.01." in claim
    assert "BN allows higher learning rates; these runs do not show it. The best" in (
        claim
    )


def test_no_rate_training_is_said_as_none():
    chance = [0.11, 0.10, 0.09, 0.10]
    runs = [
        cnn_run(r, bn, val_accuracy=chance) for r in RATES for bn in (True, False)
    ]
    claim = learning_rate_claim(make_details(runs=runs))
    assert "with BN none; without BN none." in claim
    assert "Where both train" not in claim


def test_the_overall_cnn_verdict_sorts_the_rates_by_final_gap():
    runs = [
        cnn_run(0.001, True, val_accuracy=[0.9, 0.95, 0.97, 0.99]),
        cnn_run(0.001, False, val_accuracy=[0.9, 0.95, 0.97, 0.95]),
        cnn_run(0.01, True, val_accuracy=[0.9, 0.95, 0.97, 0.90]),
        cnn_run(0.01, False, val_accuracy=[0.9, 0.95, 0.97, 0.98]),
    ]
    overall = line_starting(findings.cnn_findings(make_details(runs=runs)), "Overall")
    assert overall == (
        "Overall: BN ends clearly ahead at learning rate(s) 0.001; the network without "
        "BN ends ahead at 0.01 (against the paper's claim that BN helps at every rate)."
    )
    tied = line_starting(findings.cnn_findings(make_details()), "Overall")
    assert tied == (
        "Overall: the two are within twice the standard error of 2,000 validation "
        "images at 0.001, 0.01."
    )


@pytest.mark.parametrize(
    ("bn_final", "plain_final"),
    # 1.5 points at 60%, 2 points at 10% (noise counted as at 50% at least): less than
    # two standard errors of 2,000 validation images, more than one
    [(0.6, 0.585), (0.1, 0.08)],
)
def test_a_cnn_gap_within_twice_the_standard_error_is_a_tie(bn_final, plain_final):
    runs = [
        cnn_run(0.001, True, val_accuracy=[0.05, 0.06, 0.07, bn_final]),
        cnn_run(0.001, False, val_accuracy=[0.05, 0.06, 0.07, plain_final]),
        cnn_run(0.01, True),
        cnn_run(0.01, False),
    ]
    tied = line_starting(findings.cnn_findings(make_details(runs=runs)), "Overall")
    assert tied == (
        "Overall: the two are within twice the standard error of 2,000 validation "
        "images at 0.001, 0.01."
    )


def test_the_caveats_quote_the_noise_of_both_experiments():
    caveats = findings.cnn_findings(make_details())[-1]
    assert caveats == (
        "Caveats: one seed; the CNN runs are short (200 steps, not converged), so they "
        "show early training; differences below about twice the standard error are "
        "noise: ≈0.6 points at 98% (the median final accuracy of the CNN runs that "
        "trained) on 2,000 validation images, ≈0.2 points at 98% (Figure 1's final "
        "accuracy) on 10,000 test images."
    )
