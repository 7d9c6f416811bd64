"""The index's verdicts on the backends (`pipeline.reporting.comparison`): each
sentence against hand-made losses and weights, each flipping with the numbers."""

import numpy as np

from pipeline.reporting import comparison

STEPS = 200


def losses_parting_at(**first_steps):
    """Losses per backend equal to a common curve until the step each backend's
    keyword names (counted from 1), then 1% above it for ever after."""
    base = np.linspace(2.3, 0.1, STEPS)
    out = {}
    for backend in ("tensorflow", "jax", "torch"):
        curve = base.copy()
        step = first_steps.get(backend)
        if step is not None:
            curve[step - 1:] *= 1 + 0.01 * (1 + ("tensorflow", "jax", "torch").index(
                backend))
        out[backend] = curve
    return out


def test_the_backend_that_parts_first_is_the_one_the_data_names():
    """JAX departs at step 8 from both; TensorFlow and PyTorch stay together until
    step 11 (the committed run's steps): JAX, not TensorFlow, parts first."""
    text = comparison.parting(losses_parting_at(jax=8, tensorflow=11, torch=11))
    assert "JAX vs PyTorch at step 8" in text
    assert "TensorFlow vs JAX at step 8" in text
    assert "TensorFlow vs PyTorch at step 11" in text
    assert text.endswith(
        "TensorFlow and PyTorch stay together longest; JAX parts from both of them "
        "first."
    )
    text = comparison.parting(losses_parting_at(tensorflow=5))
    assert text.endswith(
        "JAX and PyTorch stay together longest; TensorFlow parts from both of them "
        "first."
    )
    assert "JAX vs PyTorch in none of 200 steps" in text


def test_no_backend_parts_first_when_the_steps_say_so():
    # Each backend parts from the common curve at its own step, by its own amount:
    # TensorFlow-JAX at 5, TensorFlow-PyTorch at 5, JAX-PyTorch at 5 as well.
    text = comparison.parting(losses_parting_at(tensorflow=5, jax=5, torch=5))
    assert text.endswith(
        "No backend parts from both others before they part from each other."
    )
    same = comparison.parting(losses_parting_at())
    assert same == (
        "No two backends' losses differ by more than 1e-05 (relative) in 200 steps."
    )


def weights(conv_bias_gap=4e-4, kernel_gap=0.0):
    base = {"cnn/conv1/bias": np.zeros(4), "cnn/conv1/kernel": np.ones(8),
            "cnn/bn1/gamma": np.ones(4), "cnn/fc1/bias": np.zeros(3)}
    other = {name: value.copy() for name, value in base.items()}
    other["cnn/conv1/bias"][0] += conv_bias_gap
    other["cnn/conv1/kernel"][2] += kernel_gap
    return {"tensorflow": base, "jax": other, "torch": base}


def test_only_the_cancelled_biases_differing_after_step_1_is_said_so():
    text = comparison.first_step(weights(), 0.0005)
    assert "after one step those biases differ by up to 4.0e-04 (twice the learning " \
        "rate is 0.001)" in text
    assert "No other weight differs by more than 1e-06 between any two backends " \
        "after step 1" in text
    assert "Other weights differ" not in text


def test_another_weight_differing_after_step_1_is_named():
    text = comparison.first_step(weights(kernel_gap=3e-5), 0.0005)
    assert "Other weights differ by more than 1e-06 after step 1 too: " \
        "`cnn/conv1/kernel` (3.0e-05)" in text
    assert "No other weight differs" not in text
    none = comparison.first_step(weights(conv_bias_gap=0.0), 0.0005)
    assert "here no convolution bias differs by more than 1e-06" in none


def test_is_cancelled_bias():
    assert comparison.is_cancelled_bias("cnn_1/conv2/bias")
    assert not comparison.is_cancelled_bias("cnn_1/fc1/bias")
    assert not comparison.is_cancelled_bias("cnn_1/conv2/kernel")


def test_the_late_gap_is_measured_not_assumed():
    parted = comparison.late_gap(losses_parting_at(jax=40))
    # JAX 2% above the curve, TensorFlow and PyTorch on it: medians 0% to 2%.
    assert "by a median of 0.0% to 2.0% per step" in parted
    assert "the gap first exceeds 1% at step 40." in parted
    assert "different trajectories" in parted
    together = comparison.late_gap(losses_parting_at())
    assert "no pair's gap exceeds 1% at any step" in together
    assert "different trajectories" not in together


