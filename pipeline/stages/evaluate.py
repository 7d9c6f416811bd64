"""Stage `evaluate`: test accuracy of the trained model.

Also writes every test image's true and predicted label, for DVC's confusion-matrix
plot, and the predicted probabilities, against which the reports check the model
under the other backends. The headline (accuracy, loss) is the metrics file; the
per-class accuracies and the environment are the run's record.
"""

from collections.abc import Sequence

import numpy as np

from pipeline.core import dataset, params
from pipeline.core.atomic import atomic_paths, json_text
from pipeline.core.backends import selected_backend
from pipeline.core.cli import stage_paths
from pipeline.core.environment import describe
from pipeline.core.errors import one_line_errors
from pipeline.core.models import evaluate_classifier, load_trained_cnn
from pipeline.core.outputs import keeps_outputs


@keeps_outputs("evaluate")
@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(
        __doc__,
        argv,
        "mnist",
        "model",
        "probabilities",
        "predictions",
        "metrics",
        "run",
    )
    selected_backend()
    config = params.load().evaluate
    model = load_trained_cnn(paths.model)
    x_test, y_test = dataset.load_test(paths.mnist)
    probabilities, scores = evaluate_classifier(
        model, x_test, y_test, config.batch_size
    )
    predicted = probabilities.argmax(axis=1)
    rows = [
        f"{actual},{guess}" for actual, guess in zip(y_test, predicted, strict=True)
    ]
    outputs = (paths.probabilities, paths.predictions, paths.metrics, paths.run)
    # All four written before any replaces its old version: they always agree.
    with atomic_paths(*outputs) as (probabilities_file, predictions, metrics, run):
        np.save(probabilities_file, probabilities)
        predictions.write_text("\n".join(["actual,predicted", *rows]) + "\n")
        metrics.write_text(
            json_text({key: scores[key] for key in ("accuracy", "loss")})
        )
        run.write_text(json_text({**describe(), **scores}))
    print(f"test accuracy {scores['accuracy']:.4f}, loss {scores['loss']:.4f}")


if __name__ == "__main__":
    main()
