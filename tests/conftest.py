"""Shared fixtures. The backend is fixed per process by KERAS_BACKEND."""

# First, as in a stage's process: it sets what TensorFlow reads when it starts
# (oneDNN's setting), so the stages the tests run in this process run as under DVC.
import pipeline.core  # noqa: F401, I001

from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from pipeline.core.backends import BACKENDS  # noqa: F401 - the tests import it from here


def pytest_configure(config):
    # A mark of Keras's own test file (tests/test_keras_batch_normalization_suite.py),
    # which skips on Keras's numpy backend only, none of the suite's.
    config.addinivalue_line(
        "markers", "requires_trainable_backend: a test that trains (Keras's mark)"
    )


def full_float32_precision(backend: str) -> None:
    """Matrix products and convolutions at full float32 precision on a GPU.

    The tests compare against float32 and float64 references at float32 tolerances.
    On a GPU, JAX's default matmul precision and TensorFlow's and PyTorch's TF32
    switches round the inputs of matrix products to 10 bits of mantissa (1e-4 to 7e-4
    off on an H200): the tests ask for full precision instead of looser tolerances.
    On a CPU these settings change nothing.
    """
    if backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")
    elif backend == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(False)


@pytest.fixture(autouse=True, scope="session")
def _full_float32_precision():
    full_float32_precision(keras.backend.backend())


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


ROOT = Path(__file__).resolve().parents[1]


def tiny_params():
    """The project's params.yaml, at sizes small enough for a test."""
    config = yaml.safe_load((ROOT / "params.yaml").read_text())
    config["seed"] = 3
    config["train"].update(epochs=2, batch_size=32, learning_rate=1e-3, limit=None,
                           validation=64, statistics_batches=2)
    config["seeds"]["seeds"] = [3, 4]
    config["evaluate"]["batch_size"] = 50
    config["compare"].update(seeds=[3, 4], epochs=1, batch_size=16, learning_rate=1e-3,
                             validation=64, limit=40)
    config["report"] = {"backends": [keras.backend.backend()], "inference_batch": 50}
    config["experiments"].update(backend=keras.backend.backend(), seeds=[3, 4])
    config["bn_experiment"]["mlp"].update(steps=20, eval_every=10, batch_size=12,
                                          unit=3)
    config["bn_experiment"]["cnn"].update(steps=4, eval_every=2, batch_size=8,
                                          learning_rates=[0.001], validation=16)
    config["batch_sizes"].update(TINY_BATCH_SIZES)
    config["non_iid"].update(TINY_NON_IID)
    config["covariate_shift"].update(steps=4, probe_every=2, batch_size=8,
                                     validation=16, limit=64, step_sizes=[0.01, 0.1])
    return config


# The batch experiments at a few steps on a few images, with BN only (each run
# compiles its own model; tests/test_batch_experiments.py builds every choice).
TINY_BATCH_SIZES = {"batch_sizes": [2, 4], "epochs": 1, "limit": 16,
                    "normalizations": ["batch_norm"], "test_images": 16,
                    "statistics_batches": 2}
TINY_NON_IID = {"batch_size": 4, "classes_per_batch": 2,
                "normalizations": ["batch_norm"], "epochs": 1, "limit": 64,
                "test_images": 32}


# Pipeline params small enough for a test, and a scratch project that uses them.
TINY = tiny_params()


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


def random_renorm_weights(rng, channels):
    """`random_bn_weights`, then moving_stddev, renorm_mean and renorm_stddev."""
    return [
        *random_bn_weights(rng, channels),
        rng.uniform(0.7, 1.4, channels).astype("float32"),
        rng.normal(0.0, 0.5, channels).astype("float32"),
        rng.uniform(0.7, 1.4, channels).astype("float32"),
    ]


def in_one_suite_run(backend):
    """Run a check that does not depend on the suite's backend only in `backend`'s run.

    Two kinds: end-to-end checks whose subject is the same on every backend (DVC
    keeping or restoring outputs, stage processes stopped with `dvc repro`, DVC's
    experiments), each costing a minute or more of real `dvc repro`; and checks that
    run a subprocess under a backend of their own (the data-parallel equivalence checks
    of `tests/test_synchronized.py`), run in that backend's pass. `make test` runs the
    suite once per backend, and the three runs share these checks out to stay within
    its time budget.
    """
    return pytest.mark.skipif(
        keras.backend.backend() != backend,
        reason=f"backend-independent check: `make test` runs it under {backend}",
    )
