"""Stage `check`: the main job's parameters and the MNIST file, checked before the
costly stages.

DVC deletes a stage's outputs before running its command. `train` and `evaluate`
cannot keep theirs with `persist: true`, which would turn off the run-cache that
restores them when the backend is switched back. So they depend on this cheap
stage: DVC runs it first, and a bad parameter or data file stops `dvc repro` here,
before it touches their outputs. (The experiments keep their outputs, and check their
own sections.) Its output records what was checked; it depends only on the data,
not on the backend, so it leaves the run-cache keys of the stages after it unchanged
across backend switches.
"""

from collections.abc import Sequence

from pipeline.core import dataset, params
from pipeline.core.atomic import write_json
from pipeline.core.cli import stage_paths
from pipeline.core.errors import one_line_errors


@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(__doc__, argv, "mnist", "output")
    config = params.load()
    x_train, _, x_val, _ = dataset.training_split(paths.mnist, "train", config.train)
    dataset.training_split(paths.mnist, "compare", config.compare)
    x_test, _ = dataset.load_test(paths.mnist)
    write_json(
        paths.output,
        {
            "data": str(paths.mnist),
            "training_images": len(x_train),
            "validation_images": len(x_val),
            "test_images": len(x_test),
        },
    )
    print(f"check: params.yaml and {paths.mnist} are fine")


if __name__ == "__main__":
    main()
