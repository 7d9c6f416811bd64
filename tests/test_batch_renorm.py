"""Batch Renormalization (Ioffe, 2017) in bnk.BatchNorm, against the paper.

The paper's Algorithm 1 and its back-propagation are written out in NumPy in
tests/numpy_reference.py. Parity with keras.layers.BatchNormalization(renorm=True)
is in tests/test_batch_norm_keras_parity.py.
"""

import keras
import numpy as np
import pytest
from conftest import random_renorm_weights, to_numpy
from numpy_reference import (
    batch_norm_infer,
    batch_renorm_input_gradient,
    batch_renorm_train,
    moving_update,
)

import bnk

CLIPPING = {"rmax": 1.5, "rmin": 0.5, "dmax": 0.8}
SHAPES = {"2d": ((32, 4), -1), "4d_channels_first": ((6, 3, 5, 5), 1)}
RENORM_WEIGHTS = [
    "gamma", "beta", "moving_mean", "moving_variance",
    "moving_stddev", "renorm_mean", "renorm_stddev",
]


def renorm_layer(rng, shape, axis=-1, **kwargs):
    """A built renorm layer with random weights, and those weights."""
    layer = bnk.BatchNorm(axis=axis, renorm=True, **kwargs)
    layer.build(shape)
    weights = random_renorm_weights(rng, shape[axis])
    layer.set_weights(weights)
    return layer, weights