# Over seeds: one value per seed, per backend or per recipe.


def test_backends_within_the_spread_between_seeds_are_said_to_be():
    text = comparison.between_backends(
        {"tensorflow": [0.9795, 0.9801, 0.9790], "jax": [0.9797, 0.9790, 0.9805],
         "torch": [0.9801, 0.9793, 0.9799]},
        "test accuracy",
    )
    assert text.startswith(
        "Test accuracy over 3 seeds: TensorFlow 97.95% ± 0.06; JAX 97.97% ± 0.08; "
        "PyTorch 97.98% ± 0.04. The backends' means lie 0.02 points apart; between "
        "seeds on one backend the standard deviation is 0.06 points"
    )
    assert text.endswith(
        "the spread between backends is within the spread between seeds."
    )
    assert "differ:" not in text


def test_backends_apart_beyond_the_spread_are_named_and_the_others_too():
    text = comparison.between_backends(
        {"tensorflow": [0.970, 0.971, 0.9705], "jax": [0.9797, 0.9798, 0.9799],
         "torch": [0.9796, 0.9800, 0.9798]},
        "test accuracy",
    )
    assert (
        "the backends differ: TensorFlow and JAX (0.930 points apart, beyond 0.059 "
        "points) and TensorFlow and PyTorch (0.930 points apart, beyond 0.062 points); "
        "JAX and PyTorch are within it."
    ) in text
    assert "is within the spread between seeds" not in text
    every = comparison.between_backends(
        {"tensorflow": [0.970, 0.971], "jax": [0.980, 0.981]}, "test accuracy"
    )
    assert every.endswith(
        "the backends differ: TensorFlow and JAX (1.000 points apart, beyond 0.141 "
        "points)."
    )


def test_a_loss_is_compared_in_its_own_units():
    text = comparison.between_backends(
        {"tensorflow": [0.05, 0.051], "jax": [0.062, 0.063]},
        "the mean training loss of the last 100 steps",
        accuracy=False,
    )
    assert text.startswith(
        "The mean training loss of the last 100 steps over 2 seeds: TensorFlow "
        "0.0505 ± 0.0007; JAX 0.0625 ± 0.0007. The backends' means lie 0.0120 apart"
    )
    assert "TensorFlow and JAX (0.01200 apart, beyond 0.00141)" in text


def test_without_two_backends_or_two_seeds_nothing_is_concluded():
    alone = comparison.between_backends({"jax": [0.97, 0.98]}, "test accuracy")
    assert alone.endswith(
        "Only one backend was compared: no spread between backends to set against "
        "the spread between seeds."
    )
    single = comparison.between_backends(
        {"tensorflow": [0.97], "jax": [0.98, 0.981]}, "test accuracy"
    )
    assert "over 1 to 2 seeds" in single
    assert single.endswith(
        "TensorFlow ran fewer than two seeds, so the spread between seeds is not "
        "measured, and whether the backends differ beyond it cannot be told."
    )


def test_per_seed_values_come_from_every_seeds_run():
    runs = {
        "jax": {"test_accuracy": 0.5, "runs": [
            {"test_accuracy": 0.5, "losses": [3.0, 1.0, 2.0]},
            {"test_accuracy": 0.7, "losses": [1.0, 1.0, 1.0]},
        ]},
    }
    assert comparison.per_seed(runs, lambda r: r["test_accuracy"])["jax"].tolist() == [
        0.5, 0.7
    ]
    assert comparison.late_loss([9.0] * 5 + [1.0] * 100) == 1.0
    assert comparison.late_loss([3.0, 1.0, 2.0]) == 2.0


RECOMPUTED = [0.9921, 0.9925, 0.9922, 0.9920, 0.9926]
MOVING_0_9 = [0.9900, 0.9910, 0.9905, 0.9890, 0.9915]
MOVING_0_99 = [0.9912, 0.9920, 0.9918, 0.9911, 0.9921]


