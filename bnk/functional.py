"""The mathematics of batch normalization, free of any layer bookkeeping.

Ioffe & Szegedy (2015), Algorithm 1: per channel, the batch mean and the biased
batch variance, then ``gamma * (x - mean) / sqrt(variance + epsilon) + beta``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import ops

# A backend tensor or array: whatever `keras.ops` takes and returns on the active
# backend (tf.Tensor, jax.Array, torch.Tensor, a NumPy array, a KerasTensor, ...).
Tensor = Any

# The backends whose sum over several axes at once is as precise as float32 allows.
# Measured on the CPU on the CNN's first block (64 x 28 x 28 entries per channel,
# most of them one background value, as in `test_statistics_of_a_large_batch_keep_
# float32_precision`): relative error against float64 of the mean and of the
# variance, over all axes at once / one axis at a time:
#
#   tensorflow  mean 7.3e-5 / 1.3e-7   variance 1.2e-4 / 9.9e-8
#   jax         mean 1.0e-7 / 1.4e-7   variance 1.1e-7 / 1.6e-7
#   torch       mean 1.3e-7 / 1.3e-7   variance 1.5e-7 / 9.9e-8
#
# Channels first, 256 images, a mask or ghost batches give the same picture: JAX and
# torch within 4e-7 at once, TensorFlow off by 6e-6 to 2e-3. TensorFlow's CPU kernel
# adds the reduced axes up in one float32 running sum, whose error grows with the
# entries per channel. Where the one sum is precise it is also the cheaper: on torch
# eager, one `ops.sum` over three axes is three aten op runs, one per axis nine.
ONE_SUM_BACKENDS = ("jax", "torch")


def reduces_one_axis_at_a_time(backend: str | None = None) -> bool:
    """Whether bnk sums its statistics one axis at a time on ``backend``.

    True where one sum over every axis at once loses float32 precision
    (TensorFlow's CPU kernel) and on backends not measured; False where it keeps
    it (`ONE_SUM_BACKENDS`, whose comment holds the measurement).

    Args:
        backend: a Keras backend's name; default the active one.
    """
    return (backend or keras.backend.backend()) not in ONE_SUM_BACKENDS


def _sum(x: Tensor, axes: Sequence[int]) -> Tensor:
    """The sum of ``x`` over ``axes``, keeping them (size 1).

    One sum over every axis where the backend's kernel is precise; elsewhere one
    axis at a time, innermost first, so that no running sum is longer than one
    axis (see `reduces_one_axis_at_a_time`).
    """
    if axes and not reduces_one_axis_at_a_time():
        return ops.sum(x, axis=tuple(axes), keepdims=True)
    # One axis at a time (no axis: ``x`` itself).
    for axis in sorted(axes, reverse=True):
        x = ops.sum(x, axis=axis, keepdims=True)
    return x


def _identity(x: Tensor) -> Tensor:
    return x


def _size(x: Tensor, axes: Sequence[int]) -> Tensor:
    """The number of entries of ``x`` per channel over ``axes``, as a float."""
    size = 1
    for axis in axes:
        size = size * ops.shape(x)[axis]
    return ops.cast(size, x.dtype)


def moments(
    x: Tensor,
    axes: Sequence[int],
    mask: Tensor | None = None,
    return_deviations: bool = False,
    gradient: bool = True,
) -> tuple[Tensor, ...]:
    """Batch mean and biased variance of ``x`` over ``axes``, in two passes.

    The variance is the mean of squared deviations from the mean, never
    ``E[x^2] - E[x]^2``: the one-pass form cancels catastrophically in float32
    once the mean is large against the spread (Keras's own BN on torch loses
    every digit at mean 1e4).

    Args:
        x: floating tensor.
        axes: the axes to reduce (all but the channel axis).
        mask: optional tensor broadcastable to ``x``; entries where it is zero
            are left out of both statistics.
        return_deviations: if True, also return ``x - mean``, for
            `normalize` to reuse (one pass over ``x`` less, forward and
            backward, where no compiler merges the two).
        gradient: if False, the mean and variance carry no gradient, and the
            deviations only the identity's, as if the mean were a constant:
            what `normalize_batch` takes, whose closed form accounts for the
            statistics itself.

    Returns:
        ``(mean, variance, count)``: mean and variance keep the reduced axes
        (size 1) so they broadcast against ``x``; ``count`` is the number of
        entries per channel that entered the statistics (a float: a scalar
        without a mask, else shaped like ``mean``).
        With ``return_deviations``, ``(mean, variance, count, x - mean)``.
    """
    held = _identity if gradient else ops.stop_gradient
    # A sum divided by the count rather than `ops.mean`, a product rather than
    # `ops.square`: the same values, in fewer ops on torch eager, where `ops.mean`
    # runs nine aten ops (its division by a Python number copies the number into a
    # tensor), a sum and a division by a tensor four; `ops.square` five (a dtype
    # check and a power), a product one.
    if mask is None:
        count = _size(x, axes)
        mean = _sum(held(x), axes) / count
        deviations = x - mean
        held_deviations = held(deviations)
        variance = _sum(held_deviations * held_deviations, axes) / count
        if return_deviations:
            return mean, variance, count, deviations
        return mean, variance, count
    weights = ops.cast(ops.broadcast_to(mask, ops.shape(x)), x.dtype)
    total = _sum(weights, axes)
    # An all-masked batch has no statistics; divide by one instead of zero so
    # the result stays finite, and let the caller decide what to do with it.
    safe_total = ops.maximum(total, 1.0)
    mean = _sum(held(x) * weights, axes) / safe_total
    deviations = x - mean
    held_deviations = held(deviations)
    squares = held_deviations * held_deviations * weights
    variance = _sum(squares, axes) / safe_total
    count = total
    if return_deviations:
        return mean, variance, count, deviations
    return mean, variance, count


def synchronized_moments(
    x: Tensor,
    axes: Sequence[int],
    sum_over_replicas: Callable[[Tensor], Tensor],
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`moments` of the batch of every replica together, in two passes.

    Each replica sums its entries and counts them; ``sum_over_replicas`` (an
    all-reduce, such as `bnk.replicas.all_reduce_sum`) adds these up, which
    gives the global mean. Then each replica sums its squared deviations from
    that global mean, and these are added up too. Never the sums of squares,
    whose difference ``E[x^2] - E[x]^2`` cancels catastrophically at a large
    mean. Gradients flow through the statistics as far as they flow through
    ``sum_over_replicas``.

    Args:
        x: this replica's floating tensor.
        axes: the axes to reduce (all but the channel axis).
        sum_over_replicas: returns the sum of its argument over all replicas,
            the same on each; with the identity, these are plain `moments`.
        mask: as in `moments`.

    Returns:
        ``(mean, variance, count, x - mean)``, as `moments` with
        ``return_deviations``, but over every replica's entries; ``count``,
        their number per channel, is shaped like ``mean``.
    """
    if mask is None:
        weights = None
        local_sum = _sum(x, axes)
        local_count = ops.ones_like(local_sum) * _size(x, axes)
    else:
        weights = ops.cast(ops.broadcast_to(mask, ops.shape(x)), x.dtype)
        local_sum = _sum(x * weights, axes)
        local_count = _sum(weights, axes)
    # One all-reduce for both: the count and the sum stacked on a new axis.
    count_and_sum = sum_over_replicas(ops.stack([local_count, local_sum]))
    count, total = count_and_sum[0], count_and_sum[1]
    # No entry anywhere: divide by one, as `moments` does.
    safe_count = ops.maximum(count, 1.0)
    mean = total / safe_count
    deviations = x - mean
    squares = ops.square(deviations)
    if weights is not None:
        squares = squares * weights
    variance = sum_over_replicas(_sum(squares, axes)) / safe_count
    return mean, variance, count, deviations


def sub_batches(x: Tensor, size: int) -> Tensor:
    """``x`` of shape ``(batch, ...)`` as ``(batch // size, size, ...)``.

    Entry ``[g, i]`` is example ``g * size + i``: sub-batch ``g`` holds ``size``
    consecutive examples, the way data parallelism splits a batch over its
    replicas. `moments` over every axis but the first (and the channel axis)
    then gives each sub-batch its own statistics: ghost batch normalization.
    """
    return ops.reshape(x, (-1, size, *ops.shape(x)[1:]))


def normalize(
    x: Tensor,
    mean: Tensor,
    variance: Tensor,
    gamma: Tensor | None,
    beta: Tensor | None,
    epsilon: float,
    deviations: Tensor | None = None,
) -> Tensor:
    """``gamma * (x - mean) / sqrt(variance + epsilon) + beta``.

    ``x - mean`` is taken first, before any scaling, so inputs far from zero
    keep their precision. ``gamma`` and ``beta`` may be ``None`` (no scale, no
    centre). ``deviations``, if given, is ``x - mean`` already computed (see
    `moments`), and is used instead of computing it again.
    """
    scale = ops.rsqrt(variance + epsilon)
    if gamma is not None:
        scale = scale * gamma
    if deviations is None:
        deviations = x - mean
    outputs = deviations * scale
    if beta is not None:
        outputs = outputs + beta
    return outputs


def normalize_batch(
    deviations: Tensor,
    variance: Tensor,
    scale: Tensor,
    offset: Tensor | None,
    epsilon: float,
    axes: Sequence[int],
    count: Tensor,
    weights: Tensor | None = None,
) -> Tensor:
    """`normalize` with the batch's own statistics, and its gradient in closed form.

    The output is ``deviations / sqrt(variance + epsilon) * scale + offset``, where
    ``deviations`` is ``x - mean`` and ``mean`` and ``variance`` are the batch's
    statistics of ``x`` over ``axes`` (with ``weights``, of the entries where it is
    1). Autodiff of the two-pass statistics walks back through every pass; here,
    with ``x_hat`` the normalized input and ``m`` = ``count``, the gradient is

        dx = scale / sigma * (dy - w / m * (sum(dy) + x_hat * sum(dy * x_hat)))
        dscale = sum(dy * x_hat),  doffset = sum(dy)

    (``w`` the weights, 1 without a mask; the sums run over ``axes`` and every
    entry, masked or not, since every output depends on the statistics): two
    reductions and one element-wise sweep over ``dy``. Only ``deviations`` (and
    ``1 / sigma``) is kept for it, which the forward pass computes anyway.

    Args:
        deviations: ``x - mean``, with the mean held constant (see `moments` with
            ``gradient=False``): the gradient given to it is ``dx`` above, which
            takes the statistics into account, and passes on to ``x``.
        variance: the batch variance, without gradient (its part is in ``dx``).
        scale, offset: per-channel tensors that broadcast against ``deviations``
            (``gamma`` and ``beta``; ones and None without them); ``offset``
            None adds nothing.
        epsilon: added to the variance.
        axes: the axes the statistics were taken over.
        count: the number of entries per channel in the statistics (scalar or
            shaped like ``variance``); a channel with none (a fully masked one)
            has statistics that do not depend on ``x``, and gets
            ``scale / sigma * dy``.
        weights: the mask as 0/1 floats broadcastable to ``deviations``, or None.
    """
    # Every axis ``scale`` is broadcast over but the statistics are not (ghost
    # batches' sub-batch axis): its gradient is summed over those too.
    other_axes = [
        axis
        for axis in range(len(deviations.shape))
        if axis not in axes and scale.shape[axis] == 1
    ]
    has_offset = offset is not None
    if offset is None:
        offset = ops.zeros_like(scale)
    # Without a mask every channel has entries. With one, a channel without any
    # divides by one instead of zero: its correction is masked out anyway.
    safe_count = count if weights is None else ops.maximum(count, 1.0)

    @ops.custom_gradient
    def batch_normalized(
        deviations: Tensor, variance: Tensor, scale: Tensor, offset: Tensor
    ) -> tuple[Tensor, Callable[..., tuple]]:
        inverse_stddev = ops.rsqrt(variance + epsilon)
        input_scale = scale * inverse_stddev
        outputs = deviations * input_scale
        if has_offset:
            outputs = outputs + offset

        def backward(*args: Tensor, upstream: Tensor | None = None) -> tuple:
            # TensorFlow and JAX pass the output's gradient positionally, torch
            # as `upstream`.
            dy = args[0] if upstream is None else upstream
            sum_dy = _sum(dy, axes)
            sum_dy_deviations = _sum(dy * deviations, axes)
            per_entry = input_scale / safe_count
            # A product, not `ops.square`: one aten op on torch eager, not five.
            inverse_variance = inverse_stddev * inverse_stddev
            correction = per_entry * sum_dy + deviations * (
                per_entry * inverse_variance * sum_dy_deviations
            )
            if weights is not None:
                correction = correction * weights
            ddeviations = dy * input_scale - correction
            dscale = _sum(sum_dy_deviations * inverse_stddev, other_axes)
            doffset = _sum(sum_dy, other_axes)
            return ddeviations, None, dscale, doffset

        return outputs, backward

    return batch_normalized(deviations, variance, scale, offset)


def moving_average(average: Tensor, value: Tensor, momentum: float) -> Tensor:
    """``average * momentum + value * (1 - momentum)``: one step of a moving average."""
    return average * momentum + value * (1.0 - momentum)


def renorm_correction(
    mean: Tensor,
    stddev: Tensor,
    moving_mean: Tensor,
    moving_stddev: Tensor,
    epsilon: float,
    rmin: float | None = None,
    rmax: float | None = None,
    dmax: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Batch Renormalization's ``r`` and ``d`` (Ioffe, 2017, Algorithm 1).

    ``r = stddev / moving_stddev`` clipped to ``[rmin, rmax]`` and
    ``d = (mean - moving_mean) / moving_stddev`` clipped to ``[-dmax, dmax]``
    (None: no bound on that side), so that ``x_hat * r + d``, ``x_hat`` being
    ``x`` normalized with the batch statistics, is ``x`` normalized with the
    moving ones wherever neither is clipped. Both are returned without gradient:
    the paper treats them as constants in back-propagation.

    Args:
        mean: the batch mean.
        stddev: the batch standard deviation ``sqrt(variance + epsilon)``.
        moving_mean, moving_stddev: the moving averages of the two that the
            correction is towards. ``moving_stddev`` is taken to be at least
            ``sqrt(epsilon)``, the least ``stddev`` can be, so that ``r`` and
            ``d`` stay finite (as Keras's layer does).
        epsilon: the layer's epsilon.
        rmin, rmax, dmax: the clipping bounds.
    """
    moving_stddev = ops.maximum(moving_stddev, epsilon**0.5)
    r = stddev / moving_stddev
    d = (mean - moving_mean) / moving_stddev
    if rmin is not None:
        r = ops.maximum(r, rmin)
    if rmax is not None:
        r = ops.minimum(r, rmax)
    if dmax is not None:
        d = ops.clip(d, -dmax, dmax)
    return ops.stop_gradient(r), ops.stop_gradient(d)


def renormalized_scale_and_offset(
    r: Tensor, d: Tensor, gamma: Tensor | None, beta: Tensor | None
) -> tuple[Tensor, Tensor]:
    """``gamma * (x_hat * r + d) + beta`` written as ``x_hat * scale + offset``.

    Returns ``(scale, offset)`` = ``(gamma * r, gamma * d + beta)``, for
    `normalize` to apply in place of ``gamma`` and ``beta`` (either may be
    ``None``: no scale, no centre).
    """
    scale, offset = r, d
    if gamma is not None:
        scale, offset = gamma * r, gamma * d
    if beta is not None:
        offset = offset + beta
    return scale, offset
