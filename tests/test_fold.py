"""`fold_batch_norm`: folded models predict what the originals predict."""

import warnings

import keras
import numpy as np
import pytest
from channels_first import predict

import bnk
from bnk.fold import BATCH_NORMS, fold_batch_norm

KERAS_BN = keras.layers.BatchNormalization


def assert_same_predictions(actual, expected):
    """Equal within 1e-5 relative, plus 1e-5 of the output's largest magnitude.

    The absolute part covers outputs near zero, which the folded and the
    original model reach through different float32 roundings.
    """
    actual, expected = (
        keras.ops.convert_to_numpy(actual),
        keras.ops.convert_to_numpy(expected),
    )
    atol = 1e-5 * np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=atol)


def randomize(model, rng, batch_norms_only=False):
    """Weights unlike any initializer's: a fold that ignores one shows up."""
    for layer in model.layers:
        if isinstance(layer, BATCH_NORMS):
            channels = layer.moving_mean.shape[0]
            weights = [rng.uniform(0.5, 1.5, channels)] if layer.scale else []
            weights += [rng.normal(0.0, 0.5, channels)] if layer.center else []
            weights += [rng.normal(0.0, 0.5, channels), rng.uniform(0.5, 2.0, channels)]
            layer.set_weights(weights)
        elif not batch_norms_only:
            layer.set_weights(
                [rng.normal(0.0, 0.5, w.shape) for w in layer.get_weights()]
            )


def batch_norms(model):
    return [layer.name for layer in model.layers if isinstance(layer, BATCH_NORMS)]


