"""The normalizations the batch experiments compare, as bnk.CNN's `normalization`,
and the CNN's test accuracy with each kind of statistics.

bnk.CNN calls its `normalization` with BatchNormalization's keyword arguments
(`momentum`, the moving-statistics initializers, ...); GroupNormalization and
LayerNormalization keep no moving statistics, so their factories drop those.
LayerNormalization normalizes each example over height, width and channels (Wu & He's
LN for convolutions), with a scale and offset per element, as Keras's layer does for
several axes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import keras
import numpy as np
from pydantic import model_validator

import bnk
from bnk.cnn import FILTERS
from pipeline.core.params import (
    CrossKeyError,
    Fraction,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Section,
    rule,
)

#: Test images per call in inference mode (batch statistics use the training size).
INFERENCE_BATCH = 500

LayerFactory = Callable[..., keras.layers.Layer]


class RenormClipping(Section):
    """Batch Renorm's bounds: r in [rmin, rmax], d in [-dmax, dmax]."""

    rmax: PositiveFloat
    rmin: PositiveFloat
    dmax: NonNegativeFloat

    @model_validator(mode="after")
    def _around_one(self) -> RenormClipping:
        if not self.rmin <= 1 <= self.rmax:
            raise CrossKeyError(
                f"`renorm_clipping` needs rmin <= 1 <= rmax, got rmin={self.rmin}, "
                f"rmax={self.rmax}."
            )
        return self


class Normalizers(Section):
    """The settings of the normalizations below (a params.yaml `normalizers:`)."""

    ghost_batch_size: PositiveInt
    groups: PositiveInt
    renorm_clipping: RenormClipping
    renorm_momentum: Fraction

    @model_validator(mode="after")
    def _groups_divide_the_channels(self) -> Normalizers:
        if any(channels % self.groups for channels in FILTERS):
            raise CrossKeyError(
                f"`normalizers.groups`={self.groups} must divide the CNN's "
                f"{' and '.join(map(str, FILTERS))} channels."
            )
        return self


def ghost_batch_size(config: Normalizers, batch_size: int) -> int:
    """The ghost batch of `config` within a batch of `batch_size`: no larger than the
    batch (then it is plain BN)."""
    return min(config.ghost_batch_size, batch_size)


def _batch_norm(config: Normalizers, batch_size: int) -> LayerFactory:
    return bnk.BatchNorm


def _ghost_batch_norm(config: Normalizers, batch_size: int) -> LayerFactory:
    ghost = ghost_batch_size(config, batch_size)

    def ghost_batch_norm(**kwargs: Any) -> keras.layers.Layer:
        return bnk.BatchNorm(virtual_batch_size=ghost, **kwargs)

    return ghost_batch_norm


def _batch_renorm(config: Normalizers, batch_size: int) -> LayerFactory:
    def batch_renorm(**kwargs: Any) -> keras.layers.Layer:
        return bnk.BatchNorm(
            renorm=True,
            renorm_clipping=config.renorm_clipping.model_dump(),
            renorm_momentum=config.renorm_momentum,
            **kwargs,
        )

    return batch_renorm


def _group_norm(config: Normalizers, batch_size: int) -> LayerFactory:
    def group_norm(**kwargs: Any) -> keras.layers.Layer:
        return keras.layers.GroupNormalization(
            groups=config.groups, **_without_moving_statistics(kwargs)
        )

    return group_norm


def _layer_norm(config: Normalizers, batch_size: int) -> LayerFactory:
    def layer_norm(**kwargs: Any) -> keras.layers.Layer:
        return keras.layers.LayerNormalization(
            axis=(-3, -2, -1), **_without_moving_statistics(kwargs)
        )

    return layer_norm


def _none(config: Normalizers, batch_size: int) -> None:
    return None


@dataclass(frozen=True)
class Normalization:
    """One choice: how the reports name it, whether it normalizes with batch
    statistics in training and moving ones in inference, and bnk.CNN's
    `normalization` for it at a batch size."""

    label: str
    batch_statistics: bool
    layer: Callable[[Normalizers, int], LayerFactory | None]


#: Every choice, by its params.yaml name, in the order the reports list them.
NORMALIZATIONS: dict[str, Normalization] = {
    "batch_norm": Normalization("BN", True, _batch_norm),
    "ghost_batch_norm": Normalization("ghost BN", True, _ghost_batch_norm),
    "batch_renorm": Normalization("Batch Renorm", True, _batch_renorm),
    "group_norm": Normalization("GroupNorm", False, _group_norm),
    "layer_norm": Normalization("LayerNorm", False, _layer_norm),
    "none": Normalization("no normalization", False, _none),
}
#: How the reports name each choice, in the order they list them.
LABELS = {name: choice.label for name, choice in NORMALIZATIONS.items()}
#: Layers with batch statistics in training and moving statistics in inference.
BATCH_STATISTICS = tuple(n for n, c in NORMALIZATIONS.items() if c.batch_statistics)
#: params.yaml's list of normalizations to compare.
NormalizationNames = Annotated[
    tuple[str, ...],
    rule(
        lambda v: isinstance(v, list)
        and v != []
        and len(set(v)) == len(v)
        and set(v) <= set(NORMALIZATIONS),
        f"a non-empty list of distinct names from {', '.join(NORMALIZATIONS)}",
        tuple,
    ),
]


def normalization_layer(
    name: str, config: Normalizers, batch_size: int
) -> LayerFactory | None:
    """bnk.CNN's `normalization` for the choice `name` at batch size `batch_size`."""
    if name not in NORMALIZATIONS:
        raise ValueError(
            f"Unknown normalization {name!r} (known: {', '.join(NORMALIZATIONS)})."
        )
    return NORMALIZATIONS[name].layer(config, batch_size)


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
