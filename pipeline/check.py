"""Stage `check`: every parameter and data/mnist.npz, checked before the costly stages.

DVC deletes a stage's outputs before running its command. `train`, `evaluate` and
`bn_experiment` cannot keep theirs with `persist: true`, which would turn off the
run-cache that restores them when the backend is switched back. So they depend on
this cheap stage: DVC runs it first, and a bad parameter or data file stops
`dvc repro` here, before it touches their outputs. Its output, state/checked.json,
records what was checked; it depends only on the data, not on the backend, so it
leaves the run-cache keys of the stages after it unchanged across backend switches.
"""

from pathlib import Path

from pipeline import bn_experiment, compare, dataset, evaluate, params, report, train
from pipeline.atomic import write_json
from pipeline.errors import one_line_errors

CHECKED_FILE = Path("state/checked.json")


@one_line_errors
def main():
    x_train, _, x_val, _ = train.load_data(train.load_params())
    params.load("evaluate", evaluate.SCHEMA)
    x_test, _ = dataset.load_test()
    params.load("report", report.SCHEMA)
    params.load("compare", compare.SCHEMA)
    bn_experiment.load_params()
    write_json(
        CHECKED_FILE,
        {
            "data": dataset.MNIST_FILE,
            "training_images": len(x_train),
            "validation_images": len(x_val),
            "test_images": len(x_test),
        },
    )
    print(f"check: params.yaml and {dataset.MNIST_FILE} are fine")


if __name__ == "__main__":
    main()
