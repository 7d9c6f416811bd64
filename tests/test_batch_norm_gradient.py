"""The closed-form backward pass of bnk.BatchNorm's training mode.

Against autodiff of the same forward pass (`closed_form_gradient=False`) and
against central finite differences of an independent float64 NumPy batch
normalization, for every configuration the closed form covers.
"""

import keras
import numpy as np
import pytest
from gradients import vjp

import bnk

# name: (input shape, channel axis, layer arguments, masked)
CASES = {
    "2d": ((16, 5), -1, {}, False),
    "4d": ((4, 5, 5, 3), -1, {}, False),
    "4d_channels_first": ((4, 3, 5, 5), 1, {}, False),
    "masked": ((6, 7, 3), -1, {}, True),
    "masked_channels_first": ((5, 2, 3), 1, {}, True),
    "ghost_batches": ((8, 3, 3, 2), -1, {"virtual_batch_size": 4}, False),
    "ghost_batches_masked": ((8, 4, 2), -1, {"virtual_batch_size": 2}, True),
    "no_scale_no_center": ((16, 5), -1, {"center": False, "scale": False}, False),
    "renorm": ((16, 5), -1, {"renorm": True, "renorm_clipping": {"rmax": 1.2}}, False),
}


def layer_with_weights(rng, shape, axis, closed_form, **kwargs):
    """A built layer whose gamma, beta and moving statistics are random."""
    layer = bnk.BatchNorm(axis=axis, closed_form_gradient=closed_form, **kwargs)
    layer.build(shape)
    channels = shape[axis]
    values = {
        "gamma": rng.uniform(0.5, 2.0, channels),
        "beta": rng.normal(0.0, 1.0, channels),
        "moving_mean": rng.normal(0.0, 1.0, channels),
        "moving_variance": rng.uniform(0.5, 2.0, channels),
    }
    for weight in layer.weights:
        name = weight.path.split("/")[-1]
        if name in values:
            weight.assign(values[name].astype("float32"))
    return layer


def random_mask(rng, shape):
    """A mask over every axis but the last that leaves out about a third, and
    the whole of one position of the second axis."""
    mask = rng.random(shape[:-1]) > 0.3
    mask[:, 0] = False
    return mask


@pytest.mark.parametrize("case", CASES)
def test_closed_form_equals_autodiff(rng, case):
    shape, axis, kwargs, masked = CASES[case]
    x = rng.normal(2.0, 3.0, shape).astype("float32")
    dy = rng.normal(0.0, 1.0, shape).astype("float32")
    mask = random_mask(rng, shape) if masked else None
    seed = rng.integers(1 << 30)
    closed, autodiff = (
        vjp(
            layer_with_weights(np.random.default_rng(seed), shape, axis, closed_form,
                               **kwargs),
            x, dy, mask,
        )
        for closed_form in (True, False)
    )
    assert len(closed) == len(autodiff) == 1 + (0 if "center" in kwargs else 2)
    for name, a, b in zip(["x", "gamma", "beta"], closed, autodiff, strict=False):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max(),
                                   err_msg=name)


def reference_loss(x, dy, gamma, beta, epsilon, axis, mask=None):
    """sum(dy * BN(x)) in float64, the statistics over the unmasked entries."""
    axes = tuple(a for a in range(x.ndim) if a != axis % x.ndim)
    weights = np.ones_like(x) if mask is None else np.broadcast_to(
        np.asarray(mask, dtype=np.float64)[..., None], x.shape
    )
    count = weights.sum(axis=axes, keepdims=True)
    mean = (x * weights).sum(axis=axes, keepdims=True) / count
    variance = ((x - mean) ** 2 * weights).sum(axis=axes, keepdims=True) / count
    shape = [1] * x.ndim
    shape[axis] = -1
    y = gamma.reshape(shape) * (x - mean) / np.sqrt(variance + epsilon)
    return np.sum(dy * (y + beta.reshape(shape)))


def finite_differences(loss, x, step):
    """Central differences of a float64 scalar function, entry by entry."""
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        gradient[index] = (loss(up) - loss(down)) / (2 * step)
    return gradient


FINITE_DIFFERENCE_CASES = {
    # name: (shape, axis, mean, spread, masked, tolerance relative to the largest)
    "2d": ((8, 3), -1, 0.0, 1.0, False, 1e-4),
    "4d": ((3, 3, 3, 2), -1, 0.5, 2.0, False, 1e-4),
    "masked": ((4, 5, 2), -1, 0.0, 1.0, True, 1e-4),
    # float32 holds 1e4 to about 1e-3: so far, and no further, the gradient holds.
    "mean_1e4": ((8, 3), -1, 1e4, 1.0, False, 1e-2),
    "batch_of_1": ((1, 3), -1, 0.0, 1.0, False, 1e-4),
    "constant_channels": ((6, 3), -1, 2.0, 0.0, False, 1e-4),
}


