"""pipeline.core.momenta: the moving statistics of another momentum, derived from one
training run, are those a layer of that momentum holds after the same training."""

import keras
import numpy as np
import pytest

import bnk
from pipeline.core.momenta import OtherMomenta


def trained(momentum, callbacks=(), steps=30):
    """A small network with two bnk.BatchNorm layers, trained from fixed weights on
    fixed batches, one step per call."""
    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(4, 3),
            bnk.BatchNorm(momentum=momentum),
            keras.layers.Flatten(),
            keras.layers.Dense(5),
            bnk.BatchNorm(momentum=momentum),
            keras.layers.Dense(3),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    # A mean far from zero, so the moving averages travel far from where they start.
    x = (rng.normal(3.0, 2.0, (steps * 8, 6, 6, 2))).astype("float32")
    y = rng.integers(0, 3, steps * 8)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
              callbacks=list(callbacks))
    return model


def statistics(model):
    return [
        keras.ops.convert_to_numpy(v)
        for layer in model.layers
        if isinstance(layer, bnk.BatchNorm)
        for v in (layer.moving_mean, layer.moving_variance)
    ]


@pytest.mark.parametrize("other", [0.99, 0.5])
def test_derived_statistics_match_a_layer_trained_at_that_momentum(other):
    derived = OtherMomenta([other])
    model = trained(0.9, [derived])
    as_trained = statistics(model)
    derived.assign(other)
    direct = statistics(trained(other))
    for got, want, first in zip(statistics(model), direct, as_trained, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        # The check would pass trivially if the averages had not moved apart.
        assert np.abs(first - want).max() > 1e-2


def test_the_trained_momentum_is_given_back_as_it_was():
    derived = OtherMomenta([0.9])
    model = trained(0.9, [derived])
    before = statistics(model)
    derived.assign(0.9)
    for got, want in zip(statistics(model), before, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
