"""bnk.recompute_statistics: Algorithm 2's population statistics, against NumPy."""

import keras
import numpy as np
import pytest
from conftest import to_numpy
from numpy_reference import batch_norm_train, population_statistics

import bnk

SIZES = [16, 16, 16, 10]  # the last batch smaller: each batch has its own m


def moving_statistics(layer):
    return [to_numpy(layer.moving_mean), to_numpy(layer.moving_variance)]


def state(model, leave_out=()):
    """Every variable's value, but those of `leave_out`."""
    left_out = {id(v) for v in leave_out}
    return [to_numpy(v) for v in model.variables if id(v) not in left_out]


def assert_same(before, after):
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)


def assert_population(layer, means, variances, sizes):
    mean, variance = population_statistics(means, variances, sizes)
    np.testing.assert_allclose(to_numpy(layer.moving_mean), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(layer.moving_variance), variance, rtol=1e-5)


@pytest.mark.parametrize("form", ["arrays", "x_y_tuples"])
def test_two_layers_in_a_model_in_training_mode(rng, form):
    """bnk's layer, then Keras's, whose input comes from the first in training mode
    (batch statistics); a Dropout after them keeps its random state."""
    inputs = keras.Input((5,))
    dense1, dense2 = keras.layers.Dense(4), keras.layers.Dense(3)
    first = bnk.BatchNorm(epsilon=1e-3)
    second = keras.layers.BatchNormalization()
    h = second(dense2(keras.layers.ReLU()(first(dense1(inputs)))))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dropout(0.5)(h)))
    for layer in (first, second):  # trained-looking weights
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32")
                           for w in layer.get_weights()])
    statistics = [first.moving_mean, first.moving_variance,
                  second.moving_mean, second.moving_variance]
    before = state(model, leave_out=statistics)
    xs = [rng.normal(1.0, 2.0, (size, 5)).astype("float32") for size in SIZES]
    batches = xs if form == "arrays" else [(x, np.zeros((len(x), 2))) for x in xs]

    assert bnk.recompute_statistics(model, iter(batches)) == len(SIZES)

    def affine(dense, h):
        return h @ to_numpy(dense.kernel) + to_numpy(dense.bias)

    seen = {first.name: ([], []), second.name: ([], [])}
    gamma, beta = (to_numpy(w) for w in first.weights[:2])
    for x in xs:
        h = affine(dense1, x.astype("float64"))
        y, mu, sigma2 = batch_norm_train(h, gamma, beta, first.epsilon)
        seen[first.name][0].append(mu)
        seen[first.name][1].append(sigma2)
        h = affine(dense2, np.maximum(y, 0.0))
        seen[second.name][0].append(h.mean(axis=0))
        seen[second.name][1].append(h.var(axis=0))
    for layer in (first, second):
        assert_population(layer, *seen[layer.name], SIZES)
    assert_same(before, state(model, leave_out=statistics))


@pytest.mark.parametrize(
    "normalization", [bnk.BatchNorm, keras.layers.BatchNormalization],
    ids=["bnk", "keras"],
)
def test_nested_in_the_subclassed_cnn(rng, normalization):
    model = bnk.CNN(normalization=normalization, dropout=0.5)
    model.build((None, 12, 12, 1))
    norms = [model.blocks[0][1], model.blocks[1][1]]
    statistics = [v for layer in norms for v in (layer.moving_mean,
                                                 layer.moving_variance)]
    xs = [rng.normal(0.0, 1.0, (4, 12, 12, 1)).astype("float32") for _ in range(3)]
    # The reference: each block run in training mode, the inputs of the norms kept.
    weights = model.get_weights()
    inputs = {id(layer): [] for layer in norms}
    for x in xs:
        for layer in model.layers_in_call_order:
            if id(layer) in inputs:
                inputs[id(layer)].append(to_numpy(x).astype("float64"))
            x = layer(x, training=True)
    model.set_weights(weights)
    before = state(model, leave_out=statistics)

    bnk.recompute_statistics(model, xs)

    for layer in norms:
        channels = [x.reshape(-1, x.shape[-1]) for x in inputs[id(layer)]]
        assert_population(
            layer, [c.mean(axis=0) for c in channels],
            [c.var(axis=0) for c in channels], [len(c) for c in channels],
        )
    assert_same(before, state(model, leave_out=statistics))


def test_renorm_ghost_masked_and_frozen_layers(rng):
    """Each layer on the inputs themselves: renorm (whose moving_stddev follows the
    new variance), ghost batches (each sub-batch of 4 a batch), a mask (only the
    unmasked rows), and a frozen layer (left alone)."""
    inputs = keras.Input((6, 3))
    layers = {
        "renorm": bnk.BatchNorm(renorm=True, name="renorm"),
        "ghost": bnk.BatchNorm(virtual_batch_size=4, name="ghost"),
        "frozen": keras.layers.BatchNormalization(name="frozen", trainable=False),
    }
    branches = [layers[name](inputs) for name in layers]
    masked = bnk.BatchNorm(name="masked")
    branches.append(masked(keras.layers.Masking(0.0)(inputs)))
    model = keras.Model(inputs, keras.layers.Concatenate()(branches))
    renorm, ghost, frozen = layers.values()
    untouched = [renorm.renorm_mean, renorm.renorm_stddev, *frozen.weights]
    untouched_before = [to_numpy(v) for v in untouched]
    xs = [rng.normal(1.0, 2.0, (8, 6, 3)).astype("float32") for _ in range(2)]
    for x in xs:
        x[rng.random((8, 6)) < 0.3] = 0.0  # rows Masking masks

    bnk.recompute_statistics(model, xs)

    rows = [x.reshape(-1, 3).astype("float64") for x in xs]
    assert_population(renorm, [r.mean(0) for r in rows], [r.var(0) for r in rows],
                      [len(r) for r in rows])
    np.testing.assert_allclose(
        to_numpy(renorm.moving_stddev) ** 2 - renorm.epsilon,
        to_numpy(renorm.moving_variance), rtol=1e-5,
    )
    groups = [x[start:start + 4].reshape(-1, 3).astype("float64")
              for x in xs for start in (0, 4)]
    assert_population(ghost, [g.mean(0) for g in groups], [g.var(0) for g in groups],
                      [len(g) for g in groups])
    kept = [r[np.any(r != 0.0, axis=1)] for r in rows]
    assert_population(masked, [k.mean(0) for k in kept], [k.var(0) for k in kept],
                      [len(k) for k in kept])
    assert_same(untouched_before, [to_numpy(v) for v in untouched])


def test_no_batches():
    model = keras.Sequential([keras.Input((3,)), bnk.BatchNorm()])
    with pytest.raises(ValueError, match="`batches` is empty"):
        bnk.recompute_statistics(model, [])
    # The layer is back to its own call.
    assert "call" not in vars(model.layers[0])


def test_unbuilt_layer():
    model = keras.Sequential([bnk.BatchNorm(name="bn")])
    with pytest.raises(ValueError, match="Layer 'bn' is not built"):
        bnk.recompute_statistics(model, [np.ones((2, 3), "float32")])
