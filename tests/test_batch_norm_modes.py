"""Training and inference modes under fit / predict / evaluate / stateless_call."""

import keras
import numpy as np
from conftest import to_numpy

import bnk


def _model():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1)(bnk.BatchNorm(name="bn")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    return model


def _stats(model):
    bn = model.get_layer("bn")
    return to_numpy(bn.moving_mean).copy(), to_numpy(bn.moving_variance).copy()


def test_fit_updates_moving_statistics(rng):
    model = _model()
    x = rng.normal(5.0, 3.0, (64, 4)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    mean, variance = _stats(model)
    # 8 updates with momentum 0.9 from (0, 1): towards (5, 9) by 1 - 0.9**8.
    np.testing.assert_allclose(mean, 5.0 * (1 - 0.9**8), atol=0.6)
    np.testing.assert_allclose(variance, 1 + 8.0 * (1 - 0.9**8), atol=2.5)
    assert np.all(mean > 2.0)


def test_predict_and_evaluate_leave_statistics_alone(rng):
    model = _model()
    x = rng.normal(5.0, 3.0, (64, 4)).astype("float32")
    before = _stats(model)
    model.predict(x, verbose=0)
    model.evaluate(x, np.zeros((64, 1), "float32"), verbose=0)
    after = _stats(model)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])


def test_stateless_call_returns_updates_and_leaves_variables(rng):
    layer = bnk.BatchNorm()
    x = rng.normal(3.0, 2.0, (32, 4)).astype("float32")
    layer.build(x.shape)
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    outputs, new_non_trainable = layer.stateless_call(
        trainable, non_trainable, x, training=True
    )
    new_mean = to_numpy(new_non_trainable[0])
    np.testing.assert_allclose(new_mean, 0.1 * x.mean(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(to_numpy(layer.moving_mean), np.zeros(4))
    np.testing.assert_array_equal(to_numpy(layer.moving_variance), np.ones(4))
    assert np.abs(to_numpy(outputs).mean(axis=0)).max() < 1e-5


def test_frozen_layer_runs_in_inference_mode(rng):
    layer = bnk.BatchNorm()
    x = rng.normal(3.0, 2.0, (16, 4)).astype("float32")
    layer.build(x.shape)
    layer.trainable = False
    np.testing.assert_allclose(
        to_numpy(layer(x, training=True)), to_numpy(layer(x, training=False))
    )
    np.testing.assert_array_equal(to_numpy(layer.moving_mean), np.zeros(4))


def test_training_mode_normalizes_with_batch_statistics(rng):
    layer = bnk.BatchNorm(epsilon=1e-6)
    x = rng.normal(3.0, 2.0, (256, 4)).astype("float32")
    # Inference with the fresh moving statistics (0, 1) leaves x nearly as is.
    np.testing.assert_allclose(to_numpy(layer(x)), x / np.sqrt(1 + 1e-6), rtol=1e-5)
    y = to_numpy(layer(x, training=True))
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=0), 1, atol=1e-4)
