"""What the experiments share: the data cut to whole evaluation blocks, the compiled
steps per call, the batches, the batch experiments' compiled CNN, and series that JSON
can hold."""

import math

import keras
import numpy as np

import bnk
from pipeline.core.batches import ShuffledBatches
from pipeline.core.errors import PipelineError
from pipeline.core.models import compile_classifier
from pipeline.core.normalizations import Normalizers, normalization_layer

#: The batch experiments' moving-average momentum: bnk.CNN's, the seed's decay.
MOMENTUM = 0.9


class DataError(PipelineError, ValueError):
    """The data file does not fit the params (too few images for one block)."""


def aligned(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    eval_every: int,
    section: str,
    every_key: str = "eval_every",
) -> tuple[np.ndarray, np.ndarray]:
    """The first multiple of `batch_size * eval_every` images, so that the evaluations
    fall on whole passes wherever they can; `section` names the params section and
    `every_key` its key of `eval_every`."""
    block = batch_size * eval_every
    keep = len(x) // block * block
    if keep == 0:
        raise DataError(
            f"{section}: {len(x)} training images are fewer than one block of "
            f"batch_size * {every_key} = {block}."
        )
    return x[:keep], y[:keep]


def steps_per_execution(eval_every: int) -> int:
    """Several compiled steps per call where Keras allows it (not on torch): the
    largest divisor of `eval_every` up to 50, so that calls end on evaluations."""
    if keras.backend.backend() == "torch":
        return 1
    return max(d for d in range(1, min(eval_every, 50) + 1) if eval_every % d == 0)


def training_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int
) -> ShuffledBatches:
    """The batches every variant of an experiment trains on: a fresh shuffle in
    every pass, the same on every backend."""
    return ShuffledBatches(x, y, batch_size, seed)


def statistics_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, count: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first `count` training batches of `batch_size` of a shuffle other than
    training's (at most one pass), for bnk.recompute_statistics."""
    batches = training_batches(x, y, batch_size, seed + 1)
    return [batches[i] for i in range(min(count, batches.batches_per_pass))]


def compiled_cnn(
    normalization: str,
    normalizers: Normalizers,
    batch_size: int,
    learning_rate: float,
    steps: int,
    seed: int,
) -> bnk.CNN:
    """bnk.CNN with `normalization` for batches of `batch_size` (moving averages of
    momentum MOMENTUM), from the initial weights of `seed` (the same for every run of
    an experiment), compiled with Adam at `learning_rate` for `steps` steps a pass
    (steps_per_execution)."""
    keras.utils.set_random_seed(seed)
    model = bnk.CNN(
        normalization=normalization_layer(normalization, normalizers, batch_size),
        momentum=MOMENTUM,
    )
    return compile_classifier(
        model,
        keras.optimizers.Adam(learning_rate),
        steps_per_execution=steps_per_execution(steps),
    )


def finite_list(values: np.ndarray | list[float]) -> list[float | None]:
    """JSON has no NaN or infinity: a diverged value is written as null."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, float)]
