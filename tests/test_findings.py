"""The sentences of the bn_experiment report's "Reading" section, its metrics and
tables (`pipeline.experiments.bn_experiment.analysis`): each verdict flips when the
numbers behind it, over the seeds, do.

Plain numpy on small hand-made results dicts (the structure of the experiment's
results file: `seeds` and one run per seed in `by_seed`), so nothing here depends on
the Keras backend.
"""

import math

import numpy as np
import pytest

from pipeline.experiments.bn_experiment import analysis as findings
from pipeline.reporting import text as formatting
from pipeline.reporting.spread import spread_number, spread_points

MLP_STEPS = [0, 100, 200, 300, 400]
CNN_STEPS = [50, 100, 150, 200]
RATES = [0.001, 0.01]
SEEDS = [0, 1, 2]
# A healthy CNN run: it learns and keeps what it learned.
GOOD = [0.90, 0.95, 0.97, 0.98]
CHANCE = [0.11, 0.10, 0.09, 0.10]
# Noise words of the verdicts on 10,000 test images.
TEST_NOISE = (
    "2 standard errors of the difference over the seeds or of an accuracy on 10,000 "
    "test images, whichever is larger"
)


def band(median, width):
    """Percentiles "15", "50" and "85" around `median`, `width` apart."""
    median, width = np.asarray(median, float), np.asarray(width, float)
    return {
        "15": list(median - width / 2),
        "50": list(median),
        "85": list(median + width / 2),
    }


STILL = band([0.3, 0.0, 0.0, 0.0, 0.0], [0.1, 2.0, 2.0, 2.0, 2.0])
DRIFTING = band([0.3, -0.5, -1.0, -1.5, -2.0], [0.1, 1, 2, 3, 4])


def cnn_run(rate, batch_norm, val_accuracy=GOOD, val_loss=None, loss=None,
            test_accuracy=None):
    """One CNN run; its test accuracy is its final validation accuracy unless given
    (a diverged run's is 0.098: its logits are NaN, argmax 0)."""
    val_loss = [0.3, 0.15, 0.1, 0.07] if val_loss is None else val_loss
    if test_accuracy is None:
        test_accuracy = val_accuracy[-1] if val_accuracy[-1] is not None else 0.098
    return {
        "learning_rate": rate,
        "batch_norm": batch_norm,
        "val_accuracy": list(val_accuracy),
        "val_loss": list(val_loss),
        "loss": list(val_loss if loss is None else loss),
        "accuracy": list(val_accuracy),
        "test_accuracy": test_accuracy,
        "wall_seconds": 1.0,
    }


def seed_run(
    seed=0,
    bn=(0.1, 0.95, 0.97, 0.98, 0.985),
    plain=(0.1, 0.90, 0.95, 0.97, 0.975),
    bn_percentiles=STILL,
    plain_percentiles=DRIFTING,
    runs=None,
    test_images=10_000,
    gamma_end=1.5,
):
    """One seed's run as the stage writes it: by default BN reaches each accuracy
    level first and ends ahead, its sigmoid input holds still while the plain one's
    drifts, and every CNN run trains."""
    if runs is None:
        runs = [cnn_run(rate, bn) for rate in RATES for bn in (True, False)]
    return {
        "seed": seed,
        "mlp": {
            "steps": MLP_STEPS,
            "bn": list(bn),
            "plain": list(plain),
            "percentiles": {"bn": bn_percentiles, "plain": plain_percentiles},
            "bn_gamma": list(np.linspace(1.0, gamma_end, len(MLP_STEPS))),
            "bn_beta": list(np.linspace(0.0, -0.2, len(MLP_STEPS))),
            "unit": 0,
            "test_images": test_images,
            "training_images": 60_000,
            "loss": {"bn": [1.0] * 5, "plain": [1.0] * 5},
            "wall_seconds": {"bn": 2.0, "plain": 1.0},
        },
        "cnn": {
            "steps": CNN_STEPS,
            "runs": runs,
            "training_images": 57_600,
            "validation_images": 2_000,
            "test_images": test_images,
        },
        "wall_seconds": 3.0,
    }


def results_of(*by_seed, rates=RATES):
    """The results file of these seeds' runs."""
    return {
        "backend": "jax",
        "device": "cpu",
        "keras_version": "3",
        "backend_version": "0",
        "wall_seconds": 10.0,
        "params": {
            "mlp": {
                "steps": MLP_STEPS[-1], "eval_every": 100, "unit": 0, "batch_size": 60,
                "learning_rate": 0.5, "init_stddev": 0.1, "limit": None,
            },
            "cnn": {
                "learning_rates": list(rates), "steps": CNN_STEPS[-1],
                "eval_every": 50, "batch_size": 64, "validation": 2_000, "limit": None,
            },
        },
        "seeds": [run["seed"] for run in by_seed],
        "by_seed": list(by_seed),
    }


def make_results(**run):
    """Three seeds, each with the run `seed_run(**run)`."""
    return results_of(*(seed_run(seed, **run) for seed in SEEDS))


def seeds_differing(key, values, **run):
    """Three seeds whose `key` is `values[i]` in seed i, the rest as `run`."""
    return results_of(*(
        seed_run(seed, **{**run, key: value})
        for seed, value in zip(SEEDS, values, strict=True)
    ))