def fold_recording_warnings(model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folded = fold_batch_norm(model)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return folded, [m for m in messages if m.startswith("Batch norm")]


@pytest.mark.parametrize(
    "normalization", [bnk.BatchNorm, KERAS_BN, None], ids=["bnk", "keras", "none"]
)
def test_cnn_loses_its_batch_norms_and_keeps_its_predictions(normalization):
    rng = np.random.default_rng(0)
    model = bnk.CNN(normalization=normalization)
    model.build((None, 28, 28, 1))
    randomize(model, rng, batch_norms_only=True)
    x = rng.normal(size=(8, 28, 28, 1)).astype("float32")

    folded, messages = fold_recording_warnings(model)

    assert batch_norms(model) == ([] if normalization is None else ["bn1", "bn2"])
    assert batch_norms(folded) == []
    assert messages == [] and folded.unfolded_batch_norms == {}
    layers = [
        layer
        for layer in folded.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    assert [layer.name for layer in layers] == [
        layer.name
        for layer in model.layers_in_call_order
        if layer.name not in ("bn1", "bn2")
    ]
    assert_same_predictions(folded.predict(x, verbose=0), model(x, training=False))


@pytest.mark.parametrize(
    "built_for, image",
    [((None, 32, 32, 3), (32, 32, 3)), ((2, 28, 28), (28, 28, 1))],
    ids=["rgb_32x32", "without_channel_axis"],
)
def test_cnn_folds_for_the_images_it_was_built_for(built_for, image):
    rng = np.random.default_rng(4)
    model = bnk.CNN()
    model.build(built_for)
    randomize(model, rng, batch_norms_only=True)
    x = rng.normal(size=(2, *image)).astype("float32")

    folded = fold_batch_norm(model)

    assert tuple(folded.inputs[0].shape) == (None, *image)
    assert_same_predictions(folded.predict(x, verbose=0), model(x, training=False))


def build(kind, batch_norm, api, use_bias=True, center=True, scale=True):
    """`kind` layer -> batch norm on its channels -> ReLU, and an input for it."""
    if kind == "dense":
        shape, axis, producer = (6,), -1, keras.layers.Dense(4, use_bias=use_bias)
    elif kind == "conv1d":
        shape, axis = (9, 3), -1
        producer = keras.layers.Conv1D(4, 3, use_bias=use_bias)
    elif kind == "conv_last":
        shape, axis = (7, 7, 3), -1
        producer = keras.layers.Conv2D(4, 3, padding="same", use_bias=use_bias)
    else:
        shape, axis = (3, 7, 7), 1
        producer = keras.layers.Conv2D(
            4, 3, data_format="channels_first", use_bias=use_bias
        )
    layers = [
        producer,
        batch_norm(axis=axis, center=center, scale=scale, name="bn"),
        keras.layers.ReLU(),
    ]
    if api == "sequential":
        model = keras.Sequential([keras.Input(shape), *layers])
    else:
        inputs = x = keras.Input(shape)
        for layer in layers:
            x = layer(x)
        model = keras.Model(inputs, x)
    rng = np.random.default_rng(1)
    randomize(model, rng)
    return model, rng.normal(size=(5, *shape)).astype("float32")


@pytest.mark.parametrize("api", ["functional", "sequential"])
@pytest.mark.parametrize("batch_norm", [bnk.BatchNorm, KERAS_BN], ids=["bnk", "keras"])
@pytest.mark.parametrize("kind", ["dense", "conv1d", "conv_last", "conv_first"])
def test_batch_norm_after_conv_or_dense_is_folded(kind, batch_norm, api):
    model, x = build(kind, batch_norm, api)
    folded, messages = fold_recording_warnings(model)
    assert batch_norms(folded) == [] and messages == []
    assert_same_predictions(predict(folded, x), predict(model, x))


@pytest.mark.parametrize(
    "use_bias, center, scale",
    [
        (False, True, True),
        (True, False, True),
        (True, True, False),
        (False, False, False),
    ],
)
@pytest.mark.parametrize("batch_norm", [bnk.BatchNorm, KERAS_BN], ids=["bnk", "keras"])
def test_missing_bias_beta_or_gamma(batch_norm, use_bias, center, scale):
    model, x = build("conv_first", batch_norm, "functional", use_bias, center, scale)
    folded, _ = fold_recording_warnings(model)
    assert batch_norms(folded) == []
    assert folded.layers[1].use_bias  # The folded conv got the bias it needs.
    assert_same_predictions(predict(folded, x), predict(model, x))


def test_batch_norms_that_cannot_be_folded_stay_and_are_named():
    Conv2D, Dense = keras.layers.Conv2D, keras.layers.Dense
    inputs = keras.Input((6, 6, 3))
    x = KERAS_BN(name="bn_on_input")(inputs)
    x = Conv2D(4, 3, activation="relu", name="conv_relu")(x)
    x = bnk.BatchNorm(name="bn_after_activation")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = KERAS_BN(name="bn_after_relu")(x)
    x = Conv2D(4, 1, name="conv_branched")(x)
    x = keras.layers.Add()([bnk.BatchNorm(name="bn_on_branched")(x), x])
    x = Conv2D(4, 1, name="conv_ok")(x)
    x = bnk.BatchNorm(name="bn_ok")(x)
    x = Conv2D(5, 1, name="conv_axis")(x)
    x = bnk.BatchNorm(axis=1, name="bn_on_height")(x)  # Not the channel axis.
    shared = Dense(3, name="dense_shared")(keras.layers.Flatten()(x))
    y = KERAS_BN(name="bn_on_shared")(shared)
    model = keras.Model(inputs, [y, shared])  # `shared` also leaves the model.
    rng = np.random.default_rng(2)
    randomize(model, rng)
    x = rng.normal(size=(4, 6, 6, 3)).astype("float32")

    folded, messages = fold_recording_warnings(model)

    unfoldable = [
        "bn_on_input",
        "bn_after_activation",
        "bn_after_relu",
        "bn_on_branched",
        "bn_on_height",
        "bn_on_shared",
    ]
    assert sorted(batch_norms(folded)) == sorted(unfoldable)  # bn_ok is gone.
    assert sorted(folded.unfolded_batch_norms) == sorted(unfoldable)
    assert len(messages) == len(unfoldable)
    for name in unfoldable:
        reason = folded.unfolded_batch_norms[name]
        assert any(repr(name) in m and reason in m for m in messages)
    for actual, expected in zip(folded(x), model(x, training=False), strict=True):
        assert_same_predictions(actual, expected)


@pytest.mark.parametrize("which", ["cnn", "sequential", "functional"])
def test_original_model_is_left_untouched(which):
    rng = np.random.default_rng(3)
    if which == "cnn":
        model = bnk.CNN()
        model.build((None, 28, 28, 1))
        randomize(model, rng, batch_norms_only=True)
        x = rng.normal(size=(4, 28, 28, 1)).astype("float32")
    else:
        model, x = build("conv_last", bnk.BatchNorm, which, use_bias=False)
    names = [layer.name for layer in model.layers]
    weights = model.get_weights()
    before = keras.ops.convert_to_numpy(model(x, training=False))

    folded = fold_batch_norm(model)
    # The copy has its own variables: changing it cannot reach the original.
    folded.set_weights([np.zeros(w.shape) for w in folded.get_weights()])

    assert [layer.name for layer in model.layers] == names
    assert len(model.get_weights()) == len(weights)
    for after, original in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(after, original)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x, training=False)), before
    )
