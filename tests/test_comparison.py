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