def line_starting(lines, prefix):
    (line,) = [line for line in lines if line.startswith(prefix)]
    return line


def figure1_verdict(results):
    """The sentence after the accuracy levels: does BN train faster, end higher?"""
    return findings.figure1_findings(results)[3]


def learning_rate_claim(results):
    return line_starting(findings.cnn_findings(results), "Rates at which")


def overall(results):
    return line_starting(findings.cnn_findings(results), "Overall")


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


def test_one_accuracy_error_at_a_measured_accuracy():
    assert formatting.one_accuracy_error(0.99, 10_000, "the baseline's mean") == (
        "One accuracy of 99.0% (the baseline's mean) on 10,000 test images has a "
        "standard error of ≈0.10 points."
    )
    assert formatting.one_accuracy_error(math.nan, 10_000, "the baseline's mean") == ""


def test_stale_weight_only_above_stale():
    assert formatting.stale_weight(0.99, 100) == pytest.approx(0.99**100)
    assert formatting.stale_weight(0.9, 100) is None  # 2.7e-5
    assert formatting.stale_weight(0.99, 459) is None  # 0.0099: not above 1%


def test_small_text_helpers():
    assert formatting.joined(["a"]) == "a"
    assert formatting.joined(["a", "b"]) == "a and b"
    assert formatting.joined(["a", "b", "c"]) == "a, b and c"
    assert formatting.family(["group_norm", "bn", "renorm"], ("renorm", "bn")) == [
        "bn", "renorm"]
    results = {"by_seed": [{"steps": 1875}, {"steps": 1875}]}
    assert formatting.shared_count(results, "steps") == "1,875"
    results["by_seed"].append({"steps": 2000})
    assert formatting.shared_count(results, "steps") == "1,875–2,000"


def test_standard_error_of_an_accuracy():
    assert formatting.standard_error(0.9, 10_000) == pytest.approx(0.003)
    # a perfect score still has a (tiny) positive error, so a zero gap is "within" it
    assert 0 < formatting.standard_error(1.0, 100) < 1e-6


def test_numbers_over_seeds_carry_their_spread():
    assert spread_number([1.0, 2.0, 3.0], 2) == "2.00 ± 1.00"
    assert spread_number([0.05, None, 0.07], 3) == "0.060 ± 0.014"
    assert spread_number([None]) == "n/a"
    assert spread_number([0.46, 0.44], 1, 100, "%") == "45.0% ± 1.4"
    assert spread_points([0.01, 0.03]) == "+2.0 ± 1.4 points"
    assert spread_points([-0.01, -0.03], signed=False) == "-2.0 ± 1.4 points"


def test_first_step_reaching_a_level():
    accuracy = np.array([0.1, np.nan, 0.96, 0.95, 0.99])
    assert findings.first_step_reaching(MLP_STEPS, accuracy, 0.95) == 200
    assert findings.first_step_reaching(MLP_STEPS, accuracy, 0.99) == 400
    assert findings.first_step_reaching(MLP_STEPS, accuracy, 0.995) is None


def test_accuracy_levels_stop_at_the_best_accuracy():
    assert findings.accuracy_levels(0.975) == [0.9, 0.95, 0.97]
    assert findings.accuracy_levels(0.8567) == [0.857]


@pytest.mark.parametrize(
    ("reached", "text"),
    [
        ([200, 200, 200], "at step 200 in every seed"),
        ([None, None, None], "never in 400 steps in every seed"),
        ([200], "at step 200"),
        ([200, 1_300, None], "at step 200, 1,300, never (one per seed)"),
    ],
)
def test_when_each_seed_reached_a_level(reached, text):
    assert findings.steps_text(reached, 400) == text


@pytest.mark.parametrize(
    ("bn", "plain", "verdict"),
    [
        ([100, 200, 300], [200, None, 400], "sooner"),
        ([200, None, 300], [200, 100, 100], "none"),
        ([None, None, None], [None, None, None], "none"),
        ([100, 300, 300], [200, 200, 400], "some"),
    ],
)
def test_a_level_is_reached_sooner_only_if_in_every_seed(bn, plain, verdict):
    assert findings.level_verdict(bn, plain) == verdict


def test_the_noise_of_a_gap_is_the_seeds_or_the_images_whichever_is_larger():
    # the same in every seed: only the test images' standard error is left
    gap, noise = findings.gap_and_noise([0.99] * 3, [0.98] * 3, 10_000)
    assert gap == pytest.approx(0.01)
    assert noise == pytest.approx(2 * formatting.standard_error(0.99, 10_000))
    # spread over the seeds larger than that
    gap, noise = findings.gap_and_noise([0.97, 0.99, 1.0], [0.98] * 3, 10_000)
    assert noise == pytest.approx(2 * np.std([0.97, 0.99, 1.0], ddof=1) / np.sqrt(3))


def test_drift_summary_from_the_first_evaluation_after_step_0():
    # step 0's wide band at 9 is left out
    drift = findings.drift_summary(band([9, 1, 3, 2], [9, 1, 1, 5]), start=1)
    assert (drift.start, drift.end, drift.range) == (1, 2, 2)
    assert (drift.width_start, drift.width_end) == (1, 5)
    assert drift.all_range == 3  # the 15th and the 85th percentile both moved by 3


