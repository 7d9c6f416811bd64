"""Stage `backend`: record which Keras backend this run uses, as a file DVC tracks.

DVC does not track environment variables, so `KERAS_BACKEND=jax dvc repro` after a
TensorFlow run would otherwise serve TensorFlow's results. This stage always runs
(`always_changed`) and writes the backend's name; the stages whose outputs depend on
the backend list that file as a dependency, so they re-run when it changes and are
restored from DVC's run-cache when it changes back.

The name is the one Keras itself resolves (KERAS_BACKEND, else the `backend` of its
keras.json, else tensorflow), asked of Keras rather than re-derived, so the record
and the metrics that Keras's runs write can never disagree.
"""

import os
from pathlib import Path

from pipeline.atomic import atomic_path
from pipeline.errors import PipelineError, one_line_errors

BACKENDS = ("tensorflow", "jax", "torch")
BACKEND_FILE = Path("state/backend.txt")


class BackendError(PipelineError, ValueError):
    """KERAS_BACKEND or keras.json names a backend this project cannot run on."""


def keras_config_file():
    """Where Keras looks for keras.json (it reads KERAS_HOME, else ~/.keras)."""
    return os.path.join(os.environ.get("KERAS_HOME", "~/.keras"), "keras.json")


def selected_backend():
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
        raise BackendError(f"{keras_config_file()}: Keras cannot start: {error}") from None
    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise BackendError(
            f"{keras_config_file()}: backend {backend!r} is not one of "
            f"{', '.join(BACKENDS)}."
        )
    return backend


@one_line_errors
def main():
    backend = selected_backend()
    with atomic_path(BACKEND_FILE) as tmp:
        tmp.write_text(backend + "\n")
    print(f"Keras backend: {backend}")


if __name__ == "__main__":
    main()
