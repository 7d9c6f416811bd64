"""Made-up MNIST passing the fetch stage's checks, for tests that must not download."""

import numpy as np

from pipeline.core import mnist


def random_images(rng, shape):
    """Random bytes in four rows, zeros elsewhere: like MNIST's black borders, this
    compresses well, which keeps the fixtures fast."""
    images = np.zeros(shape, np.uint8)
    images[:, 12:16] = rng.integers(0, 256, (shape[0], 4, 28), dtype=np.uint8)
    return images


def fake_mnist(seed=0):
    """Made-up images with MNIST's exact label counts and first training labels."""
    rng = np.random.default_rng(seed)
    first = np.array(mnist.FIRST_TRAIN_LABELS)
    rest = np.array(mnist.LABEL_COUNTS["y_train"]) - np.bincount(first, minlength=10)
    y_train = np.concatenate([first, rng.permutation(np.repeat(range(10), rest))])
    y_test = rng.permutation(np.repeat(range(10), mnist.LABEL_COUNTS["y_test"]))
    return {
        "x_train": random_images(rng, mnist.SHAPES["x_train"]),
        "y_train": y_train.astype(np.uint8),
        "x_test": random_images(rng, mnist.SHAPES["x_test"]),
        "y_test": y_test.astype(np.uint8),
    }