# Figure 1a.


def test_bn_reaching_the_accuracy_levels_sooner_trains_faster():
    lines = findings.figure1_findings(make_results())
    assert lines[1] == (
        "- 97% test accuracy: with BN at step 200 in every seed, without BN at step "
        "300 in every seed."
    )
    assert lines[2] == (
        "- 98% test accuracy: with BN at step 300 in every seed, without BN never in "
        "400 steps in every seed."
    )
    assert figure1_verdict(make_results()) == (
        "BN trains faster (it reaches these levels sooner in every seed), as in the "
        "paper, and ends higher (+1.00 points, beyond the noise of 0.24: "
        f"{TEST_NOISE}), as in the paper."
    )


def test_bn_reaching_the_accuracy_levels_later_does_not_train_faster():
    results = make_results(
        bn=(0.1, 0.90, 0.95, 0.97, 0.98), plain=(0.1, 0.95, 0.97, 0.98, 0.98)
    )
    verdict = figure1_verdict(results)
    assert verdict.startswith(
        "BN does not train faster here (it reaches none of these levels sooner, in "
        "any seed), unlike the paper"
    )
    assert "as in the paper" not in verdict


def test_bn_reaching_one_level_sooner_and_one_later_is_partly_as_in_the_paper():
    results = make_results(
        bn=(0.1, 0.97, 0.97, 0.97, 0.98), plain=(0.1, 0.90, 0.97, 0.98, 0.98)
    )
    assert figure1_verdict(results).startswith(
        "BN reaches some of these levels sooner and others not, or not in every seed: "
        "only partly as in the paper"
    )


def test_bn_sooner_in_some_seeds_only_is_partly_as_in_the_paper():
    # seed 2: without BN as fast as with it
    results = seeds_differing(
        "plain",
        [(0.1, 0.90, 0.95, 0.97, 0.975)] * 2 + [(0.1, 0.95, 0.97, 0.98, 0.975)],
    )
    lines = findings.figure1_findings(results)
    assert lines[1] == (
        "- 97% test accuracy: with BN at step 200 in every seed, without BN at step "
        "300, 300, 200 (one per seed)."
    )
    assert figure1_verdict(results).startswith("BN reaches some of these levels")
    assert not any(line.startswith("BN trains faster") for line in lines)


@pytest.mark.parametrize(("bn_final", "plain_final"), [(0.982, 0.98), (0.98, 0.982)])
def test_a_final_gap_within_the_images_noise_is_not_resolved(bn_final, plain_final):
    # 0.2 points: more than one standard error of 10,000 test images at 98% (0.13),
    # less than two; the same in every seed
    bn, plain = (0.1, 0.95, 0.97, 0.98, bn_final), (0.1, 0.90, 0.95, 0.97, plain_final)
    verdict = figure1_verdict(make_results(bn=bn, plain=plain))
    assert verdict.endswith(
        f"; at the end the two are within the noise of each other "
        f"({100 * (bn_final - plain_final):+.2f} points against 0.27: {TEST_NOISE}), "
        f"so the final advantage the paper's figure shows is not resolved here."
    )
    # on a hundred times as many test images the same gap is resolved
    many = figure1_verdict(make_results(bn=bn, plain=plain, test_images=1_000_000))
    assert "not resolved" not in many
    assert ("and ends higher" in many) == (bn_final > plain_final)
    assert ("without BN ends higher" in many) == (bn_final < plain_final)


def test_a_final_gap_within_the_spread_over_seeds_is_not_resolved():
    # BN ends 1 point ahead on average, 4 times the test images' noise, but its final
    # accuracy varies by 1 point between seeds: 2 standard errors of the difference
    # are 1.29 points
    finals = [(0.1, 0.95, 0.97, 0.98, final) for final in (0.975, 0.985, 0.995)]
    plains = [(0.1, 0.90, 0.95, 0.97, final) for final in (0.97, 0.975, 0.98)]
    results = results_of(*(
        seed_run(seed, bn=bn, plain=plain)
        for seed, bn, plain in zip(SEEDS, finals, plains, strict=True)
    ))
    verdict = figure1_verdict(results)
    assert "(+1.00 points against 1.29:" in verdict
    assert verdict.endswith("is not resolved here.")
    assert "ends higher" not in verdict


def test_reaching_the_levels_at_the_same_steps_is_not_faster():
    same = (0.1, 0.95, 0.97, 0.98, 0.985)
    assert figure1_verdict(make_results(bn=same, plain=same)).startswith(
        "BN does not train faster here (it reaches none of these levels sooner, in "
        "any seed), unlike the paper; at the end the two are within the noise"
    )


def test_neither_reaching_a_rounded_up_best_accuracy_is_not_faster():
    # below 90% the only level asked about is the best mean accuracy rounded to 0.1
    # points, here upwards, so that neither network reaches it
    lines = findings.figure1_findings(
        make_results(
            bn=(0.1, 0.8, 0.85, 0.8567, 0.85), plain=(0.1, 0.8, 0.8, 0.8, 0.8)
        )
    )
    assert lines[1] == (
        "- 85.7% test accuracy: with BN never in 400 steps in every seed, without BN "
        "never in 400 steps in every seed."
    )
    assert lines[2].startswith("BN does not train faster here")


def test_a_final_gap_beyond_noise_in_favour_of_the_plain_network():
    results = make_results(
        bn=(0.1, 0.95, 0.97, 0.98, 0.95), plain=(0.1, 0.90, 0.95, 0.97, 0.975)
    )
    assert figure1_verdict(results).endswith(
        "; the network without BN ends higher (-2.50 points, beyond the noise of "
        "0.31), unlike the paper."
    )


def test_figure_1a_quotes_the_first_tenth_and_last_evaluation_over_the_seeds():
    results = seeds_differing(
        "bn", [(0.1, 0.95, 0.97, 0.98, final) for final in (0.98, 0.985, 0.99)]
    )
    assert findings.figure1_findings(results)[0] == (
        "**Figure 1a.** Test accuracy with BN vs without, mean ± standard deviation in "
        "points over 3 seeds (0, 1, 2): at step 0: 10.00% ± 0.00 vs 10.00% ± 0.00; "
        "at step 100: 95.00% ± 0.00 vs 90.00% ± 0.00; "
        "at step 400: 98.50% ± 0.50 vs 97.50% ± 0.00."
    )


# Figures 1b/1c.


def drift_paragraph(results):
    return line_starting(findings.figure1_findings(results), "**Figures 1b/1c")


def test_a_steady_bn_input_against_a_drifting_plain_one_is_as_in_the_paper():
    results = make_results()
    assert findings.drift_verdict(results) == "steadier"
    text = drift_paragraph(results)
    assert text.startswith(
        "**Figures 1b/1c.** Without BN the distribution drifts; with BN it is steadier "
        "(largest percentile movement 0.00 ± 0.00 with BN vs 3.00 ± 0.00 without, mean "
        "± standard deviation over the 3 seeds: less than 50% of it, beyond 2 "
        "standard errors of the difference), as in the paper."
    )
    assert (
        "γ went from 1.12 ± 0.00 to 1.50 ± 0.00 and its β from -0.05 ± 0.00 to "
        "-0.20 ± 0.00" in text
    )
    assert "not frozen" not in text
    conclusion = findings.figure1_findings(results)[-1]
    assert conclusion.startswith("This shows that BN reduces the drift")


def test_a_bn_input_moving_less_but_more_than_half_as_much_is_only_less():
    # the plain network's percentiles move by 3.00, BN's by 1.80 (0.60 of it)
    bn = band([0.3, 0.0, 0.6, 1.2, 1.8], [0.1, 2.0, 2.0, 2.0, 2.0])
    results = make_results(bn_percentiles=bn)
    assert findings.drift_verdict(results) == "less"
    text = drift_paragraph(results)
    assert text.startswith(
        "**Figures 1b/1c.** With BN the sigmoid input moves less than without "
        "(largest percentile movement 1.80 ± 0.00 with BN vs 3.00 ± 0.00 without"
    )
    assert "but more than 50% as much: steadier, though less still than" in text
    assert "as in the paper" not in text
    conclusion = findings.figure1_findings(results)[-1]
    assert conclusion.startswith(
        "This shows BN reducing the drift the paper calls internal covariate shift, "
        "though by less than half"
    )


def test_a_bn_input_drifting_like_the_plain_one_is_unlike_the_paper():
    results = make_results(bn_percentiles=DRIFTING, plain_percentiles=DRIFTING)
    assert findings.drift_verdict(results) == "about"
    text = drift_paragraph(results)
    assert text.startswith(
        "**Figures 1b/1c.** Unlike the paper, the BN network's sigmoid input moves "
        "about as much as the plain one's, as far as the seeds tell (largest "
        "percentile movement 3.00 ± 0.00 with BN vs 3.00 ± 0.00 without"
    )
    # its band widened from 1 to 4 in every seed: by more than a quarter
    assert (
        " So the BN input is not frozen: its 15th–85th band went from 1.00 ± 0.00 to "
        "4.00 ± 0.00 wide (by more than a quarter in every seed)" in text
    )
    # No conclusion the numbers above contradict.
    lines = findings.figure1_findings(results)
    assert not any("This shows" in line for line in lines)
    assert lines[-1].startswith("So these runs do not show BN reducing the drift")


def test_a_bn_input_moving_half_as_much_within_the_spread_is_about_as_much():
    # BN's largest movement 0.5, 2.0 and 3.5 over the seeds (mean 2.0), the plain
    # one's 3.0, 3.5, 4.0: on average less than the plain one's, but not beyond
    # the spread (2 standard errors of the difference: 1.83)
    bn = [band([0.3, 0.0, m, m, m], [0.1, 2, 2, 2, 2]) for m in (0.5, 2.0, 3.5)]
    plain = [band([0.3, 0.0, -m, -m, -m], [0.1, 1, 1, 1, 1]) for m in (3.0, 3.5, 4.0)]
    results = results_of(*(
        seed_run(seed, bn_percentiles=b, plain_percentiles=p)
        for seed, b, p in zip(SEEDS, bn, plain, strict=True)
    ))
    assert findings.drift_verdict(results) == "about"
    assert "movement 2.00 ± 1.50 with BN vs 3.50 ± 0.50 without" in drift_paragraph(
        results
    )
    assert findings.figure1_findings(results)[-1].startswith("So these runs do not")


