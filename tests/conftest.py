"""Shared fixtures. The backend is fixed per process by KERAS_BACKEND."""

import keras
import numpy as np
import pytest

BACKENDS = ("tensorflow", "jax", "torch")


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def random_bn_weights(rng, channels):
    """gamma, beta, moving_mean, moving_variance, all different from defaults."""
    return [
        rng.uniform(0.5, 1.5, channels).astype("float32"),
        rng.normal(0.0, 0.5, channels).astype("float32"),
        rng.normal(0.0, 0.5, channels).astype("float32"),
        rng.uniform(0.5, 2.0, channels).astype("float32"),
    ]
