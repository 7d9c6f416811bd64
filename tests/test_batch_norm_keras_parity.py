"""bnk.BatchNorm agrees with keras.layers.BatchNormalization given the same weights,
plain and with Batch Renormalization (clipped r and d, its own momentum), the weights
moving from Keras's layer to bnk's and back."""

import keras
import numpy as np
import pytest
from conftest import random_bn_weights, random_renorm_weights, to_numpy

import bnk

MOMENTUM, EPSILON, TOL = 0.9, 1e-3, 1e-5

# (input shape, channel axis): 2D, 4D channels_last and channels_first, 3D.
LAYOUTS = {
    "2d": ((16, 5), -1),
    "4d_channels_last": ((8, 6, 6, 3), -1),
    "4d_channels_first": ((8, 3, 6, 6), 1),
    "3d_sequence": ((4, 7, 5), -1),
}
# The arguments both layers get, and their weights.
VARIANTS = {
    "plain": ({}, random_bn_weights),
    "renorm": (
        {
            "renorm": True,
            "renorm_clipping": {"rmax": 1.5, "rmin": 0.5, "dmax": 0.8},
            "renorm_momentum": 0.7,
        },
        random_renorm_weights,
    ),
}


def make_pair(rng, shape, axis, variant="plain"):
    """bnk's layer and Keras's, bnk's given Keras's random weights."""
    kwargs, random_weights = VARIANTS[variant]
    ours = bnk.BatchNorm(axis=axis, momentum=MOMENTUM, epsilon=EPSILON, **kwargs)
    theirs = keras.layers.BatchNormalization(
        axis=axis, momentum=MOMENTUM, epsilon=EPSILON, **kwargs
    )
    ours.build(shape)
    theirs.build(shape)
    theirs.set_weights(random_weights(rng, shape[axis]))
    ours.set_weights(theirs.get_weights())
    return ours, theirs


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_training_and_inference_outputs_and_moving_statistics(rng, layout, variant):
    shape, axis = LAYOUTS[layout]
    ours, theirs = make_pair(rng, shape, axis, variant)
    for _ in range(3):
        x = rng.normal(1.5, 2.0, shape).astype("float32")
        np.testing.assert_allclose(
            to_numpy(ours(x, training=True)),
            to_numpy(theirs(x, training=True)),
            atol=TOL,
            rtol=TOL,
        )
    for ours_w, theirs_w in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(ours_w, theirs_w, atol=TOL, rtol=TOL)
    # bnk's weights back into Keras's layer: the same inference.
    theirs.set_weights(ours.get_weights())
    x = rng.normal(1.5, 2.0, shape).astype("float32")
    np.testing.assert_allclose(
        to_numpy(ours(x, training=False)),
        to_numpy(theirs(x, training=False)),
        atol=TOL,
        rtol=TOL,
    )


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", ["3d_sequence", "4d_channels_first"])
def test_masked_training_matches_keras(rng, layout, variant):
    """Keras's mask convention whatever the axis: the mask covers every axis but the
    last (for channels first, each entry masks a row of one channel)."""
    shape, axis = LAYOUTS[layout]
    ours, theirs = make_pair(rng, shape, axis, variant)
    x = rng.normal(0.0, 1.0, shape).astype("float32")
    mask = rng.random(shape[:-1]) > 0.4
    mask[0, ..., 0] = True
    np.testing.assert_allclose(
        to_numpy(ours(x, training=True, mask=mask)),
        to_numpy(theirs(x, training=True, mask=mask)),
        atol=TOL,
        rtol=TOL,
    )
    for ours_w, theirs_w in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(ours_w, theirs_w, atol=TOL, rtol=TOL)


def _small_model(shape, axis, bn_layer):
    inputs = keras.Input(shape[1:])
    x = bn_layer(inputs)
    if len(shape) == 4:
        if axis == 1:
            # Channels last for the convolution, which not every CPU kernel of
            # TensorFlow runs channels first (see tests/channels_first.py).
            x = keras.layers.Permute((2, 3, 1))(x)
        x = keras.layers.Conv2D(2, 3)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(3)(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_weights_after_one_optimizer_step(rng, layout, variant):
    """Same gradients: every weight equal after one SGD step on the same batch."""
    shape, axis = LAYOUTS[layout]
    ours, theirs = make_pair(rng, shape, axis, variant)
    model_ours = _small_model(shape, axis, ours)
    model_theirs = _small_model(shape, axis, theirs)
    model_theirs.set_weights(model_ours.get_weights())
    gamma_before = ours.get_weights()[0]
    x = rng.normal(0.5, 1.5, shape).astype("float32")
    y = rng.normal(0.0, 1.0, (shape[0], 3)).astype("float32")
    for model in (model_ours, model_theirs):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.train_on_batch(x, y)
    weights = zip(model_ours.get_weights(), model_theirs.get_weights(), strict=True)
    for w_ours, w_theirs in weights:
        np.testing.assert_allclose(w_ours, w_theirs, atol=TOL, rtol=TOL)
    # The step moved gamma, so the comparison is not of untouched weights.
    assert np.abs(ours.get_weights()[0] - gamma_before).max() > 1e-4