def test_a_bn_input_moving_more_than_the_plain_one_is_unlike_the_paper():
    results = make_results(bn_percentiles=DRIFTING, plain_percentiles=STILL)
    assert findings.drift_verdict(results) == "more"
    assert drift_paragraph(results).startswith(
        "**Figures 1b/1c.** Unlike the paper, the BN network's sigmoid input moves "
        "more than the plain one's (largest percentile movement 3.00 ± 0.00 with BN vs "
        "0.00 ± 0.00 without"
    )
    assert findings.figure1_findings(results)[-1].startswith("So these runs do not")


def test_a_band_widening_in_some_seeds_only_is_not_called_unfrozen():
    results = seeds_differing("bn_percentiles", [DRIFTING, STILL, STILL])
    assert "not frozen" not in drift_paragraph(results)


def test_drift_sentences_quote_the_medians_and_bands_over_the_seeds():
    wider = band([0.3, -0.5, -1.0, -1.5, -3.0], [0.1, 1, 2, 3, 6])
    lines = findings.figure1_findings(
        seeds_differing("plain_percentiles", [DRIFTING, DRIFTING, wider])
    )
    assert line_starting(lines, "- Without BN") == (
        "- Without BN, the median input to sigmoid 0 went from -0.50 ± 0.00 (step "
        "100) to -2.33 ± 0.58 (step 400), spanning 1.83 ± 0.58 over training; the "
        "15th–85th percentile band went from 1.00 ± 0.00 to 4.67 ± 1.15 wide (largest "
        "movement of any of the three percentiles: 3.67 ± 1.15)."
    )
    assert line_starting(lines, "- With BN").startswith(
        "- With BN, the median input to sigmoid 0 went from 0.00 ± 0.00 (step 100)"
    )


# The CNN.


def runs_with(rate, batch_norm, **changes):
    """The default runs, one of them changed."""
    return [
        cnn_run(r, bn, **changes) if (r, bn) == (rate, batch_norm) else cnn_run(r, bn)
        for r in RATES
        for bn in (True, False)
    ]


def rate_line(results, rate):
    return line_starting(findings.cnn_findings(results), f"- Learning rate {rate:g}:")


def test_the_baseline_is_bn_at_the_first_rate_on_the_test_images():
    runs = [
        [cnn_run(r, bn, test_accuracy=t) for r in RATES for bn in (True, False)]
        for t in (0.98, 0.985, 0.99)
    ]
    results = seeds_differing("runs", runs)
    assert findings.cnn_findings(results)[0] == (
        "**The CNN.** The reference setting is the seed's learning rate, 0.001, with "
        "BN; its final test accuracy on 10,000 test images, the report's baseline, is "
        "98.50% ± 0.50 over 3 seeds (0, 1, 2)."
    )
    headline = findings.metrics(results)
    assert headline["baseline_accuracy"] == pytest.approx(0.985)
    assert headline["baseline_accuracy_std"] == pytest.approx(0.005)
    assert headline["seeds"] == SEEDS


def test_the_baseline_is_at_the_first_rate_even_where_another_is_better():
    runs = runs_with(0.001, True, test_accuracy=0.9)
    results = results_of(
        *(seed_run(s, runs=runs) for s in SEEDS), rates=[0.001, 0.01]
    )
    assert findings.metrics(results)["baseline_accuracy"] == pytest.approx(0.9)
    reversed_rates = results_of(
        *(seed_run(s, runs=runs) for s in SEEDS), rates=[0.01, 0.001]
    )
    assert findings.metrics(reversed_rates)["baseline_accuracy"] == pytest.approx(0.98)


@pytest.mark.parametrize("missing", [None, math.nan])
def test_a_non_finite_loss_in_one_seed_is_divergence_in_that_seed(missing):
    diverged = runs_with(0.01, False, loss=[0.5, 3.0, missing, missing])
    results = seeds_differing("runs", [None, diverged, None])
    assert rate_line(results, 0.01).endswith(
        " The network without BN in seed 1 diverged: its loss was no longer finite "
        "from step 150."
    )
    assert "diverged" not in rate_line(results, 0.001)


def test_a_non_finite_validation_loss_is_divergence_too():
    results = results_of(seed_run(7, runs=runs_with(
        0.001, True, val_loss=[0.3, None, None, None], loss=[0.3, 0.2, 0.1, 0.1]
    )))
    line = rate_line(results, 0.001)
    assert "(loss n/a vs 0.070 ± 0.000)" in line
    # one seed: not named
    assert line.endswith(
        " The network with BN diverged: its loss was no longer finite from step 100."
    )


def test_chance_level_accuracy_is_a_stall():
    chance = [0.11, 0.10, 0.09, 0.1045]
    results = results_of(seed_run(0, runs=runs_with(
        0.01, False, val_accuracy=chance, val_loss=[2.302] * 4
    )))
    assert rate_line(results, 0.01).endswith(
        " The network without BN never left chance level (best 11.00%, final loss "
        "2.302; ln 10 = 2.303 is the loss of a uniform guess over the 10 digits): "
        "it stalled."
    )


