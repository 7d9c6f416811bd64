"""bnk.CNN: the seed's network, with and without BatchNorm."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

import bnk


def _count(weights):
    return int(sum(np.prod(w.shape) for w in weights))


NORMALIZATIONS = {
    "bnk": bnk.BatchNorm,
    "keras": keras.layers.BatchNormalization,
    "none": None,
}


@pytest.mark.parametrize(
    "normalization, total, non_trainable",
    [
        (bnk.BatchNorm, 3_275_018, 192),
        (keras.layers.BatchNormalization, 3_275_018, 192),
        (None, 3_274_634, 0),
    ],
    ids=list(NORMALIZATIONS),
)
def test_parameter_counts_and_output_shape(rng, normalization, total, non_trainable):
    model = bnk.CNN(normalization=normalization)
    y = model(rng.random((2, 28, 28, 1)).astype("float32"))
    assert tuple(y.shape) == (2, 10)
    assert model.count_params() == total
    assert _count(model.non_trainable_weights) == non_trainable
    norms = [type(layer) for layer in model.layers if layer.name in ("bn1", "bn2")]
    assert norms == ([] if normalization is None else [normalization] * 2)


@pytest.mark.parametrize(
    "normalization", NORMALIZATIONS.values(), ids=list(NORMALIZATIONS)
)
def test_layers_in_call_order(normalization):
    names = [
        layer.name
        for layer in bnk.CNN(normalization=normalization).layers_in_call_order
    ]
    bn1, bn2 = (["bn1"], ["bn2"]) if normalization else ([], [])
    assert names == [
        "conv1", *bn1, "relu1", "pool1", "conv2", *bn2, "relu2", "pool2",
        "flatten", "fc1", "dropout", "logits",
    ]


def test_normalization_layers_get_the_networks_settings():
    model = bnk.CNN(normalization=keras.layers.BatchNormalization, momentum=0.8,
                    epsilon=1e-2)
    model.build((None, 28, 28, 1))
    bn = model.get_layer("bn1")
    assert (bn.momentum, bn.epsilon) == (0.8, 1e-2)
    np.testing.assert_array_equal(to_numpy(bn.gamma), np.ones(32))
    np.testing.assert_array_equal(to_numpy(bn.moving_variance), np.ones(32))


def test_normalization_must_be_callable_or_none():
    with pytest.raises(TypeError, match="layer class"):
        bnk.CNN(False)


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


@pytest.mark.parametrize(
    "normalization", NORMALIZATIONS.values(), ids=list(NORMALIZATIONS)
)
def test_config_round_trips(normalization):
    model = bnk.CNN(normalization=normalization, dropout=0.3, momentum=0.8)
    clone = bnk.CNN.from_config(model.get_config())
    assert clone.normalization is normalization
    assert clone.get_config() == model.get_config()


def test_config_names_an_unknown_normalization():
    config = {**bnk.CNN().get_config(), "normalization": "mine>Norm"}
    with pytest.raises(ValueError, match="Unknown normalization 'mine>Norm'"):
        bnk.CNN.from_config(config)
