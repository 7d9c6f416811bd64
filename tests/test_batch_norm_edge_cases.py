"""Numerically hard inputs: bnk stays finite and exact where Keras's BN may not."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

import bnk
from bnk import functional


def test_large_mean_gives_unit_standard_deviation(rng):
    # Keras's own layer on torch returns NaN here (one-pass variance).
    x = (rng.normal(0.0, 1.0, (4096, 3)) + 1e4).astype("float32")
    layer = bnk.BatchNorm(momentum=0.0)
    y = to_numpy(layer(x, training=True))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.std(axis=0), 1.0, atol=1e-3)
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), x.astype("float64").var(axis=0), rtol=1e-3
    )


def test_batch_of_one_is_finite(rng):
    layer = bnk.BatchNorm()
    y = to_numpy(layer(rng.normal(size=(1, 5)).astype("float32"), training=True))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, 0.0, atol=1e-6)  # variance 0: output is beta


def test_constant_channel_is_finite(rng):
    x = rng.normal(size=(8, 4, 4, 3)).astype("float32")
    x[..., 1] = 7.0
    layer = bnk.BatchNorm()
    y = to_numpy(layer(x, training=True))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[..., 1], 0.0, atol=1e-5)
    np.testing.assert_allclose(to_numpy(layer.moving_mean)[1], 0.7, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_large_low_precision_inputs(rng, dtype):
    # Squares of these overflow float16 (max 65504): statistics must be float32.
    x = keras.ops.cast((rng.normal(0.0, 300.0, (64, 4)) + 3e4).astype("float32"), dtype)
    exact = to_numpy(keras.ops.cast(x, "float32")).astype("float64")
    layer = bnk.BatchNorm(momentum=0.0)
    y = to_numpy(layer(x, training=True))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.std(axis=0), 1.0, atol=1e-3)
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), exact.mean(axis=0), rtol=1e-6
    )


@pytest.mark.parametrize("unbiased", [False, True], ids=["biased", "unbiased"])
def test_all_masked_input_keeps_moving_statistics(rng, unbiased):
    layer = bnk.BatchNorm(unbiased_moving_variance=unbiased)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    mask = np.zeros((2, 5), dtype=bool)
    y = to_numpy(layer(x, training=True, mask=mask))
    assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(to_numpy(layer.moving_mean), np.zeros(3))
    np.testing.assert_array_equal(to_numpy(layer.moving_variance), np.ones(3))
    np.testing.assert_allclose(y, to_numpy(layer(x, training=False)), rtol=1e-6)


def test_masked_entries_are_left_out_of_statistics(rng):
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    mask = np.ones((2, 6), dtype=bool)
    mask[:, 4:] = False
    x_masked = x.copy()
    x_masked[:, 4:] = 1e6  # would dominate the statistics if counted
    layer = bnk.BatchNorm(momentum=0.0)
    y = to_numpy(layer(x_masked, training=True, mask=mask))
    valid = x[:, :4].reshape(-1, 3)
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), valid.mean(axis=0), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(y[:, :4].reshape(-1, 3).std(axis=0), 1.0, atol=1e-2)


@pytest.mark.parametrize("axis", [1, -1])
def test_mask_covers_every_axis_but_the_last(rng, axis):
    """Keras's convention whatever the channel axis: on (batch, 2, 3) inputs, the
    (batch, 2) mask of `Masking` leaves out the whole last-axis row at a masked
    position, which for axis=1 is 3 entries of one channel."""
    x = rng.normal(2.0, 3.0, (5, 2, 3)).astype("float32")
    x[[0, 3], 1, :] = 0.0
    mask = to_numpy(keras.layers.Masking().compute_mask(x))
    assert mask.shape == (5, 2) and mask.sum() == 8
    layer = bnk.BatchNorm(axis=axis, momentum=0.0)
    layer(x, training=True, mask=mask)
    kept = np.broadcast_to(mask[..., None], x.shape)
    values = np.moveaxis(np.where(kept, x, np.nan).astype("float64"), axis, -1)
    values = values.reshape(-1, x.shape[axis])
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), np.nanmean(values, axis=0), rtol=1e-5
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), np.nanvar(values, axis=0), rtol=1e-5
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(rng, policy):
    keras.config.set_dtype_policy(policy)
    layer = bnk.BatchNorm(momentum=0.0)
    x = (rng.normal(0.0, 50.0, (128, 4)) + 2e3).astype("float32")
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    assert all(
        keras.backend.standardize_dtype(w.dtype) == "float32" for w in layer.weights
    )
    # The statistics come from the low-precision input, accumulated in float32.
    x_low = to_numpy(keras.ops.cast(x, policy.split("_")[1])).astype("float64")
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), x_low.var(axis=0), rtol=1e-4
    )
    np.testing.assert_allclose(
        to_numpy(y).astype("float64").std(axis=0), 1.0, atol=2e-2
    )


def first_block_batch(rng):
    """Like the CNN's first block: 64 x 28 x 28 entries per channel, most of them the
    same background value (the convolution of MNIST's empty border)."""
    x = np.full((64, 28, 28, 8), 0.01, "float32")
    ink = rng.random(x.shape) < 0.2
    x[ink] = rng.normal(0.3, 0.2, ink.sum())
    return x


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_statistics_of_a_large_batch_keep_float32_precision(rng, masked):
    """TensorFlow's reduction over all three axes at once is off by about 7e-5 here;
    bnk's moments, one axis at a time on TensorFlow and all at once on JAX and torch
    (`bnk.functional.reduces_one_axis_at_a_time`), stay within a few float32
    roundings (about 2e-7) on every backend.
    """
    x = first_block_batch(rng)
    mask = rng.random(x.shape[:-1]) > 0.3 if masked else np.ones(x.shape[:-1], bool)
    layer = bnk.BatchNorm(momentum=0.0)
    layer(x, training=True, mask=mask if masked else None)
    kept = x[mask].astype("float64")
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), kept.mean(axis=0), rtol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), kept.var(axis=0), rtol=1e-6
    )


