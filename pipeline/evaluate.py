"""Stage `evaluate`: test accuracy of models/cnn.keras -> metrics/eval.json.

Also writes every test image's true and predicted label, for DVC's confusion-matrix
plot, and the predicted probabilities, against which the reports check the model
under the other backends.
"""

import zipfile
from pathlib import Path

import keras
import numpy as np

import bnk  # also registers bnk's classes for safe loading
from pipeline import dataset, params
from pipeline.atomic import atomic_paths, json_text
from pipeline.backend import selected_backend
from pipeline.environment import describe
from pipeline.errors import PipelineError, one_line_errors
from pipeline.outputs import keeps_outputs
from pipeline.train import MODEL_FILE

SCHEMA = {"batch_size": params.positive_int}
METRICS_FILE = Path("metrics/eval.json")
PREDICTIONS_FILE = Path("metrics/test_predictions.csv")
PROBABILITIES_FILE = Path("models/test_probabilities.npy")


class ModelError(PipelineError, ValueError):
    """models/cnn.keras is missing, unreadable, or not the trained bnk.CNN."""


def load_model(path=MODEL_FILE):
    """The trained bnk.CNN in `path` (safe_mode), checked to map MNIST images to 10 logits."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"No trained model at {path}: run `dvc repro train` first.")
    if not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise ModelError(f"{path} is not a Keras model file (not a .keras zip archive).")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # a damaged or foreign archive fails in many ways
        raise ModelError(f"{path} cannot be loaded as a Keras model: {error}") from error
    if not isinstance(model, bnk.CNN):
        raise ModelError(f"{path} holds a {type(model).__name__}, not the trained bnk.CNN.")
    output = tuple(model(np.zeros((1, 28, 28, 1), "float32"), training=False).shape)
    if output != (1, 10):
        raise ModelError(f"{path}: the model maps an MNIST image to {output}, not 10 logits.")
    return model


def evaluate(model, x_test, y_test, batch_size):
    """(probabilities, metrics) of `model` on the test set, in inference mode."""
    logits = model.predict(x_test, batch_size=batch_size, verbose=0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    predicted = np.argmax(logits, axis=1)
    classes = range(logits.shape[1])
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    return probabilities, {
        "accuracy": float(np.mean(predicted == y_test)),
        "loss": float(keras.ops.convert_to_numpy(loss(y_test, logits))),
        "per_class_accuracy": {
            str(c): float(np.mean(predicted[y_test == c] == c)) for c in classes
        },
        "test_images": len(y_test),
    }


@keeps_outputs("evaluate")
@one_line_errors
def main():
    selected_backend()
    config = params.load("evaluate", SCHEMA)
    model = load_model()
    x_test, y_test = dataset.load_test()
    probabilities, metrics = evaluate(model, x_test, y_test, config["batch_size"])
    predicted = probabilities.argmax(axis=1)
    rows = [f"{actual},{guess}" for actual, guess in zip(y_test, predicted)]
    # All three written before any replaces its old version: they always agree.
    with atomic_paths(PROBABILITIES_FILE, PREDICTIONS_FILE, METRICS_FILE) as tmps:
        np.save(tmps[0], probabilities)
        tmps[1].write_text("\n".join(["actual,predicted", *rows]) + "\n")
        tmps[2].write_text(json_text({**describe(), **metrics}))
    print(f"test accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}")


if __name__ == "__main__":
    main()
