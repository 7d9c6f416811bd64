"""The channels-last twin that stands in for channels-first convolutions where the
CPU kernel is missing (tests/channels_first.py) computes what the model computes."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from channels_first import channels_first_conv_runs, channels_last_twin

import bnk

TESTS = Path(__file__).resolve().parent


def channels_first_model(batch_norm):
    inputs = keras.Input((3, 7, 7))
    x = keras.layers.Conv2D(4, 3, data_format="channels_first")(inputs)
    x = batch_norm(axis=1)(x)
    outputs = keras.layers.ReLU()(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in model.get_weights()])
    return model, rng.normal(size=(5, 3, 7, 7)).astype("float32")


@pytest.mark.parametrize(
    "batch_norm", [bnk.BatchNorm, keras.layers.BatchNormalization], ids=["bnk", "keras"]
)
def test_twin_predicts_what_the_channels_first_model_predicts(batch_norm):
    if not channels_first_conv_runs():
        pytest.skip(
            f"{keras.backend.backend()} has no channels-first (NCHW) Conv2D CPU kernel "
            "here (TensorFlow without oneDNN), so there is nothing to compare the "
            "twin with; the JAX and PyTorch runs of the suite compare it."
        )
    model, x = channels_first_model(batch_norm)
    twin = channels_last_twin(model)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    actual = keras.ops.convert_to_numpy(twin(np.transpose(x, (0, 2, 3, 1))))
    np.testing.assert_allclose(np.transpose(actual, (0, 3, 1, 2)), expected, rtol=1e-5,
                               atol=1e-5)


def probe(onednn):
    """`channels_first_conv_runs()` in a fresh process with oneDNN forced on or off."""
    code = "from channels_first import channels_first_conv_runs as f; print(f())"
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


def test_only_tensorflow_without_onednn_lacks_the_kernel():
    """The fallback is taken exactly where the kernel is missing, never silently."""
    if keras.backend.backend() != "tensorflow":
        assert channels_first_conv_runs()
        return
    assert probe("0") == "False"
    assert probe("1") == "True"