def test_a_late_drop_in_accuracy_is_reported_for_every_seed_it_happens_in():
    results = make_results(
        runs=runs_with(0.001, True, val_accuracy=[0.9, 0.97, 0.95, 0.8])
    )
    line = rate_line(results, 0.001)
    for seed in SEEDS:
        assert (
            f" The network with BN in seed {seed} got worse late in the run (best "
            "97.00%, final 80.00%)." in line
        )


def test_a_healthy_run_adds_no_remark():
    assert rate_line(make_results(), 0.001) == (
        "- Learning rate 0.001: final test accuracy 98.00% ± 0.00 with BN vs 98.00% ± "
        "0.00 without (on 10,000 test images); validation accuracy after 200 steps "
        "98.00% ± 0.00 vs 98.00% ± 0.00 (loss 0.070 ± 0.000 vs 0.070 ± 0.000); after "
        "50 steps 90.00% ± 0.00 vs 90.00% ± 0.00."
    )


def test_bn_training_at_a_rate_where_plain_does_not_supports_the_paper():
    results = make_results(runs=runs_with(0.01, False, val_accuracy=CHANCE))
    claim = learning_rate_claim(results)
    assert "in every seed: with BN 0.001, 0.01; without BN 0.001." in claim
    assert "In some seeds but not all" not in claim
    assert claim.endswith(
        "BN allows higher learning rates; that holds here: in every seed BN trains at "
        "a rate where the network without it trains in none. Where both train, BN's "
        "lead in validation accuracy after 50 steps was +0.0 ± 0.0 points at 0.001; "
        "by step 200 their final test accuracies are within the noise at 0.001. The "
        "best final test accuracy with BN is at rate 0.001 (98.00% ± 0.00), not apart "
        "over the seeds from that at 0.01; without BN at rate 0.001 (98.00% ± 0.00)."
    )


def test_plain_training_at_the_high_rate_in_one_seed_leaves_it_unsettled():
    stalled = runs_with(0.01, False, val_accuracy=CHANCE)
    results = seeds_differing("runs", [stalled, stalled, None])
    claim = learning_rate_claim(results)
    assert "in every seed: with BN 0.001, 0.01; without BN 0.001." in claim
    assert "In some seeds but not all: with BN none; without BN 0.01." in claim
    assert (
        "BN allows higher learning rates; the seeds do not settle it: at 0.01 a "
        "network trained in some seeds and not in others." in claim
    )
    assert "that holds here" not in claim


def test_a_run_ending_at_or_below_half_did_not_train():
    # it left chance level (best 40%) but ends at 30%: not a rate the network trains at
    results = make_results(
        runs=runs_with(0.01, False, val_accuracy=[0.2, 0.4, 0.35, 0.3])
    )
    claim = learning_rate_claim(results)
    assert claim.startswith(
        "Rates at which the network trained (final test accuracy above 50%) in every "
        "seed: with BN 0.001, 0.01; without BN 0.001."
    )
    assert "that holds here" in claim


def test_both_training_at_the_same_rates_does_not_show_higher_rates():
    claim = learning_rate_claim(make_results())
    assert "these runs do not show it: both train at the same rates." in claim
    assert "that holds here" not in claim
    # every rate trains with and without BN, and the final gap is 0: within noise
    assert "their final test accuracies are within the noise at 0.001, 0.01." in claim
    assert "+0.0 ± 0.0 points at 0.001, +0.0 ± 0.0 points at 0.01" in claim


def test_where_both_train_and_one_is_ahead_the_claim_points_above():
    runs = [
        cnn_run(0.001, True, val_accuracy=[0.9, 0.95, 0.97, 0.99]),
        cnn_run(0.001, False, val_accuracy=[0.8, 0.95, 0.97, 0.95]),
        cnn_run(0.01, True, val_accuracy=CHANCE),
        cnn_run(0.01, False, val_accuracy=CHANCE),
    ]
    claim = learning_rate_claim(make_results(runs=runs))
    assert (
        "after 50 steps was +10.0 ± 0.0 points at 0.001; by step 200 one of them is "
        "ahead at every such rate (see above)." in claim
    )


def test_plain_training_at_a_higher_rate_than_bn_does_not_show_it():
    diverged = [0.5, None, None, None]
    results = make_results(
        runs=runs_with(0.01, True, val_accuracy=[0.5, 0.1, 0.1, 0.1], loss=diverged)
    )
    claim = learning_rate_claim(results)
    assert "in every seed: with BN 0.001; without BN 0.001, 0.01." in claim
    assert "BN allows higher learning rates; these runs do not show it. Where" in claim


def test_bn_and_plain_training_at_different_rates_does_not_show_it():
    runs = [
        cnn_run(0.001, True),
        cnn_run(0.001, False, val_accuracy=CHANCE),
        cnn_run(0.01, True, val_accuracy=CHANCE),
        cnn_run(0.01, False),
    ]
    claim = learning_rate_claim(make_results(runs=runs))
    assert "in every seed: with BN 0.001; without BN 0.01." in claim
    assert "BN allows higher learning rates; these runs do not show it. The best" in (
        claim
    )


