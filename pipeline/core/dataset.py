"""The MNIST arrays as the stages use them: scaled to [0, 1], split as the seed does.

Every read checks the .npz file first (array headers before inflating anything, then
the label range) and fails with one line naming the file and what is wrong. The images
are uint8, so they are finite by construction.
"""

import zipfile
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.core import mnist
from pipeline.core.errors import PipelineError

TRAINING_IMAGES = 60_000
CLASSES = 10


class DataError(PipelineError, ValueError):
    """The MNIST file is missing, damaged, or not shaped like MNIST."""


def _images(x: np.ndarray) -> np.ndarray:
    return (x.astype("float32") / 255.0)[..., None]


def _read(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of `split` ("train" or "test"), checked, as stored (uint8)."""
    images, labels = f"x_{split}", f"y_{split}"
    try:
        headers = mnist.npz_headers(path)
    except FileNotFoundError:
        raise DataError(f"{path} is missing: run `dvc repro fetch` first.") from None
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as error:
        raise DataError(f"{path} is not a readable .npz file: {error}") from None
    uint8 = np.dtype(np.uint8)
    count = mnist.SHAPES[images][0]
    for key, tail, expected in (
        (images, (28, 28), "(n, 28, 28)"),
        (labels, (), "(n,)"),
    ):
        if key not in headers:
            raise DataError(
                f"{path} has no array `{key}` (it has: {', '.join(headers)})."
            )
        shape, dtype = headers[key]
        if dtype != uint8 or shape[1:] != tail or not 0 < shape[0] <= count:
            raise DataError(
                f"{path}: `{key}` must be uint8 of shape {expected} with "
                f"0 < n <= {count}, got {dtype} {shape}."
            )
    if headers[images][0][0] != headers[labels][0][0]:
        raise DataError(
            f"{path}: `{images}` has {headers[images][0][0]} images but `{labels}` "
            f"has {headers[labels][0][0]} labels."
        )
    with np.load(path, allow_pickle=False) as data:
        x, y = data[images], data[labels]
    if y.max() >= CLASSES:
        bad = int(np.argmax(y >= CLASSES))
        raise DataError(
            f"{path}: `{labels}` must be in 0..{CLASSES - 1}, got {y[bad]} at index "
            f"{bad}."
        )
    return x, y


def load_training(
    path: Path, validation: int, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val): the last `validation` images are held out.

    `limit` keeps only the first `limit` training images, for quick runs.
    """
    x, y = _read(path, "train")
    available = len(x) - validation
    if available <= 0:
        raise DataError(
            f"{path} has {len(x)} training images, no more than the {validation} "
            "held out for validation."
        )
    if limit is not None and limit > available:
        raise DataError(
            f"{path}: {limit} training images asked for, but only {available} are "
            f"left after the {validation} held out for validation."
        )
    stop = available if limit is None else limit
    return (
        _images(x[:stop]),
        y[:stop].astype("int32"),
        _images(x[available:]),
        y[available:].astype("int32"),
    )


def load_test(path: Path) -> tuple[np.ndarray, np.ndarray]:
    x, y = _read(path, "test")
    return _images(x), y.astype("int32")


class Split(Protocol):
    """A params section that splits the training images (train, compare, cnn)."""

    validation: int
    limit: int | None
    batch_size: int


def training_split(
    path: Path, section: str, config: Split
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """load_training with `config`'s split, which must leave at least one batch.

    `section` is the params.yaml section `config` came from, for the error message.
    """
    x_train, y_train, x_val, y_val = load_training(
        path, config.validation, config.limit
    )
    if config.batch_size > len(x_train):
        raise DataError(
            f"params.yaml: `{section}.batch_size`={config.batch_size} is larger than "
            f"the {len(x_train)} training images of {path}."
        )
    return x_train, y_train, x_val, y_val