def test_the_dissected_model_is_placed_among_the_seeds():
    typical = comparison.one_run_among_seeds(0.9922, RECOMPUTED)
    assert typical == (
        "The model the reports dissect, one training run, scores 99.22% on the test "
        "images; the same recipe over 5 seeds scores 99.23% ± 0.03, and the run lies "
        "within 2 standard deviations of that mean: a typical draw of the recipe."
    )
    low = comparison.one_run_among_seeds(0.989, RECOMPUTED)
    assert "the run lies 0.33 points below that mean, more than 2 standard " \
        "deviations: an unusual draw" in low
    high = comparison.one_run_among_seeds(0.995, RECOMPUTED)
    assert "0.27 points above that mean" in high
    one = comparison.one_run_among_seeds(0.99, [0.98])
    assert one.endswith("over 1 seed scores 98.00% (one seed): one seed has no spread "
                        "to place the run in.")


def test_the_recipe_with_the_highest_mean_beyond_the_others_and_the_default():
    accuracies = {"moving_0_9": MOVING_0_9, "moving_0_99": MOVING_0_99,
                  "recomputed": RECOMPUTED}
    text = comparison.recipes(accuracies, "recomputed")
    assert text == (
        "The highest mean test accuracy is that of population statistics recomputed "
        "after training, 99.23% ± 0.03, beyond the spread between seeds of moving "
        "averages at momentum 0.9 (the seed tutorial's), 99.04% ± 0.10 and of moving "
        "averages at momentum 0.99 (Keras's default), 99.16% ± 0.05. It is the "
        "default recipe (`train.statistics`). The default's mean, 99.23%, reaches the "
        "goal of 99.20%."
    )
    seed_default = comparison.recipes(accuracies, "moving_0_9")
    assert (
        "The default recipe, moving averages at momentum 0.9 (the seed tutorial's), "
        "falls below it beyond the spread: the better choice is not the default. The "
        "default's mean, 99.04%, falls short of the goal of 99.20% by 0.16 points."
    ) in seed_default


def test_recipes_within_the_spread_are_not_ranked():
    wide = {"moving_0_9": [0.990, 0.994, 0.992], "recomputed": [0.991, 0.995, 0.993]}
    text = comparison.recipes(wide, "moving_0_9", goal_seeds=3)
    assert text.startswith(
        "The highest mean test accuracy is that of population statistics recomputed "
        "after training, 99.30% ± 0.20, but within the spread between seeds of moving "
        "averages at momentum 0.9 (the seed tutorial's), 99.20% ± 0.20: over these "
        "seeds no choice of statistics is shown to beat it."
    )
    assert (
        "The default recipe, moving averages at momentum 0.9 (the seed tutorial's), "
        "is within the spread between seeds of it. The default's mean, 99.20%, "
        "reaches the goal of 99.20%."
    ) in text


def test_a_recipe_apart_from_one_and_within_another_says_both():
    mixed = {"moving_0_9": MOVING_0_9, "moving_0_99": [0.992, 0.994],
             "recomputed": RECOMPUTED}
    text = comparison.recipes(mixed, "recomputed")
    assert (
        "that of moving averages at momentum 0.99 (Keras's default), 99.30% ± 0.14, "
        "beyond the spread between seeds of moving averages at momentum 0.9 (the seed "
        "tutorial's), 99.04% ± 0.10; but within that of population statistics "
        "recomputed after training, 99.23% ± 0.03."
    ) in text
    assert "The default recipe, population statistics recomputed after training, " \
        "is within the spread between seeds of it." in text


def test_the_goal_asks_for_enough_seeds():
    text = comparison.recipes({"recomputed": [0.993, 0.994]}, "recomputed")
    assert text == (
        "The highest mean test accuracy is that of population statistics recomputed "
        "after training, 99.35% ± 0.07. It is the default recipe (`train.statistics`). "
        "The default's mean, 99.35%, reaches the goal of 99.20% (over 2 seeds; the "
        "goal asks for 5)."
    )


def test_recipe_labels():
    label = comparison.recipe_label("moving_0_999")
    assert label == "moving averages at momentum 0.999"
    assert comparison.recipe_label("other") == "`other`"


def test_what_bn_buys_follows_the_spread():
    ahead = comparison.bn_buys([0.95, 0.96], [0.90, 0.91])
    assert ahead.endswith(
        "is 95.50% ± 0.71 with BN against 90.50% ± 0.71 without, over 2 seeds: BN's "
        "lead is beyond the spread between seeds."
    )
    behind = comparison.bn_buys([0.90, 0.91], [0.95, 0.96])
    assert behind.endswith(
        "the network without BN is ahead, beyond the spread between seeds."
    )
    within = comparison.bn_buys([0.90, 0.96], [0.91, 0.95])
    assert within.endswith("the two are within the spread between seeds.")
