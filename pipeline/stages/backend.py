"""Stage `backend`: record which Keras backend this run uses, as a file DVC tracks.

DVC does not track environment variables, so `KERAS_BACKEND=jax dvc repro` after a
TensorFlow run would otherwise serve TensorFlow's results. This stage always runs
(`always_changed`) and writes the backend's name; the stages whose outputs depend on
the backend list that file as a dependency, so they re-run when it changes and are
restored from DVC's run-cache when it changes back.
"""

from collections.abc import Sequence

from pipeline.core.atomic import atomic_path
from pipeline.core.backends import selected_backend
from pipeline.core.cli import stage_paths
from pipeline.core.errors import one_line_errors


@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(__doc__, argv, "output")
    backend = selected_backend()
    with atomic_path(paths.output) as tmp:
        tmp.write_text(backend + "\n")
    print(f"Keras backend: {backend}")


if __name__ == "__main__":
    main()