@pytest.mark.parametrize("case", FINITE_DIFFERENCE_CASES)
def test_gradient_matches_finite_differences(rng, case):
    shape, axis, mean, spread, masked, tolerance = FINITE_DIFFERENCE_CASES[case]
    x = (mean + spread * rng.normal(0.0, 1.0, shape)).astype("float32")
    dy = rng.normal(0.0, 1.0, shape)
    mask = random_mask(rng, shape) if masked else None
    layer = layer_with_weights(rng, shape, axis, closed_form=True)
    gamma, beta = (np.asarray(keras.ops.convert_to_numpy(w), dtype=np.float64)
                   for w in (layer.gamma, layer.beta))
    dx, dgamma, dbeta = vjp(layer, x, dy, mask)

    def loss(inputs, gamma=gamma, beta=beta):
        return reference_loss(inputs, dy, gamma, beta, layer.epsilon, axis, mask)

    x64 = x.astype(np.float64)
    for name, actual, expected in [
        ("x", dx, finite_differences(loss, x64, 1e-4 * max(spread, 1.0))),
        ("gamma", dgamma,
         finite_differences(lambda g: loss(x64, gamma=g), gamma, 1e-4)),
        ("beta", dbeta,
         finite_differences(lambda b: loss(x64, beta=b), beta, 1e-4)),
    ]:
        scale = max(np.abs(expected).max(), 1e-3)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance * scale,
                                   err_msg=name)


def test_batch_of_one_and_constant_channels_pass_no_gradient_through_the_mean(rng):
    """With no spread, BN's output is beta whatever x does along every channel
    together: the input gradient is gamma / sqrt(epsilon) * (dy - mean(dy))."""
    x = np.full((6, 3), 2.0, dtype="float32")
    dy = rng.normal(0.0, 1.0, x.shape)
    layer = layer_with_weights(rng, x.shape, -1, closed_form=True)
    gamma = keras.ops.convert_to_numpy(layer.gamma).astype(np.float64)
    dx, _, dbeta = vjp(layer, x, dy)
    expected = gamma / np.sqrt(layer.epsilon) * (dy - dy.mean(axis=0))
    np.testing.assert_allclose(dx, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dbeta, dy.sum(axis=0), rtol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_gradient_matches_float32(rng, policy):
    """Under mixed precision the statistics and the backward pass stay float32:
    the gradient is float32's up to the rounding of the half-precision input and
    output."""
    shape = (16, 4, 4, 3)
    x = rng.normal(1.0, 2.0, shape).astype("float32")
    dy = rng.normal(0.0, 1.0, shape).astype("float32")
    seed = rng.integers(1 << 30)
    expected = vjp(
        layer_with_weights(np.random.default_rng(seed), shape, -1, True), x, dy
    )
    keras.config.set_dtype_policy(policy)
    layer = layer_with_weights(np.random.default_rng(seed), shape, -1, True)
    half = np.asarray(keras.ops.convert_to_numpy(
        keras.ops.cast(x, layer.compute_dtype)), dtype="float32")
    actual = vjp(layer, half, dy)
    for name, a, b in zip(["x", "gamma", "beta"], actual, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=3e-2 * np.abs(b).max(),
                                   err_msg=name)


def test_synchronized_without_replicas_uses_autodiff_and_agrees(rng):
    """`synchronized=True` keeps autodiff (through its all-reduces); on one device
    its gradient equals the closed form's."""
    shape = (8, 4)
    x = rng.normal(0.0, 1.0, shape).astype("float32")
    dy = rng.normal(0.0, 1.0, shape).astype("float32")
    seed = rng.integers(1 << 30)
    synchronized = vjp(layer_with_weights(np.random.default_rng(seed), shape, -1, True,
                                          synchronized=True), x, dy)
    closed = vjp(
        layer_with_weights(np.random.default_rng(seed), shape, -1, True), x, dy
    )
    for a, b in zip(synchronized, closed, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_config_round_trips_the_gradient_choice():
    layer = bnk.BatchNorm(closed_form_gradient=False)
    assert bnk.BatchNorm.from_config(layer.get_config()).closed_form_gradient is False
    assert bnk.BatchNorm().closed_form_gradient is True


@pytest.mark.parametrize("closed_form", [True, False])
def test_the_choice_picks_the_backward_pass(rng, monkeypatch, closed_form):
    """The closed form runs exactly when asked for (so the comparisons above
    compare two different backward passes)."""
    calls = []
    original = bnk.batch_norm.normalize_batch

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(bnk.batch_norm, "normalize_batch", counted)
    x = rng.normal(0.0, 1.0, (8, 3)).astype("float32")
    vjp(layer_with_weights(rng, x.shape, -1, closed_form), x, np.ones_like(x))
    assert len(calls) == int(closed_form)
