"""A model saved under one backend loads under the other two and predicts the same."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import BACKENDS

import bnk

LOAD_AND_PREDICT = textwrap.dedent(
    """
    import sys, numpy as np, keras
    import bnk  # registers the classes
    model = keras.saving.load_model(sys.argv[1])
    np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
    """
)


def _trained_model(rng):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = bnk.BatchNorm()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3)(bnk.BatchNorm(unbiased_moving_variance=True)(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    model.fit(
        rng.normal(2.0, 3.0, (32, 6, 6, 2)).astype("float32"),
        rng.normal(size=(32, 3)).astype("float32"),
        epochs=2, verbose=0,
    )
    return model


@pytest.mark.parametrize("other", [b for b in BACKENDS if b != keras.backend.backend()])
def test_saved_model_loads_under_other_backend(tmp_path, rng, other):
    model = _trained_model(rng)
    path = tmp_path / "model.keras"
    model.save(path)
    x = rng.normal(2.0, 3.0, (16, 6, 6, 2)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(path), str(tmp_path / "x.npy"),
         str(tmp_path / "y.npy")],
        env={**os.environ, "KERAS_BACKEND": other},
        check=True,
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5
    )


def test_cnn_round_trips_on_this_backend(tmp_path, rng):
    model = bnk.CNN()
    x = rng.random((4, 28, 28, 1)).astype("float32")
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "cnn.keras")
    loaded = keras.saving.load_model(tmp_path / "cnn.keras")
    assert isinstance(loaded, bnk.CNN)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
