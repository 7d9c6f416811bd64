"""The MNIST arrays as the stages use them: scaled to [0, 1], split as the seed does."""

import numpy as np

MNIST_FILE = "data/mnist.npz"
TRAINING_IMAGES = 60_000


def _images(x):
    return (x.astype("float32") / 255.0)[..., None]


def load_training(validation, limit=None, path=MNIST_FILE):
    """(x_train, y_train, x_val, y_val): the last `validation` images are held out.

    `limit` keeps only the first `limit` training images, for quick runs.
    """
    with np.load(path) as data:
        x, y = data["x_train"], data["y_train"]
    available = len(x) - validation
    if limit is not None and limit > available:
        raise ValueError(
            f"params.yaml: `train.limit`={limit} is larger than the {available} "
            "training images left after the validation split."
        )
    stop = available if limit is None else limit
    return (
        _images(x[:stop]),
        y[:stop].astype("int32"),
        _images(x[available:]),
        y[available:].astype("int32"),
    )


def load_test(path=MNIST_FILE):
    with np.load(path) as data:
        return _images(data["x_test"]), data["y_test"].astype("int32")
