"""Population statistics after training: Ioffe & Szegedy (2015), Algorithm 2."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
from keras import ops

from bnk.fold import BATCH_NORMS
from bnk.functional import Tensor, moments, sub_batches


def recompute_statistics(model: keras.Model, batches: Iterable[Any]) -> int:
    """Sets every batch norm layer's moving statistics to exact averages over batches.

    The moving averages that training leaves in `moving_mean` and
    `moving_variance` follow the weights as they were several hundred steps
    ago, and are noisy when batches are small. Algorithm 2 of Ioffe & Szegedy
    (2015) replaces them, once training is done, with averages over many
    batches of the trained network: per channel, the mean
    `E[x] = E_B[mu_B]` of the batch means and the unbiased variance
    `Var[x] = m / (m - 1) * E_B[sigma_B^2]` (m entries per channel in a batch;
    each batch takes its own m, so a smaller last batch counts correctly).
    Elsewhere this is known as "precise BN".

    What is averaged, the standard precise-BN choice: the model runs on each
    batch in training mode, every earlier layer included (as during training,
    so each batch norm layer sees the inputs the trained network gave it, its
    predecessors normalizing with their batch statistics); each layer's batch
    mean and biased variance of its input are recorded as the layer computes
    them (over the unmasked entries, with Keras's mask convention; each ghost
    sub-batch of a `virtual_batch_size` layer counts as one batch, of that
    size), and averaged over the batches in float64. Nothing is updated on the
    way: afterwards every non-trainable variable of the model (moving
    statistics, renorm statistics, random seed states) is as it was, and then
    the new moving statistics are written; trainable weights are not touched.

    Which layers: every `bnk.BatchNorm` and `keras.layers.BatchNormalization`
    in `model`, nested ones included (in sub-models, subclassed models such as
    `bnk.CNN`, or custom layers), except those with `trainable=False`, which
    Keras runs in inference mode and whose state stays frozen. A renorm layer
    also gets `moving_stddev = sqrt(moving_variance + epsilon)`, so that its
    next training step keeps the new variance; its `renorm_mean` and
    `renorm_stddev`, which only training uses, stay as they are. A channel that
    had no unmasked entry in any batch, and a layer the batches never reach,
    keep their statistics.

    The model runs eagerly, one call per batch; use batches of the training
    batch size (the statistics are those of batches of that size).

    Args:
        model: a built Keras model (or layer) containing batch norm layers.
        batches: an iterable of input batches: arrays (or whatever the model
            takes, such as a list or dict for several inputs), or tuples
            `(x, y)` / `(x, y, sample_weight)`, of which `x` is used, such as
            a `tf.data.Dataset` or a `keras.utils.PyDataset`'s items.

    Returns:
        The number of batches used.
    """
    # Keras has no public way to walk nested layers: `Model.layers` lists the
    # direct ones only, and a custom layer's sublayers not at all.
    norms = [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, BATCH_NORMS) and layer.trainable
    ]
    for layer in norms:
        if not layer.built:
            raise ValueError(
                f"Layer {layer.name!r} is not built: build or call the model "
                "before recomputing its statistics."
            )
    saved = [
        (variable, ops.convert_to_numpy(variable))
        for variable in model.non_trainable_variables
    ]
    records: dict[int, list[tuple[np.ndarray, ...]]] = {id(n): [] for n in norms}
    for layer in norms:
        layer.call = _recording_call(layer, records[id(layer)])
    count = 0
    try:
        for batch in batches:
            if isinstance(batch, tuple):
                batch = batch[0]
            model(batch, training=True)
            count += 1
    finally:
        for layer in norms:
            del layer.call  # back to the class's
        for variable, value in saved:
            variable.assign(value)
    if count == 0:
        raise ValueError("`batches` is empty: no batch to compute statistics over.")
    for layer in norms:
        if records[id(layer)]:
            _write(layer, *_population_statistics(records[id(layer)]))
    return count


def _recording_call(layer: keras.layers.Layer, record: list) -> Any:
    """`layer.call` that first records its input's statistics in `record`."""
    call = layer.call

    def recording_call(
        inputs: Tensor, training: bool | None = None, mask: Tensor | None = None
    ) -> Tensor:
        if training:
            record.append(_input_statistics(layer, inputs, mask))
        return call(inputs, training=training, mask=mask)

    return recording_call


def _input_statistics(
    layer: keras.layers.Layer, inputs: Tensor, mask: Tensor | None
) -> tuple[np.ndarray, ...]:
    """Mean, biased variance and count per (sub-)batch and channel, as
    (groups, channels) float64 arrays: what the layer normalizes with in training."""
    x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
    channel_axis = layer.axis % len(x.shape)
    group_size = getattr(layer, "virtual_batch_size", None)
    if group_size is None:
        x = ops.expand_dims(x, 0)
        mask = None if mask is None else ops.expand_dims(mask, 0)
    else:
        x = sub_batches(x, group_size)
        mask = None if mask is None else sub_batches(mask, group_size)
    channel_axis += 1
    if mask is not None:
        # Keras's convention: the mask covers every axis but the last.
        mask = ops.expand_dims(mask, axis=-1)
    axes = [a for a in range(1, len(x.shape)) if a != channel_axis]
    mean, variance, count = moments(x, axes, mask)
    shape = (-1, x.shape[channel_axis])
    return tuple(
        ops.convert_to_numpy(ops.reshape(value, shape)).astype("float64")
        for value in (mean, variance, ops.ones_like(mean) * count)
    )


def _population_statistics(
    records: list[tuple[np.ndarray, ...]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Algorithm 2's mean and unbiased variance per channel, and which channels
    had entries."""
    means, variances, counts = (
        np.concatenate(values) for values in zip(*records, strict=True)
    )
    seen = counts > 0
    batches = np.maximum(seen.sum(axis=0), 1)
    mean = np.where(seen, means, 0.0).sum(axis=0) / batches
    unbiased = variances * counts / np.maximum(counts - 1.0, 1.0)
    variance = np.where(seen, unbiased, 0.0).sum(axis=0) / batches
    return mean, variance, seen.any(axis=0)


def _write(
    layer: keras.layers.Layer,
    mean: np.ndarray,
    variance: np.ndarray,
    seen: np.ndarray,
) -> None:
    """Writes the new statistics where a channel had entries."""

    def assign(variable: keras.Variable, value: np.ndarray) -> np.ndarray:
        value = np.where(seen, value, ops.convert_to_numpy(variable))
        variable.assign(value.astype(variable.dtype))
        return value

    assign(layer.moving_mean, mean)
    variance = assign(layer.moving_variance, variance)
    if getattr(layer, "renorm", False):
        assign(layer.moving_stddev, np.sqrt(variance + layer.epsilon))