def test_one_reduction_over_every_axis_only_where_it_keeps_precision(rng):
    """Where the backend's sum over every axis at once loses float32 precision on the
    first block's batch (TensorFlow's CPU kernel: 7e-5), bnk reduces one axis at a
    time."""
    x = first_block_batch(rng)
    exact = x.astype("float64").mean(axis=(0, 1, 2))
    mean = to_numpy(keras.ops.sum(x, axis=(0, 1, 2))) / (64 * 28 * 28)
    error = np.max(np.abs(mean - exact) / exact)
    if error > 1e-6:
        assert functional.reduces_one_axis_at_a_time(), error


def test_statistics_sum_every_axis_at_once_where_the_backend_is_precise(
    rng, monkeypatch
):
    """BN's statistics in training take one `keras.ops.sum` over every reduced axis
    where `reduces_one_axis_at_a_time` is False, else one per axis, innermost first."""
    axes_summed = []
    ops_sum = keras.ops.sum

    def recorded_sum(x, axis=None, keepdims=False):
        axes_summed.append(axis)
        return ops_sum(x, axis=axis, keepdims=keepdims)

    monkeypatch.setattr(functional.ops, "sum", recorded_sum)
    bnk.BatchNorm()(first_block_batch(rng), training=True)
    one_statistic = [(0, 1, 2)]
    if functional.reduces_one_axis_at_a_time():
        one_statistic = [2, 1, 0]
    assert axes_summed == one_statistic * 2  # The mean, then the variance.


def test_reduction_is_chosen_per_backend():
    assert functional.reduces_one_axis_at_a_time("tensorflow")
    assert not functional.reduces_one_axis_at_a_time("jax")
    assert not functional.reduces_one_axis_at_a_time("torch")
    assert functional.reduces_one_axis_at_a_time("numpy")  # Not measured: the safe one.
