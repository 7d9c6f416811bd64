"""Shared fixtures. The backend is fixed per process by KERAS_BACKEND."""

import keras
import numpy as np
import pytest
import yaml

BACKENDS = ("tensorflow", "jax", "torch")


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


# Pipeline params small enough for a test, and a scratch project that uses them.
TINY = {
    "seed": 3,
    "train": {
        "epochs": 2, "batch_size": 32, "learning_rate": 1e-3, "limit": None,
        "validation": 64, "momentum": 0.9, "epsilon": 1e-3, "dropout": 0.5,
    },
    "evaluate": {"batch_size": 50},
    "compare": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "validation": 64,
                "limit": 40},
    "report": {"backends": [keras.backend.backend()], "inference_batch": 50},
}


@pytest.fixture
def workdir(tmp_path, monkeypatch, rng):
    """A scratch project: params.yaml and a small data/mnist.npz."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(TINY))
    (tmp_path / "data").mkdir()
    np.savez(
        tmp_path / "data/mnist.npz",
        x_train=rng.integers(0, 256, (256, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 256).astype(np.uint8),
        x_test=rng.integers(0, 256, (100, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 100).astype(np.uint8),
    )
    return tmp_path


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def random_bn_weights(rng, channels):
    """gamma, beta, moving_mean, moving_variance, all different from defaults."""
    return [
        rng.uniform(0.5, 1.5, channels).astype("float32"),
        rng.normal(0.0, 0.5, channels).astype("float32"),
        rng.normal(0.0, 0.5, channels).astype("float32"),
        rng.uniform(0.5, 2.0, channels).astype("float32"),
    ]


def in_one_suite_run(backend):
    """Run a backend-independent end-to-end check only in `backend`'s run of the suite.

    What these checks exercise (DVC keeping or restoring outputs, stage processes
    stopped with `dvc repro`, DVC's experiments) is the same on every backend, and each
    costs a minute or more of real `dvc repro`; `make test` runs the suite once per
    backend, and the three runs share the checks out to stay within its time budget.
    """
    return pytest.mark.skipif(
        keras.backend.backend() != backend,
        reason=f"backend-independent DVC check: `make test` runs it under {backend}",
    )
