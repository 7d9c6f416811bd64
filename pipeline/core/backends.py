"""The Keras backends this project runs on, and which one a process runs.

The name is the one Keras itself resolves (KERAS_BACKEND, else the `backend` of its
keras.json, else tensorflow), asked of Keras rather than re-derived, so the record
the `backend` stage writes and the metrics that Keras's runs write never disagree.
"""

import os

from pipeline.core.errors import PipelineError

BACKENDS = ("tensorflow", "jax", "torch")
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


class BackendError(PipelineError, ValueError):
    """KERAS_BACKEND or keras.json names a backend this project cannot run on."""


def keras_config_file() -> str:
    """Where Keras looks for keras.json (it reads KERAS_HOME, else ~/.keras)."""
    return os.path.join(os.environ.get("KERAS_HOME", "~/.keras"), "keras.json")


def selected_backend() -> str:
    """The backend Keras runs on in this process; BackendError if Keras refuses it."""
    named = os.environ.get("KERAS_BACKEND")
    if named and named not in BACKENDS:
        # Checked before importing Keras, which would fail with a traceback.
        raise BackendError(
            f"Unknown KERAS_BACKEND={named!r}; expected one of {', '.join(BACKENDS)}."
        )
    try:
        import keras
    except ValueError as error:  # keras.json names a backend Keras cannot import
        raise BackendError(
            f"{keras_config_file()}: Keras cannot start: {error}"
        ) from None
    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise BackendError(
            f"{keras_config_file()}: backend {backend!r} is not one of "
            f"{', '.join(BACKENDS)}."
        )
    return backend