def assert_close(actual, expected, tol=1e-5):
    np.testing.assert_allclose(to_numpy(actual), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("case", SHAPES)
@pytest.mark.parametrize("clipping", [None, CLIPPING], ids=["unclipped", "clipped"])
def test_matches_algorithm_1(rng, case, clipping):
    """Outputs and the five statistics over three steps, then inference."""
    shape, axis = SHAPES[case]
    momentum, renorm_momentum, epsilon = 0.8, 0.6, 1e-3
    layer, weights = renorm_layer(
        rng, shape, axis, momentum=momentum, epsilon=epsilon,
        renorm_clipping=clipping, renorm_momentum=renorm_momentum,
    )
    gamma, beta, mean, _, stddev, renorm_mean, renorm_stddev = (
        w.astype("float64") for w in weights
    )
    clipped = False
    for _ in range(3):
        x = rng.normal(1.0, 2.0, shape).astype("float32")
        y, mu_b, sigma_b, r, d = batch_renorm_train(
            x, gamma, beta, renorm_mean, renorm_stddev, epsilon, clipping, axis
        )
        clipped |= bool(np.any(r == CLIPPING["rmax"]) or np.any(d == CLIPPING["dmax"]))
        assert_close(layer(x, training=True), y)
        renorm_mean = moving_update(renorm_mean, mu_b, renorm_momentum)
        renorm_stddev = moving_update(renorm_stddev, sigma_b, renorm_momentum)
        mean = moving_update(mean, mu_b, momentum)
        stddev = moving_update(stddev, sigma_b, momentum)
    assert clipped == (clipping is not None)
    for name, expected in [
        ("moving_mean", mean), ("moving_stddev", stddev),
        ("renorm_mean", renorm_mean), ("renorm_stddev", renorm_stddev),
        ("moving_variance", stddev**2 - epsilon),
    ]:
        assert_close(getattr(layer, name), expected)
    # Inference normalizes with the moving mean and standard deviation.
    x = rng.normal(1.0, 2.0, shape).astype("float32")
    assert_close(
        layer(x, training=False),
        batch_norm_infer(x, gamma, beta, mean, stddev**2 - epsilon, epsilon, axis),
        tol=1e-4,
    )


def test_r_and_d_at_their_clipping_bounds(rng):
    """Channel 0 is past both upper bounds, channel 1 past both lower ones, channel
    2 inside them, where the output is the input normalized with the moving
    statistics (here mean 0, standard deviation 1): the input itself."""
    epsilon, clipping = 1e-3, {"rmax": 2.0, "rmin": 0.5, "dmax": 1.0}
    x = rng.normal(0.0, 1.0, (64, 3)).astype("float32")
    x[:, 0] = 4.0 * x[:, 0] + 10.0  # r near 4, d near 10
    x[:, 1] = 0.1 * x[:, 1] - 10.0  # r near 0.1, d near -10
    layer = bnk.BatchNorm(renorm=True, renorm_clipping=clipping, epsilon=epsilon)
    layer.build(x.shape)
    gamma = np.array([1.5, 0.5, 2.0], "float32")
    beta = np.array([0.2, -0.3, 0.1], "float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    y = to_numpy(layer(x, training=True))
    x64 = x.astype("float64")
    x_hat = (x64 - x64.mean(axis=0)) / np.sqrt(x64.var(axis=0) + epsilon)
    np.testing.assert_allclose(
        y[:, 0], gamma[0] * (x_hat[:, 0] * 2.0 + 1.0) + beta[0], rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        y[:, 1], gamma[1] * (x_hat[:, 1] * 0.5 - 1.0) + beta[1], rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        y[:, 2], gamma[2] * x64[:, 2] + beta[2], rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize(
    "clipping", [None, {"rmax": 1.05, "rmin": 0.95, "dmax": 0.05}],
    ids=["unclipped", "clipped"],
)
def test_one_sgd_step_holds_r_and_d_constant(rng, clipping):
    """The gradients reaching the layer before are the paper's, with r and d held
    constant: were they differentiated, the unclipped output would be the input
    normalized with the moving statistics, whose gradient is gamma / sigma."""
    epsilon, learning_rate, batch, channels = 1e-3, 0.5, 16, 3
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(channels, use_bias=False)
    norm = bnk.BatchNorm(renorm=True, renorm_clipping=clipping, epsilon=epsilon)
    model = keras.Model(inputs, norm(dense(inputs)))
    x = rng.normal(0.0, 1.0, (batch, 4)).astype("float32")
    target = rng.normal(0.0, 1.0, (batch, channels)).astype("float32")
    kernel = rng.normal(0.0, 1.0, (4, channels)).astype("float32")
    dense.kernel.assign(kernel)
    h = x.astype("float64") @ kernel
    # The renorm statistics away from the batch's: r about 0.6 to 2, d about 0.3.
    weights = random_renorm_weights(rng, channels)
    weights[-1] = (h.std(axis=0) * [0.5, 0.7, 1.6]).astype("float32")
    weights[-2] = (h.mean(axis=0) - 0.3 * weights[-1]).astype("float32")
    norm.set_weights(weights)
    gamma, beta, *_, renorm_mean, renorm_stddev = (w.astype("float64") for w in weights)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    model.train_on_batch(x, target)

    y, _, _, r, d = batch_renorm_train(
        h, gamma, beta, renorm_mean, renorm_stddev, epsilon, clipping
    )
    assert np.all(np.abs(r - 1.0) > 0.04) and np.all(np.abs(d) > 0.04)
    dy = 2.0 * (y - target) / y.size  # mean squared error
    dh = batch_renorm_input_gradient(h, dy, gamma, r, epsilon)
    assert_close(dense.kernel, kernel - learning_rate * x.T @ dh)
    assert_close(norm.gamma, gamma - learning_rate * np.sum(dy * (y - beta) / gamma, 0))
    assert_close(norm.beta, beta - learning_rate * np.sum(dy, axis=0))


def test_ghost_batches_each_have_their_r_and_d(rng):
    """Each sub-batch is Algorithm 1 with the same moving statistics; these follow
    the mean over the sub-batches of their means and standard deviations."""
    momentum, epsilon, size = 0.8, 1e-3, 4
    layer, weights = renorm_layer(
        rng, (12, 3), momentum=momentum, epsilon=epsilon, renorm_momentum=momentum,
        renorm_clipping=CLIPPING, virtual_batch_size=size,
    )
    gamma, beta, mean, _, stddev, renorm_mean, renorm_stddev = weights
    x = rng.normal(1.0, 2.0, (12, 3)).astype("float32")
    y, means, stddevs = [], [], []
    for start in range(0, len(x), size):
        outputs, mu_b, sigma_b, _, _ = batch_renorm_train(
            x[start:start + size], gamma, beta, renorm_mean, renorm_stddev,
            epsilon, CLIPPING,
        )
        y.append(outputs)
        means.append(mu_b)
        stddevs.append(sigma_b)
    assert_close(layer(x, training=True), np.concatenate(y))
    assert_close(layer.moving_mean, moving_update(mean, np.mean(means, 0), momentum))
    assert_close(layer.renorm_stddev, moving_update(
        renorm_stddev, np.mean(stddevs, 0), momentum))


def test_all_masked_batch_keeps_its_statistics(rng):
    """Normalized with the moving statistics, uncorrected; the statistics stay, but
    for the moving variance, which is moving_stddev**2 - epsilon after any step."""
    layer, weights = renorm_layer(rng, (4, 5, 3), renorm_clipping=CLIPPING)
    gamma, beta, mean, variance, stddev = weights[:5]
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    y = layer(x, training=True, mask=np.zeros((4, 5), bool))
    assert_close(y, batch_norm_infer(x, gamma, beta, mean, variance, 1e-3))
    for name, before in zip(RENORM_WEIGHTS[2:], weights[2:], strict=True):
        if name != "moving_variance":
            assert_close(getattr(layer, name), before, tol=1e-6)
    assert_close(layer.moving_variance, stddev.astype("float64") ** 2 - 1e-3)


def test_synchronized_without_replicas_is_plain_renorm(rng):
    x = rng.normal(1.0, 2.0, (8, 5, 3)).astype("float32")
    mask = rng.random(x.shape[:-1]) > 0.3
    layers = [
        renorm_layer(np.random.default_rng(0), x.shape, renorm_clipping=CLIPPING,
                     synchronized=synchronized)[0]
        for synchronized in (True, False)
    ]
    outputs = [to_numpy(layer(x, training=True, mask=mask)) for layer in layers]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-6)
    for synchronized, plain in zip(
        layers[0].get_weights(), layers[1].get_weights(), strict=True
    ):
        np.testing.assert_allclose(synchronized, plain, rtol=1e-6, atol=1e-7)


def test_mixed_precision_keeps_float32_statistics(rng):
    x = rng.normal(1.0, 2.0, (16, 3)).astype("float32")
    reference, weights = renorm_layer(rng, x.shape, renorm_clipping=CLIPPING)
    expected = to_numpy(reference(x, training=True))
    keras.config.set_dtype_policy("mixed_float16")
    layer = bnk.BatchNorm(renorm=True, renorm_clipping=CLIPPING)
    layer.build(x.shape)
    layer.set_weights(weights)
    y = layer(keras.ops.cast(x, "float16"), training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert {keras.backend.standardize_dtype(w.dtype) for w in layer.weights} == {
        "float32"}
    np.testing.assert_allclose(to_numpy(y).astype("float32"), expected, atol=1e-2)
    for ours, theirs in zip(layer.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3)


def test_weights_and_their_initial_values():
    layer = bnk.BatchNorm(
        renorm=True, moving_mean_initializer=keras.initializers.Constant(3.0),
        moving_variance_initializer=keras.initializers.Constant(4.0),
    )
    layer.build((2, 5))
    assert [w.name for w in layer.weights] == RENORM_WEIGHTS
    assert [w.trainable for w in layer.weights] == [True, True] + [False] * 5
    for name, value in [("moving_stddev", 2.0), ("renorm_mean", 3.0),
                        ("renorm_stddev", 2.0)]:
        assert_close(getattr(layer, name), np.full(5, value))
    keras_layer = keras.layers.BatchNormalization(renorm=True)
    keras_layer.build((2, 5))
    assert [w.name for w in keras_layer.weights] == RENORM_WEIGHTS


def test_config_round_trips_and_reads_keras_config():
    layer = bnk.BatchNorm(
        renorm=True, renorm_clipping={"rmax": 3.0, "dmax": 5.0},
        renorm_momentum=0.95, virtual_batch_size=2,
    )
    config = layer.get_config()
    assert bnk.BatchNorm.from_config(config).get_config() == config
    theirs = keras.layers.BatchNormalization(
        renorm=True, renorm_clipping={"rmax": 3.0, "rmin": 0.3, "dmax": 5.0},
        renorm_momentum=0.95,
    ).get_config()
    ours = bnk.BatchNorm.from_config(theirs).get_config()
    assert {key: ours[key] for key in theirs} == theirs


def test_saved_model_loads_with_renorm(tmp_path, rng):
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(
        bnk.BatchNorm(renorm=True, renorm_clipping=CLIPPING, renorm_momentum=0.9,
                      name="bn")(inputs)
    )
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    x = rng.normal(1.0, 2.0, (32, 4)).astype("float32")
    model.fit(x, rng.normal(size=(32, 2)).astype("float32"), epochs=2, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.get_layer("bn").get_config() == model.get_layer("bn").get_config()
    for saved, restored in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, restored)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )
