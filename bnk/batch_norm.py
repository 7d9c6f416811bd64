"""`BatchNorm`: batch normalization as a Keras 3 layer, on every backend."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import constraints, initializers, ops, regularizers

from bnk.functional import (
    Tensor,
    moments,
    moving_average,
    normalize,
    normalize_batch,
    renorm_correction,
    renormalized_scale_and_offset,
    sub_batches,
    synchronized_moments,
)
from bnk.replicas import all_reduce_sum

# What `keras.initializers.get` (and the regularizers' and constraints' `get`)
# accept: a registered name, a serialized config, or the object itself.
Identifier = str | dict[str, Any] | Callable[..., Any]
# An input shape: one size per axis, None where unknown.
Shape = Sequence[int | None]

RENORM_CLIPPING_KEYS = ("rmax", "rmin", "dmax")


def _clone(initializer: Any) -> Any:
    """A fresh copy of an initializer object, so that a seeded one used for a second
    weight draws its own values (a name or a config is returned as it is)."""
    if isinstance(initializer, initializers.Initializer):
        return initializer.__class__.from_config(initializer.get_config())
    return initializer


def _check_renorm_clipping(clipping: Any) -> dict[str, float]:
    """`renorm_clipping` as a dict of floats; a ValueError names a bad entry."""
    if not isinstance(clipping, dict):
        raise ValueError(
            "`renorm_clipping` must be a dict with keys among "
            f"{list(RENORM_CLIPPING_KEYS)}, got renorm_clipping={clipping!r}."
        )
    unknown = sorted(set(clipping) - set(RENORM_CLIPPING_KEYS))
    if unknown:
        raise ValueError(
            f"Received invalid keys for `renorm_clipping`: {unknown}; supported "
            f"keys: {list(RENORM_CLIPPING_KEYS)}."
        )
    bounds = {}
    for key, value in clipping.items():
        if value is None:
            continue
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise ValueError(
                f"`renorm_clipping[{key!r}]` must be a number, got {value!r}."
            )
        bounds[key] = float(value)
    rmin, rmax, dmax = (bounds.get(key) for key in ("rmin", "rmax", "dmax"))
    if rmin is not None and rmax is not None and rmax < rmin:
        raise ValueError(
            "rmax should be at least rmin in `renorm_clipping`, got "
            f"rmax={rmax!r}, rmin={rmin!r}."
        )
    if dmax is not None and dmax < 0:
        raise ValueError(
            f"dmax should be non-negative in `renorm_clipping`, got dmax={dmax!r}."
        )
    return bounds


class _Follower:
    """Moves a layer's moving statistics towards a batch's, with its mask and
    ghost batches: a (sub-)batch channel without unmasked entries counts as the
    statistic's current value, and with ghost batches the statistics follow the
    mean over the sub-batches of their values."""

    def __init__(
        self, channels: list[int], has_data: Tensor | None, ghost: bool
    ) -> None:
        self.channels = channels  # the shape of a per-channel vector in the batch
        self.has_data = has_data
        self.ghost = ghost

    def __call__(self, variable: Any, batch_value: Tensor, momentum: float) -> Tensor:
        """Assigns the moving average's next value to `variable` and returns it."""
        current = ops.reshape(ops.cast(variable, batch_value.dtype), self.channels)
        if self.has_data is not None:
            batch_value = ops.where(self.has_data, batch_value, current)
        if self.ghost:
            batch_value = ops.mean(batch_value, axis=0, keepdims=True)
        value = moving_average(current, batch_value, momentum)
        variable.assign(ops.reshape(value, variable.shape))
        return value


@keras.saving.register_keras_serializable(package="bnk")
class BatchNorm(keras.layers.Layer):
    """Batch normalization (Ioffe & Szegedy, 2015), written with `keras.ops` only.

    In training mode the layer normalizes with the batch's mean and biased
    variance over every axis but `axis`, and updates the moving statistics:
    `moving = moving * momentum + batch * (1 - momentum)`. In inference mode
    it normalizes with the moving statistics. In training the gradient accounts
    for the batch statistics' dependence on the input (in closed form by
    default: see `closed_form_gradient`).

    The reference page, with examples: docs/batch_norm.md.

    It is a drop-in for `keras.layers.BatchNormalization`: the same weights in
    the same order (`gamma`, `beta`, `moving_mean`, `moving_variance`), so
    `get_weights()` / `set_weights()` move between the two, and the same
    training-mode rules (`trainable=False` freezes the layer *and* puts it in
    inference mode). Where it differs, on purpose:

    - `momentum` defaults to 0.9, the seed tutorial's decay; Keras uses 0.99.
    - The variance is always computed in two passes (see
      `bnk.functional.moments`), so inputs with a large mean keep their
      precision on every backend; Keras's layer on torch does not. On
      TensorFlow each sum runs over one axis at a time, which keeps its CPU
      statistics of large batches in float32 precision; JAX's and torch's
      sums over every axis at once are precise already (see
      `bnk.functional.reduces_one_axis_at_a_time`).
    - A channel without unmasked entries (an all-masked batch, say) is
      normalized with the moving statistics and leaves them untouched;
      Keras's layer uses mean 0 and variance 0 and pulls them towards those.
    - `unbiased_moving_variance=True` gives the paper's population variance.
    - `synchronized=True` works on every backend, with a two-pass variance;
      Keras's is TensorFlow only and sums squares.
    - `virtual_batch_size` (ghost batches), which Keras 3 dropped.
    - With `renorm=True`, the correction works with the mask, ghost batches
      and `synchronized` as the statistics do (see `renorm` below).
    - The training-mode backward pass is written in closed form
      (`closed_form_gradient`) instead of autodiff.
    - The moving statistics are created with `aggregation="mean"`, so under
      `tf.distribute` every replica keeps the same values.

    Under data parallelism, what the statistics are computed over depends on
    the backend's engine as much as on `synchronized`:

    - JAX, `keras.distribution.DataParallel`: Keras compiles one program over
      the global, sharded batch, so the statistics (written with `keras.ops`)
      are over the global batch either way, XLA doing the all-reduce;
      `synchronized=True` adds no collective and changes nothing. Tested: one
      `fit` step of `bnk.CNN` on 4 devices equals one step on one device.
    - TensorFlow, `tf.distribute.MirroredStrategy`: each replica normalizes
      its own slice unless `synchronized=True`, which all-reduces the
      statistics. Either way the moving statistics are updated with the mean
      over the replicas of their updates, so they stay the same on every
      replica: unsynchronized, that is exactly `virtual_batch_size` = the
      per-replica batch on one device.
    - PyTorch, a `torch.distributed` process group (DDP): each process
      normalizes its own slice unless `synchronized=True`, which all-reduces
      with an autograd-aware all-reduce (gloo on CPU too, where
      `torch.nn.SyncBatchNorm` refuses to run).

    Args:
        axis: integer, the channel axis, which keeps its own statistics and
            its own `gamma` and `beta`; every other axis is reduced. -1 (the
            default) for channels_last, 1 for channels_first (after a `Conv2D`
            with `data_format="channels_first"`, for example).
        momentum: weight of the old value in the moving averages, in [0, 1).
            Default 0.9 (Keras: 0.99).
        epsilon: added to the variance before the square root, > 0.
            Default 1e-3.
        center: if True (the default), add the learned offset `beta`; if
            False, there is no `beta` weight.
        scale: if True (the default), multiply by the learned scale `gamma`;
            if False, there is no `gamma` weight (when the next layer is
            linear, it can do the scaling).
        beta_initializer: initializer of `beta`, default "zeros".
        gamma_initializer: initializer of `gamma`, default "ones".
        moving_mean_initializer: initializer of `moving_mean`, default "zeros".
        moving_variance_initializer: initializer of `moving_variance`,
            default "ones".
        beta_regularizer: optional regularizer of `beta`.
        gamma_regularizer: optional regularizer of `gamma`.
        beta_constraint: optional constraint of `beta`.
        gamma_constraint: optional constraint of `gamma`.
        unbiased_moving_variance: if True, the moving variance averages
            `m / (m - 1) * batch_variance`, m being the number of entries per
            channel (unmasked ones, with a mask; per sub-batch, with
            `virtual_batch_size`): the paper's Algorithm 2, and PyTorch's
            behaviour. The batch itself is always normalized with the biased
            variance.
            Default False, as in Keras.
        virtual_batch_size: None (the default) for statistics over the whole
            batch, or a positive integer k for ghost batch normalization
            (Hoffer et al., 2017; Keras 2's argument of that name): in
            training, each sub-batch of k consecutive examples is normalized
            with its own statistics (with a mask, those of its unmasked
            entries; a sub-batch with none uses the moving statistics, as an
            all-masked batch does), with the one `gamma` and `beta`; the
            moving statistics are updated with the mean over the sub-batches
            of their means and of their variances. The batch size must be a
            multiple of k (a ValueError says so where the batch size is
            known when the layer is called; in a TensorFlow graph with an
            unknown batch size, TensorFlow's reshape fails instead).
            `axis` may not be the batch axis. Inference does not change.
            Keras 2 grouped examples i, i + b/k, i + 2b/k, ... of a batch of
            b; consecutive examples are how data parallelism splits a batch,
            so `virtual_batch_size` = per-replica batch models unsynchronized
            replicas on one device.
        synchronized: if True, training statistics are over the batches of
            all data-parallel replicas together (see above), in two passes:
            the global count and sum give the global mean, then the global
            sum of squared deviations from it gives the variance. Gradients
            flow through the all-reduces, and the moving statistics are the
            same on every replica. Outside data parallelism (one device, no
            replica context, no process group) it is the same as False.
            Default False. Cannot be combined with `virtual_batch_size`.
        renorm: if True, Batch Renormalization (Ioffe, 2017, Algorithm 1): in
            training the output is `gamma * (x_hat * r + d) + beta`, `x_hat`
            being the input normalized with the batch statistics,
            `r = sigma_B / sigma` and `d = (mu_B - mu) / sigma`, with
            `sigma_B = sqrt(batch_variance + epsilon)` and `mu`, `sigma` the
            moving averages `renorm_mean` and `renorm_stddev` (which follow
            the batch with `renorm_momentum`); `r` and `d` are clipped (see
            `renorm_clipping`) and carry no gradient. Unclipped, the output
            is the input normalized with `renorm_mean` and `renorm_stddev`,
            while the gradient is that of batch normalization. Inference is
            unchanged: `moving_mean` and `moving_stddev` follow the batch
            with `momentum`, and `moving_variance` is
            `moving_stddev**2 - epsilon` (at least 0). Three more
            non-trainable weights, after the other four and in Keras 3's
            order and names: `moving_stddev`, `renorm_mean`, `renorm_stddev`
            (the standard deviations start at the square root of
            `moving_variance_initializer`'s values). Keras's layer keeps two
            pairs of moving statistics where the paper has one; with
            `renorm_momentum == momentum` they are the same, as in the
            paper. With a mask, a channel (or ghost sub-batch) without
            unmasked entries is normalized with the moving statistics,
            uncorrected, and leaves the statistics where they are (but for
            `moving_variance`, `moving_stddev**2 - epsilon` after every
            training step); with ghost
            batches, each sub-batch has its own `r` and `d`, and the
            statistics follow the mean over the sub-batches of their means
            and standard deviations; with `synchronized`, `r` and `d` come
            from the global batch. Default False. Cannot be combined with
            `unbiased_moving_variance` (Algorithm 1 tracks the standard
            deviation of the biased variance).
        renorm_clipping: with `renorm`, a dict with optional keys "rmax",
            "rmin" and "dmax" (numbers; 0 <= dmax, rmin <= rmax): `r` is
            clipped to `[rmin, rmax]` and `d` to `[-dmax, dmax]`; a missing
            key (or None) leaves that side unbounded. The paper's schedule
            uses rmin = 1 / rmax. Default None: no clipping.
        renorm_momentum: with `renorm`, the momentum of `renorm_mean` and
            `renorm_stddev`, in [0, 1). Default 0.99, as in Keras.
        closed_form_gradient: if True (the default), the training-mode
            gradient is computed in closed form (see
            `bnk.functional.normalize_batch`): one sweep over the output's
            gradient instead of autodiff back through both passes of the
            statistics. The values are the same up to rounding. With
            `synchronized=True` it is always autodiff, through the
            all-reduces. False: autodiff everywhere (for checking and
            benchmarking).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: a floating tensor of any rank >= 2.
        training: True for training mode (batch statistics, moving
            statistics updated), False or None for inference mode (moving
            statistics). A layer with `trainable=False` always runs in
            inference mode.
        mask: optional boolean tensor of rank one less than `inputs`, of the
            shape of every axis of `inputs` but the last (or one that
            broadcasts to it), whatever `axis` is: Keras's convention, that
            of the masks `Masking` and `Embedding(mask_zero=True)` make and
            `keras.layers.BatchNormalization` reads. Each entry covers the
            vector along the last axis at its position; masked-out entries
            are left out of the batch statistics. Inference ignores it.

    Mixed precision: float16 and bfloat16 inputs are cast to float32 for the
    statistics and the normalization (float32 and float64 inputs keep their
    dtype); the weights have the layer's variable dtype and are never
    autocast (float32 under `mixed_float16` and `mixed_bfloat16`); the output
    has the layer's compute dtype (float16 under `mixed_float16`, for
    example).

    Reference:

    - [Ioffe and Szegedy, 2015](https://arxiv.org/abs/1502.03167): batch
      normalization (Algorithm 1; Algorithm 2 is `bnk.recompute_statistics`).
    - [Ioffe, 2017](https://arxiv.org/abs/1702.03275): Batch Renormalization
      (`renorm`).
    - [Hoffer et al., 2017](https://arxiv.org/abs/1705.08741): ghost batch
      normalization (`virtual_batch_size`).
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.9,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Identifier = "zeros",
        gamma_initializer: Identifier = "ones",
        moving_mean_initializer: Identifier = "zeros",
        moving_variance_initializer: Identifier = "ones",
        beta_regularizer: Identifier | None = None,
        gamma_regularizer: Identifier | None = None,
        beta_constraint: Identifier | None = None,
        gamma_constraint: Identifier | None = None,
        unbiased_moving_variance: bool = False,
        virtual_batch_size: int | None = None,
        synchronized: bool = False,
        renorm: bool = False,
        renorm_clipping: dict[str, float] | None = None,
        renorm_momentum: float = 0.99,
        closed_form_gradient: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
            raise TypeError(f"`axis` must be an integer, got axis={axis!r}.")
        if not isinstance(momentum, numbers.Real) or not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"`momentum` must be in [0, 1), got momentum={momentum!r}."
            )
        if not isinstance(epsilon, numbers.Real) or not epsilon > 0.0:
            raise ValueError(f"`epsilon` must be > 0, got epsilon={epsilon!r}.")
        if virtual_batch_size is not None and (
            not isinstance(virtual_batch_size, numbers.Integral)
            or isinstance(virtual_batch_size, bool)
            or virtual_batch_size < 1
        ):
            raise ValueError(
                "`virtual_batch_size` must be a positive integer or None, got "
                f"virtual_batch_size={virtual_batch_size!r}."
            )
        if synchronized and virtual_batch_size is not None:
            raise ValueError(
                "`synchronized=True` and `virtual_batch_size` cannot be combined: "
                "ghost batches are the statistics of unsynchronized replicas; "
                f"got virtual_batch_size={virtual_batch_size!r}."
            )
        if renorm and unbiased_moving_variance:
            raise ValueError(
                "`renorm=True` and `unbiased_moving_variance=True` cannot be "
                "combined: Batch Renormalization tracks the moving standard "
                "deviation of the biased batch variance."
            )
        if renorm_clipping is not None and not renorm:
            raise ValueError(
                "`renorm_clipping` is only used with `renorm=True`, got "
                f"renorm_clipping={renorm_clipping!r} and renorm={renorm!r}."
            )
        clipping = _check_renorm_clipping(
            {} if renorm_clipping is None else renorm_clipping
        )
        if (
            not isinstance(renorm_momentum, numbers.Real)
            or not 0.0 <= renorm_momentum < 1.0
        ):
            raise ValueError(
                "`renorm_momentum` must be in [0, 1), got "
                f"renorm_momentum={renorm_momentum!r}."
            )
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(
            moving_variance_initializer
        )
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.unbiased_moving_variance = bool(unbiased_moving_variance)
        self.virtual_batch_size = (
            None if virtual_batch_size is None else int(virtual_batch_size)
        )
        self.synchronized = bool(synchronized)
        self.renorm = bool(renorm)
        # As given, for get_config; `_clipping` holds the bounds as floats.
        self.renorm_clipping = (
            None if renorm_clipping is None else dict(renorm_clipping)
        )
        self._clipping = clipping
        self.renorm_momentum = float(renorm_momentum)
        self.closed_form_gradient = bool(closed_form_gradient)
        self.supports_masking = True
        self.gamma = None
        self.beta = None

    def _channel_axis(self, rank: int) -> int:
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"`axis`={self.axis} is out of range for inputs of rank {rank} "
                f"(valid: {-rank} to {rank - 1})."
            )
        return self.axis % rank

    def build(self, input_shape: Shape) -> None:
        rank = len(input_shape)
        channels = input_shape[self._channel_axis(rank)]
        if channels is None:
            raise ValueError(
                f"The channel axis {self.axis} of the input must have a known "
                f"size, got input shape {tuple(input_shape)}."
            )
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                trainable=True,
                autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                shape=shape,
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                trainable=True,
                autocast=False,
            )
        # Under tf.distribute, "mean" averages the replicas' updates, so every
        # replica keeps the same moving statistics (with "none", Keras's
        # choice, each would keep its own). The other backends ignore it.
        self.moving_mean = self.add_weight(
            shape=shape,
            name="moving_mean",
            initializer=self.moving_mean_initializer,
            trainable=False,
            autocast=False,
            aggregation="mean",
        )
        self.moving_variance = self.add_weight(
            shape=shape,
            name="moving_variance",
            initializer=self.moving_variance_initializer,
            trainable=False,
            autocast=False,
            aggregation="mean",
        )
        if self.renorm:
            self._build_renorm(shape)

    def _build_renorm(self, shape: tuple[int]) -> None:
        """Keras 3's three renorm weights, in its order, names and initial values."""

        def stddev_initializer(shape: Shape, dtype: Any = None) -> Tensor:
            variance = _clone(self.moving_variance_initializer)(shape, dtype=dtype)
            return ops.sqrt(variance)

        for name, initializer in (
            ("moving_stddev", stddev_initializer),
            ("renorm_mean", _clone(self.moving_mean_initializer)),
            ("renorm_stddev", stddev_initializer),
        ):
            weight = self.add_weight(
                shape=shape,
                name=name,
                initializer=initializer,
                trainable=False,
                autocast=False,
                aggregation="mean",
            )
            setattr(self, name, weight)

    def _check_inputs(self, inputs: Tensor, mask: Tensor | None) -> int:
        rank = len(inputs.shape)
        channel_axis = self._channel_axis(rank)
        channels = self.moving_mean.shape[0]
        if inputs.shape[channel_axis] not in (None, channels):
            raise ValueError(
                f"Input size {inputs.shape[channel_axis]} along axis "
                f"{self.axis} differs from the {channels} channels the layer "
                f"was built for (input shape {tuple(inputs.shape)})."
            )
        if self.virtual_batch_size is not None and channel_axis == 0:
            raise ValueError(
                f"`axis`={self.axis} makes the batch axis the channel axis, "
                "which `virtual_batch_size` cannot split into sub-batches."
            )
        if mask is not None and len(mask.shape) != rank - 1:
            raise ValueError(
                f"The mask must have rank {rank - 1} (every axis of the input "
                f"but the last), got mask shape {tuple(mask.shape)} for input "
                f"shape {tuple(inputs.shape)}."
            )
        return channel_axis

    def call(
        self,
        inputs: Tensor,
        training: bool | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        channel_axis = self._check_inputs(inputs, mask)
        # float16/bfloat16 overflow and lose digits in the statistics.
        inputs = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        training = training and self.trainable
        ghost = training and self.virtual_batch_size is not None
        x = inputs
        if ghost:
            # The sub-batches on a new first axis, which keeps its statistics.
            x = self._sub_batches(inputs)
            if mask is not None:
                mask = sub_batches(mask, self.virtual_batch_size)
            channel_axis += 1
        rank = len(x.shape)
        # The shape in which a per-channel vector broadcasts against `x`.
        channels = [1] * rank
        channels[channel_axis] = -1
        gamma = self._per_channel(self.gamma, x.dtype, channels)
        beta = self._per_channel(self.beta, x.dtype, channels)

        if not training:
            moving_mean, moving_variance = self._moving_statistics(x.dtype, channels)
            outputs = normalize(
                x, moving_mean, moving_variance, gamma, beta, self.epsilon
            )
            return ops.cast(outputs, self.compute_dtype)

        if mask is not None:
            # Keras's convention: the mask covers every axis but the last.
            mask = ops.expand_dims(mask, axis=-1)
        reduction_axes = [
            a for a in range(1 if ghost else 0, rank) if a != channel_axis
        ]
        # The closed-form gradient takes the statistics' part in the gradient on
        # itself; with `synchronized`, autodiff carries it through the all-reduces.
        closed_form = self.closed_form_gradient and not self.synchronized
        if self.synchronized:
            mean, variance, count, deviations = synchronized_moments(
                x, reduction_axes, all_reduce_sum, mask
            )
        else:
            # Reusing `x - mean` saves a pass over the inputs on torch eager.
            mean, variance, count, deviations = moments(
                x,
                reduction_axes,
                mask,
                return_deviations=True,
                gradient=not closed_form,
            )
        # Where a channel (of a sub-batch) has no unmasked entry: None if every
        # one has some.
        has_data = None
        if mask is not None:
            has_data = count > 0
            moving_mean, moving_variance = self._moving_statistics(x.dtype, channels)
            mean = ops.where(has_data, mean, moving_mean)
            variance = ops.where(has_data, variance, moving_variance)
            deviations = x - mean  # `mean` may have changed.
        follow = _Follower(channels, has_data, ghost)
        if self.renorm:
            gamma, beta = self._renormalize(
                mean, variance, gamma, beta, follow, has_data
            )
        else:
            population_variance = variance
            if self.unbiased_moving_variance:
                population_variance = variance * (
                    count / ops.maximum(count - 1.0, 1.0)
                )
            follow(self.moving_mean, mean, self.momentum)
            follow(self.moving_variance, population_variance, self.momentum)
        if closed_form:
            outputs = normalize_batch(
                deviations,
                variance,
                ops.ones_like(mean) if gamma is None else gamma,
                beta,
                self.epsilon,
                reduction_axes,
                count,
                None if mask is None else ops.cast(mask, x.dtype),
            )
        else:
            outputs = normalize(
                x, mean, variance, gamma, beta, self.epsilon, deviations
            )
        if ghost:
            outputs = ops.reshape(outputs, ops.shape(inputs))
        return ops.cast(outputs, self.compute_dtype)

    @staticmethod
    def _per_channel(
        variable: Any, dtype: str, channels: list[int]
    ) -> Tensor | None:
        if variable is None:
            return None
        return ops.reshape(ops.cast(variable, dtype), channels)

    def _moving_statistics(
        self, dtype: str, channels: list[int]
    ) -> tuple[Tensor, Tensor]:
        """The moving mean and variance as per-channel tensors, taken only where
        they are read: training without a mask just updates them (through
        `_Follower`), and on torch eager each costs three aten ops."""
        return (
            self._per_channel(self.moving_mean, dtype, channels),
            self._per_channel(self.moving_variance, dtype, channels),
        )

    def _renormalize(
        self,
        mean: Tensor,
        variance: Tensor,
        gamma: Tensor | None,
        beta: Tensor | None,
        follow: _Follower,
        has_data: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        """Batch Renormalization's scale and offset; updates the five statistics."""
        stddev = ops.sqrt(variance + self.epsilon)
        r, d = renorm_correction(
            mean,
            stddev,
            self._per_channel(self.renorm_mean, mean.dtype, follow.channels),
            self._per_channel(self.renorm_stddev, mean.dtype, follow.channels),
            self.epsilon,
            **self._clipping,
        )
        if has_data is not None:
            # No entries: normalized with the moving statistics, uncorrected.
            r = ops.where(has_data, r, 1.0)
            d = ops.where(has_data, d, 0.0)
        follow(self.renorm_mean, mean, self.renorm_momentum)
        follow(self.renorm_stddev, stddev, self.renorm_momentum)
        follow(self.moving_mean, mean, self.momentum)
        moving_stddev = follow(self.moving_stddev, stddev, self.momentum)
        # ReLU: rounding may take the difference below zero.
        self.moving_variance.assign(
            ops.reshape(
                ops.relu(ops.square(moving_stddev) - self.epsilon),
                self.moving_variance.shape,
            )
        )
        return renormalized_scale_and_offset(r, d, gamma, beta)

    def _sub_batches(self, inputs: Tensor) -> Tensor:
        batch_size = inputs.shape[0]
        if batch_size is not None and batch_size % self.virtual_batch_size:
            raise ValueError(
                f"The batch size {batch_size} is not a multiple of "
                f"virtual_batch_size={self.virtual_batch_size}."
            )
        return sub_batches(inputs, self.virtual_batch_size)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._channel_axis(len(input_shape))
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(
                self.moving_mean_initializer
            ),
            "moving_variance_initializer": initializers.serialize(
                self.moving_variance_initializer
            ),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
            "unbiased_moving_variance": self.unbiased_moving_variance,
            "virtual_batch_size": self.virtual_batch_size,
            "synchronized": self.synchronized,
            "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum,
            "closed_form_gradient": self.closed_form_gradient,
        }
