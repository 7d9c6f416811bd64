"""The suite runs every backend at full float32 precision (conftest.py), so that a GPU's
faster, rounded matrix products do not fail tests that compare against references."""

import keras
import numpy as np


def test_matrix_products_run_at_full_float32_precision():
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        assert jax.config.jax_default_matmul_precision == "highest"
    elif backend == "torch":
        import torch

        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    else:
        import tensorflow as tf

        assert not tf.config.experimental.tensor_float_32_execution_enabled()


def test_a_matrix_product_is_as_precise_as_float32_allows(rng):
    """A product whose rounded (TF32) result is off by about 1e-4, against float64."""
    a = rng.standard_normal((256, 256)).astype("float32")
    b = rng.standard_normal((256, 256)).astype("float32")
    got = keras.ops.convert_to_numpy(keras.ops.matmul(a, b)).astype("float64")
    exact = a.astype("float64") @ b.astype("float64")
    assert np.abs(got - exact).max() / np.abs(exact).max() < 1e-5
