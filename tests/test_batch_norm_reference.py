"""bnk.BatchNorm against an independent NumPy implementation of the paper."""

import numpy as np
import pytest
from conftest import random_bn_weights, to_numpy
from numpy_reference import batch_norm_infer, batch_norm_train

import bnk

SHAPES = {
    "2d": ((32, 4), -1),
    "4d_last": ((6, 5, 5, 3), -1),
    "4d_first": ((6, 3, 5, 5), 1),
}


@pytest.mark.parametrize("case", SHAPES)
@pytest.mark.parametrize("unbiased", [False, True])
def test_matches_algorithm_1_and_moving_averages(rng, case, unbiased):
    shape, axis = SHAPES[case]
    momentum, epsilon = 0.8, 1e-3
    layer = bnk.BatchNorm(
        axis=axis, momentum=momentum, epsilon=epsilon,
        unbiased_moving_variance=unbiased,
    )
    layer.build(shape)
    gamma, beta, mean, variance = random_bn_weights(rng, shape[axis])
    layer.set_weights([gamma, beta, mean, variance])
    expected_mean, expected_var = mean.astype("float64"), variance.astype("float64")
    m = np.prod(shape) / shape[axis]
    for _ in range(3):
        x = rng.normal(2.0, 3.0, shape).astype("float32")
        y, mu, sigma2 = batch_norm_train(x, gamma, beta, epsilon, axis)
        np.testing.assert_allclose(
            to_numpy(layer(x, training=True)), y, atol=1e-5, rtol=1e-5
        )
        population = sigma2 * m / (m - 1) if unbiased else sigma2
        expected_mean = momentum * expected_mean + (1 - momentum) * mu
        expected_var = momentum * expected_var + (1 - momentum) * population
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), expected_mean, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), expected_var, rtol=1e-5, atol=1e-6
    )
    x = rng.normal(2.0, 3.0, shape).astype("float32")
    np.testing.assert_allclose(
        to_numpy(layer(x, training=False)),
        batch_norm_infer(x, gamma, beta, expected_mean, expected_var, epsilon, axis),
        atol=1e-4, rtol=1e-5,
    )


def test_center_and_scale_off(rng):
    x = rng.normal(3.0, 2.0, (16, 3)).astype("float32")
    layer = bnk.BatchNorm(center=False, scale=False)
    y, _, _ = batch_norm_train(x, np.ones(3), np.zeros(3), 1e-3)
    np.testing.assert_allclose(to_numpy(layer(x, training=True)), y, atol=1e-5)
    assert [w.name for w in layer.weights] == ["moving_mean", "moving_variance"]


def test_weight_order_matches_keras():
    layer = bnk.BatchNorm()
    layer.build((2, 3))
    assert [w.name for w in layer.weights] == [
        "gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.trainable for w in layer.weights] == [True, True, False, False]


@pytest.mark.parametrize(
    "replicas",
    [{"virtual_batch_size": 4}, {"synchronized": True}],
    ids=["virtual_batch_size", "synchronized"],
)
def test_get_config_round_trips(replicas):
    layer = bnk.BatchNorm(
        axis=1, momentum=0.7, epsilon=1e-4, center=False,
        gamma_initializer="random_normal", gamma_regularizer="l2",
        beta_constraint="non_neg", unbiased_moving_variance=True, name="bn",
        **replicas,
    )
    clone = bnk.BatchNorm.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.unbiased_moving_variance and clone.axis == 1 and not clone.center
    assert {key: getattr(clone, key) for key in replicas} == replicas


def test_gamma_regularizer_adds_a_loss(rng):
    layer = bnk.BatchNorm(gamma_regularizer="l2")
    layer(rng.normal(size=(4, 3)).astype("float32"), training=True)
    assert len(layer.losses) == 1 and float(to_numpy(layer.losses[0])) > 0
