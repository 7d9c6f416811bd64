"""A scratch project for a stage run in a test: params, learnable data, backend."""

import keras
import numpy as np
import yaml


def synthetic_mnist(rng, train=240, test=50):
    """Images whose label is a bright band of rows (learnable), plus noise."""

    def make(n):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for image, label in zip(images, labels, strict=True):
            image[2 * label + 4: 2 * label + 6] = 255
        return images, labels.astype(np.uint8)

    x_train, y_train = make(train)
    x_test, y_test = make(test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def write_project(root, config, rng=None):
    """params.yaml from `config`, a learnable synthetic data/mnist.npz, and the
    `backend` stage's record of this process's backend."""
    (root / "params.yaml").write_text(yaml.safe_dump(config))
    (root / "data").mkdir(exist_ok=True)
    data = synthetic_mnist(rng or np.random.default_rng(0))
    np.savez(root / "data/mnist.npz", **data)
    (root / "state").mkdir(exist_ok=True)
    (root / "state/backend.txt").write_text(keras.backend.backend() + "\n")
