"""bnk.CNN: the seed's network, with and without BatchNorm."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

import bnk


def _count(weights):
    return int(sum(np.prod(w.shape) for w in weights))


@pytest.mark.parametrize(
    "batch_norm, total, non_trainable", [(True, 3_275_018, 192), (False, 3_274_634, 0)]
)
def test_parameter_counts_and_output_shape(rng, batch_norm, total, non_trainable):
    model = bnk.CNN(batch_norm=batch_norm)
    y = model(rng.random((2, 28, 28, 1)).astype("float32"))
    assert tuple(y.shape) == (2, 10)
    assert model.count_params() == total
    assert _count(model.non_trainable_weights) == non_trainable
    assert any(isinstance(layer, bnk.BatchNorm) for layer in model._flatten_layers()) == batch_norm


def test_training_flag_switches_dropout_and_batch_norm(rng):
    model = bnk.CNN()
    x = rng.random((8, 28, 28, 1)).astype("float32")
    inference = to_numpy(model(x, training=False))
    np.testing.assert_array_equal(inference, to_numpy(model(x, training=False)))
    assert not np.allclose(inference, to_numpy(model(x, training=True)))


def test_a_few_fit_steps_reduce_the_loss(rng):
    # An easy task: the class is which horizontal stripe is lit.
    y = np.arange(64) % 10
    x = 0.1 * rng.random((64, 28, 28, 1)).astype("float32")
    for i, label in enumerate(y):
        x[i, 2 * label + 4 : 2 * label + 6] = 1.0
    model = bnk.CNN()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    bn = model.get_layer("bn1")
    assert np.abs(to_numpy(bn.moving_mean)).max() > 0  # fit ran in training mode


def test_config_round_trips():
    model = bnk.CNN(batch_norm=False, dropout=0.3, momentum=0.8)
    clone = bnk.CNN.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