def test_no_rate_training_is_said_as_none():
    runs = [
        cnn_run(r, bn, val_accuracy=CHANCE) for r in RATES for bn in (True, False)
    ]
    claim = learning_rate_claim(make_results(runs=runs))
    assert "in every seed: with BN none; without BN none." in claim
    assert "these runs do not show it: neither trains at any of these rates." in claim
    assert "both train" not in claim.replace("Where both train", "")
    assert "Where both train" not in claim


def test_the_overall_cnn_verdict_sorts_the_rates_by_final_gap():
    runs = [
        cnn_run(0.001, True, val_accuracy=[0.9, 0.95, 0.97, 0.99]),
        cnn_run(0.001, False, val_accuracy=[0.9, 0.95, 0.97, 0.95]),
        cnn_run(0.01, True, val_accuracy=[0.9, 0.95, 0.97, 0.90]),
        cnn_run(0.01, False, val_accuracy=[0.9, 0.95, 0.97, 0.98]),
    ]
    assert overall(make_results(runs=runs)) == (
        f"Overall, in final test accuracy (noise: {TEST_NOISE}): BN ends clearly ahead "
        "at learning rate(s) 0.001; the network without BN ends ahead at 0.01 (against "
        "the paper's claim that BN helps at every rate)."
    )
    assert overall(make_results()) == (
        f"Overall, in final test accuracy (noise: {TEST_NOISE}): the two are within "
        "the noise at 0.001, 0.01."
    )


def test_the_overall_cnn_verdict_reads_the_test_accuracy_not_the_validation():
    # the same validation curves, BN 1 point ahead on the test images
    results = make_results(runs=runs_with(0.001, True, test_accuracy=0.99))
    assert "BN ends clearly ahead at learning rate(s) 0.001;" in overall(results)


@pytest.mark.parametrize(
    ("bn_final", "plain_final"),
    # 0.5 points at 60%, 0.8 points at 10% (noise counted as at 50% at least): less
    # than two standard errors of 10,000 test images, more than one
    [(0.6, 0.595), (0.1, 0.092)],
)
def test_a_cnn_gap_within_twice_the_images_standard_error_is_a_tie(
    bn_final, plain_final
):
    runs = [
        cnn_run(0.001, True, val_accuracy=[0.05, 0.06, 0.07, bn_final]),
        cnn_run(0.001, False, val_accuracy=[0.05, 0.06, 0.07, plain_final]),
        cnn_run(0.01, True),
        cnn_run(0.01, False),
    ]
    assert overall(make_results(runs=runs)).endswith(
        "the two are within the noise at 0.001, 0.01."
    )


def test_a_cnn_gap_within_the_spread_over_seeds_is_a_tie():
    # BN 98.5% ± 1.0 against 98.0% ± 0.0: half a point, far less than the spread
    runs = [runs_with(0.001, True, test_accuracy=t) for t in (0.975, 0.985, 0.995)]
    assert overall(seeds_differing("runs", runs)).endswith(
        "the two are within the noise at 0.001, 0.01."
    )
    # the same half point in every seed is beyond the test images' noise
    steady = make_results(runs=runs_with(0.001, True, test_accuracy=0.985))
    assert "BN ends clearly ahead at learning rate(s) 0.001;" in overall(steady)


def test_the_best_rate_is_the_highest_mean_and_matches_the_metrics():
    # with BN: 0.001 ends at 95% in every seed, 0.01 at 97%, 99% and 90%
    # (mean 95.33%): 0.01 is best on average, though not apart from 0.001
    by_seed = [
        seed_run(seed, runs=[
            cnn_run(0.001, True, test_accuracy=0.95),
            cnn_run(0.001, False, test_accuracy=0.97),
            cnn_run(0.01, True, test_accuracy=t),
            cnn_run(0.01, False, val_accuracy=CHANCE),
        ])
        for seed, t in zip(SEEDS, (0.97, 0.99, 0.90), strict=True)
    ]
    results = results_of(*by_seed)
    claim = learning_rate_claim(results)
    assert claim.endswith(
        "The best final test accuracy with BN is at rate 0.01 (95.33% ± 4.73), not "
        "apart over the seeds from that at 0.001; without BN at rate 0.001 (97.00% ± "
        "0.00)."
    )
    headline = findings.metrics(results)
    assert headline["cnn_bn_final"] == pytest.approx(np.mean([0.97, 0.99, 0.90]))
    assert headline["cnn_plain_final"] == pytest.approx(0.97)
    # the table the page shows holds those numbers
    table = findings.cnn_table(results)
    assert "| 0.01 | yes | 90.00% ± 0.00 | 97.00% ± 0.00 | 98.00% ± 0.00 | 95.33% ± " \
        "4.73 |" in table


def test_the_metrics_take_final_accuracies_not_the_best_step():
    by_seed = [
        seed_run(seed, bn=(0.1, 0.95, 0.97, 0.98, bn), runs=[
            # its best step (0.98) is not its final one: the metric is the final one
            cnn_run(0.001, True, val_accuracy=[0.98, 0.7, 0.7, 0.7]),
            cnn_run(0.001, False, val_accuracy=[0.2, None, None, None]),
            cnn_run(0.01, True, val_accuracy=[0.3, 0.9, 0.9, 0.95]),
            cnn_run(0.01, False, val_accuracy=[0.1, 0.6, 0.6, 0.6]),
        ])
        for seed, bn in zip(SEEDS, (0.98, 0.985, 0.99), strict=True)
    ]
    headline = findings.metrics(results_of(*by_seed))
    assert headline.pop("seeds") == SEEDS
    assert headline == pytest.approx({
        "baseline_accuracy": 0.7, "baseline_accuracy_std": 0.0,
        "figure1_bn": 0.985, "figure1_plain": 0.975,
        "cnn_bn_final": 0.95, "cnn_plain_final": 0.6,
    })


