"""Stage `backend`: record which Keras backend this run uses, as a file DVC tracks.

DVC does not track environment variables, so `KERAS_BACKEND=jax dvc repro` after a
TensorFlow run would otherwise serve TensorFlow's results. This stage always runs
(`always_changed`) and writes the backend's name; the stages whose outputs depend on
the backend list that file as a dependency, so they re-run when it changes and are
restored from DVC's run-cache when it changes back.
"""

import os
import sys
from pathlib import Path

from pipeline.atomic import atomic_path

BACKENDS = ("tensorflow", "jax", "torch")
BACKEND_FILE = Path("state/backend.txt")


def selected_backend(environ=os.environ):
    """The backend KERAS_BACKEND names (default tensorflow, as in Keras)."""
    backend = environ.get("KERAS_BACKEND", "tensorflow")
    if backend not in BACKENDS:
        raise ValueError(
            f"Unknown KERAS_BACKEND={backend!r}; expected one of {', '.join(BACKENDS)}."
        )
    return backend


def main():
    try:
        backend = selected_backend()
    except ValueError as error:
        sys.exit(str(error))
    with atomic_path(BACKEND_FILE) as tmp:
        tmp.write_text(backend + "\n")
    print(f"Keras backend: {backend}")


if __name__ == "__main__":
    main()
