"""The normalizations the batch experiments compare, as bnk.CNN's `normalization`,
and the CNN's test accuracy with each kind of statistics.

bnk.CNN calls its `normalization` with BatchNormalization's keyword arguments
(`momentum`, the moving-statistics initializers, ...); GroupNormalization and
LayerNormalization keep no moving statistics, so their factories drop those.
LayerNormalization normalizes each example over height, width and channels (Wu & He's
LN for convolutions), with a scale and offset per element, as Keras's layer does for
several axes.
"""

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

import bnk
from pipeline import params

#: Every choice, in the order the reports list them.
NORMALIZATIONS = params.NORMALIZATIONS
#: Layers with batch statistics in training and moving statistics in inference.
BATCH_STATISTICS = ("batch_norm", "ghost_batch_norm", "batch_renorm")

#: Test images per call in inference mode (batch statistics use the training size).
INFERENCE_BATCH = 500

LayerFactory = Callable[..., keras.layers.Layer]


def ghost_batch_size(config: params.Normalizers, batch_size: int) -> int:
    """The ghost batch of `config` within a batch of `batch_size`: no larger than the
    batch (then it is plain BN)."""
    return min(config.ghost_batch_size, batch_size)


def normalization_layer(
    name: str, config: params.Normalizers, batch_size: int
) -> LayerFactory | None:
    """bnk.CNN's `normalization` for the choice `name` at batch size `batch_size`."""
    if name == "batch_norm":
        return bnk.BatchNorm
    if name == "ghost_batch_norm":
        ghost = ghost_batch_size(config, batch_size)

        def ghost_batch_norm(**kwargs: Any) -> keras.layers.Layer:
            return bnk.BatchNorm(virtual_batch_size=ghost, **kwargs)

        return ghost_batch_norm
    if name == "batch_renorm":

        def batch_renorm(**kwargs: Any) -> keras.layers.Layer:
            return bnk.BatchNorm(
                renorm=True,
                renorm_clipping=config.renorm_clipping.model_dump(),
                renorm_momentum=config.renorm_momentum,
                **kwargs,
            )

        return batch_renorm
    if name == "group_norm":

        def group_norm(**kwargs: Any) -> keras.layers.Layer:
            return keras.layers.GroupNormalization(
                groups=config.groups, **_without_moving_statistics(kwargs)
            )

        return group_norm
    if name == "layer_norm":

        def layer_norm(**kwargs: Any) -> keras.layers.Layer:
            return keras.layers.LayerNormalization(
                axis=(-3, -2, -1), **_without_moving_statistics(kwargs)
            )

        return layer_norm
    if name == "none":
        return None
    raise ValueError(f"Unknown normalization {name!r} (known: {NORMALIZATIONS}).")


def _without_moving_statistics(kwargs: dict[str, Any]) -> dict[str, Any]:
    unused = ("momentum", "moving_mean_initializer", "moving_variance_initializer")
    return {key: value for key, value in kwargs.items() if key not in unused}


class BatchStatisticsCNN(keras.Model):
    """A trained bnk.CNN whose normalization layers run in training mode (batch
    statistics) while everything else, dropout included, runs in inference mode.

    Calling it updates the moving statistics as training would: use
    `accuracy_with_batch_statistics`, which puts them back.
    """

    def __init__(self, cnn: bnk.CNN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cnn = cnn
        # bnk.CNN names its normalization layers "bn1", "bn2", whatever their kind.
        self.normalizers = [
            layer
            for block in cnn.blocks
            for layer in block
            if layer.name.startswith("bn")
        ]

    def build(self, input_shape: tuple) -> None:
        if not self.cnn.built:
            self.cnn.build(input_shape)
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = keras.ops.expand_dims(inputs, -1) if len(inputs.shape) == 3 else inputs
        for layer in self.cnn.layers_in_call_order:
            x = layer(x, training=any(layer is n for n in self.normalizers))
        return x


def accuracy(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int
) -> float:
    """Accuracy of `model`'s logits on (x, y), predicted `batch_size` at a time."""
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def accuracy_with_batch_statistics(
    cnn: bnk.CNN, x: np.ndarray, y: np.ndarray, batch_size: int
) -> float:
    """Test accuracy with every normalization layer on the statistics of the test
    batch (`batch_size` test images at a time, as in training), the model's weights
    left as they were."""
    weights = cnn.get_weights()
    try:
        return accuracy(BatchStatisticsCNN(cnn), x, y, batch_size)
    finally:
        cnn.set_weights(weights)


def whole_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The first `limit` (x, y), cut to a multiple of `batch_size`, so that every
    batch is full (a ghost batch size divides it)."""
    keep = len(x) if limit is None else min(limit, len(x))
    keep = keep // batch_size * batch_size
    return x[:keep], y[:keep]
