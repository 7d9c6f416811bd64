"""A model saved under one backend loads under the other two and predicts the same."""

import json
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
    import json, sys, numpy as np, keras
    import bnk  # registers the classes
    model = keras.saving.load_model(sys.argv[1])
    np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
    norms = [layer for layer in model.layers if isinstance(layer, bnk.BatchNorm)]
    with open(sys.argv[4], "w") as file:
        json.dump([layer.get_config() for layer in norms], file)
    """
)


def _trained_model(rng):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = bnk.BatchNorm(virtual_batch_size=8)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3)(
        bnk.BatchNorm(unbiased_moving_variance=True, synchronized=True)(x)
    )
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
         str(tmp_path / "y.npy"), str(tmp_path / "configs.json")],
        env={**os.environ, "KERAS_BACKEND": other},
        check=True,
    )
    # Ghost batches and synchronized statistics included.
    configs = [
        layer.get_config() for layer in model.layers if isinstance(layer, bnk.BatchNorm)
    ]
    assert json.loads((tmp_path / "configs.json").read_text()) == json.loads(
        json.dumps(configs)
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "normalization",
    [bnk.BatchNorm, keras.layers.BatchNormalization, None],
    ids=["bnk", "keras", "none"],
)
def test_cnn_trains_saves_and_loads_on_this_backend(tmp_path, rng, normalization):
    model = bnk.CNN(normalization=normalization)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.train_on_batch(rng.random((8, 28, 28, 1)).astype("float32"), np.arange(8))
    x = rng.random((4, 28, 28, 1)).astype("float32")
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "cnn.keras")
    loaded = keras.saving.load_model(tmp_path / "cnn.keras")
    assert isinstance(loaded, bnk.CNN) and loaded.normalization is normalization
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6
    )
