"""Ghost batch normalization (`virtual_batch_size`) against a NumPy reference."""

import keras
import numpy as np
import pytest
from conftest import random_bn_weights, to_numpy
from numpy_reference import (
    batch_norm_infer,
    batch_norm_train,
    ghost_batch_norm_train,
)

import bnk

# (input shape, channel axis, virtual batch size)
SHAPES = {
    "2d": ((32, 4), -1, 8),
    "4d_last": ((12, 5, 5, 3), -1, 4),
    "4d_first": ((12, 3, 5, 5), 1, 3),
}


def _inputs(rng, shape):
    """Every example with its own offset, so that sub-batches differ."""
    offsets = rng.normal(0.0, 3.0, (shape[0],) + (1,) * (len(shape) - 1))
    return (rng.normal(2.0, 3.0, shape) + offsets).astype("float32")


@pytest.mark.parametrize("case", SHAPES)
@pytest.mark.parametrize("unbiased", [False, True])
def test_matches_algorithm_1_per_sub_batch(rng, case, unbiased):
    shape, axis, size = SHAPES[case]
    momentum, epsilon = 0.8, 1e-3
    layer = bnk.BatchNorm(
        axis=axis, momentum=momentum, epsilon=epsilon, virtual_batch_size=size,
        unbiased_moving_variance=unbiased,
    )
    layer.build(shape)
    gamma, beta, mean, variance = random_bn_weights(rng, shape[axis])
    layer.set_weights([gamma, beta, mean, variance])
    expected_mean, expected_var = mean.astype("float64"), variance.astype("float64")
    m = size * np.prod(shape) / shape[0] / shape[axis]  # entries per sub-batch
    for _ in range(2):
        x = _inputs(rng, shape)
        y, mu, sigma2 = ghost_batch_norm_train(x, gamma, beta, epsilon, size, axis)
        y_ours = to_numpy(layer(x, training=True))
        np.testing.assert_allclose(y_ours, y, atol=1e-5, rtol=1e-5)
        # Not what batch norm over the whole batch gives.
        whole, _, _ = batch_norm_train(x, gamma, beta, epsilon, axis)
        assert np.abs(y_ours - whole).max() > 0.1
        population = sigma2 * m / (m - 1) if unbiased else sigma2
        expected_mean = momentum * expected_mean + (1 - momentum) * mu
        expected_var = momentum * expected_var + (1 - momentum) * population
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), expected_mean, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), expected_var, rtol=1e-5, atol=1e-6
    )
    # Inference is unchanged, and takes any batch size.
    x = _inputs(rng, (5,) + shape[1:])
    np.testing.assert_allclose(
        to_numpy(layer(x, training=False)),
        batch_norm_infer(x, gamma, beta, expected_mean, expected_var, epsilon, axis),
        atol=1e-4, rtol=1e-5,
    )


@pytest.mark.parametrize(
    "empty_sub_batch", [False, True], ids=["partial_mask", "one_sub_batch_masked"]
)
def test_masked_statistics_per_sub_batch(rng, empty_sub_batch):
    """Each sub-batch's statistics are those of its unmasked entries; one with none
    is normalized with the moving statistics, which then count as its statistics in
    the mean over sub-batches (as an all-masked batch leaves them where they are)."""
    momentum, epsilon, size = 0.8, 1e-3, 3
    x = _inputs(rng, (9, 5, 2))
    mask = rng.random(x.shape[:-1]) > 0.4
    mask[:, 0] = True
    if empty_sub_batch:
        mask[3:6] = False
    layer = bnk.BatchNorm(momentum=momentum, epsilon=epsilon, virtual_batch_size=size)
    layer.build(x.shape)
    gamma, beta, moving_mean, moving_var = random_bn_weights(rng, 2)
    layer.set_weights([gamma, beta, moving_mean, moving_var])
    y = to_numpy(layer(x, training=True, mask=mask))
    x64 = x.astype("float64")
    means, variances = [], []
    for start in range(0, len(x), size):
        group, kept = x64[start:start + size], mask[start:start + size]
        if kept.any():
            mean, var = group[kept].mean(axis=0), group[kept].var(axis=0)
        else:
            mean, var = moving_mean, moving_var
        np.testing.assert_allclose(
            y[start:start + size],
            gamma * (group - mean) / np.sqrt(var + epsilon) + beta,
            atol=1e-5, rtol=1e-5,
        )
        means.append(mean)
        variances.append(var)
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean),
        momentum * moving_mean + (1 - momentum) * np.mean(means, axis=0),
        rtol=1e-5, atol=1e-6,
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance),
        momentum * moving_var + (1 - momentum) * np.mean(variances, axis=0),
        rtol=1e-5, atol=1e-6,
    )


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_one_sub_batch_is_plain_batch_norm(rng, masked):
    x = _inputs(rng, (8, 4, 3))
    mask = rng.random(x.shape[:-1]) > 0.3 if masked else None
    weights = random_bn_weights(rng, 3)
    layers = [bnk.BatchNorm(virtual_batch_size=8), bnk.BatchNorm()]
    outputs = []
    for layer in layers:
        layer.build(x.shape)
        layer.set_weights(weights)
        outputs.append(to_numpy(layer(x, training=True, mask=mask)))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-6)
    for ghost, plain in zip(
        layers[0].get_weights(), layers[1].get_weights(), strict=True
    ):
        np.testing.assert_allclose(ghost, plain, rtol=1e-6, atol=1e-7)


def test_train_on_batch_updates_moving_statistics_per_sub_batch(rng):
    """Compiled training (a traced graph on TensorFlow, jit on JAX) too."""
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1)(
        bnk.BatchNorm(virtual_batch_size=4, name="bn")(inputs)
    )
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    x = _inputs(rng, (16, 4))
    model.train_on_batch(x, np.zeros((16, 1), "float32"))
    _, mu, sigma2 = ghost_batch_norm_train(x, np.ones(4), np.zeros(4), 1e-3, 4)
    bn = model.get_layer("bn")
    np.testing.assert_allclose(
        to_numpy(bn.moving_mean), 0.1 * mu, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(bn.moving_variance), 0.9 + 0.1 * sigma2, rtol=1e-5
    )


def test_batch_size_not_a_multiple_names_both(rng):
    layer = bnk.BatchNorm(virtual_batch_size=4)
    x = rng.normal(size=(10, 3)).astype("float32")
    with pytest.raises(
        ValueError, match=r"batch size 10 is not a multiple of virtual_batch_size=4"
    ):
        layer(x, training=True)
    layer(x, training=False)  # inference does not split the batch


@pytest.mark.parametrize("size", [0, -2, 2.5, True, "4"])
def test_bad_virtual_batch_size(size):
    with pytest.raises(ValueError, match=f"virtual_batch_size={size!r}"):
        bnk.BatchNorm(virtual_batch_size=size)


def test_batch_axis_cannot_be_the_channel_axis():
    with pytest.raises(ValueError, match="`axis`=0 makes the batch axis"):
        bnk.BatchNorm(axis=0, virtual_batch_size=2)(np.ones((4, 3), "float32"))