def test_the_plots_file_holds_figure_1a_means_and_spread():
    results = seeds_differing(
        "bn", [(0.1, 0.95, 0.97, 0.98, final) for final in (0.98, 0.985, 0.99)]
    )
    lines = findings.plots(results).splitlines()
    assert lines[0] == "step,bn,plain,bn_std,plain_std"
    assert lines[1] == "0,0.1,0.1,0,0"
    assert lines[-1] == "400,0.985,0.975,0.005,0"


def test_the_caveats_quote_the_seeds_and_the_noise_of_the_images():
    caveats = findings.cnn_findings(make_results())[-1]
    assert caveats == (
        "Caveats: 3 seeds (0, 1, 2), too few for a precise standard deviation; Figures "
        "1b/1c and the percentile columns of the Figure 1 table show seed 0 only. The "
        "CNN runs are short (200 steps) and not converged: between steps 150 and 200 "
        "the validation accuracy still rose beyond the noise (2 standard errors of "
        "the difference over the seeds or of an accuracy on 2,000 validation images, "
        "whichever is larger): with BN at rate 0.001 +1.0 ± 0.0 points; without BN at "
        "rate 0.001 +1.0 ± 0.0 points; with BN at rate 0.01 +1.0 ± 0.0 points; "
        "without BN at rate 0.01 +1.0 ± 0.0 points. They show early training. "
        "Every seed is evaluated on the same images, so a difference below "
        "2 standard errors of an accuracy on those images is noise whatever the seeds "
        "say: "
        "≈0.6 points at 98% (the median final validation accuracy of the CNN runs "
        "that trained) on 2,000 validation images, ≈0.2 points at 98% (Figure 1's "
        "final accuracy) on 10,000 test images."
    )


def every_run(val_accuracy):
    """Every CNN run of a seed with these validation accuracies."""
    return [cnn_run(rate, bn, val_accuracy=val_accuracy)
            for rate in RATES for bn in (True, False)]


def test_runs_that_levelled_off_are_not_called_unconverged():
    runs = every_run([0.90, 0.95, 0.98, 0.98])
    caveats = findings.cnn_findings(make_results(runs=runs))[-1]
    assert "not converged" not in caveats
    assert (
        "The CNN runs are short (200 steps), but no run that trained in every seed "
        "rose beyond the noise" in caveats
    )
    assert "between steps 150 and 200: by that measure they had levelled off." in (
        caveats)


def test_a_rise_within_the_noise_of_the_validation_images_is_no_rise():
    # +0.2 points at 98%: below 2 standard errors on 2,000 images (0.63 points)
    runs = every_run([0.90, 0.95, 0.978, 0.98])
    assert findings.still_rising(make_results(runs=runs)) == {}


def test_only_runs_that_trained_are_asked_whether_they_converged():
    text = findings.convergence_text(make_results(runs=every_run(CHANCE)))
    assert text == (
        "The CNN runs are short (200 steps); with no run that trained in every seed "
        "followed over two evaluations, whether they converged is not measured."
    )


# What the notebook draws and tabulates.


def test_figure_1a_series_are_means_and_spread_per_step():
    results = seeds_differing(
        "bn", [(0.1, 0.95, 0.97, 0.98, final) for final in (0.98, 0.985, 0.99)]
    )
    series = findings.figure1a_series(results)
    assert list(series["steps"]) == MLP_STEPS
    np.testing.assert_allclose(series["bn"], [0.1, 0.95, 0.97, 0.98, 0.985])
    np.testing.assert_allclose(series["bn_std"], [0, 0, 0, 0, 0.005], atol=1e-12)
    np.testing.assert_allclose(series["plain_std"], 0, atol=1e-12)


def test_cnn_curves_leave_out_a_diverged_seed():
    diverged = runs_with(0.01, False, val_accuracy=[0.5, None, None, None],
                         val_loss=[1.0, None, None, None])
    curves = findings.cnn_curves(seeds_differing("runs", [None, None, diverged]))
    plain = curves[(0.01, False)]
    np.testing.assert_allclose(plain["val_accuracy"], [2.3 / 3, 0.95, 0.97, 0.98])
    assert plain["val_accuracy_std"][0] == pytest.approx(np.std([0.9, 0.9, 0.5],
                                                                ddof=1))
    assert set(curves) == {(r, bn) for r in RATES for bn in (True, False)}


def test_the_figure_1_table_quotes_accuracy_over_seeds_and_the_first_seeds_band():
    table = findings.figure1_table(make_results()).splitlines()
    assert table[0].endswith("BN, seed 0 | without BN, seed 0 |")
    assert table[3] == (
        "| 100 | 95.00% ± 0.00 | 90.00% ± 0.00 | 0.00 (-1.00 to 1.00) | -0.50 (-1.00 "
        "to 0.00) |"
    )
