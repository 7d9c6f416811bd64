"""Stage `evaluate`: test accuracy of models/cnn.keras -> metrics/eval.json.

Also writes every test image's true and predicted label, for DVC's confusion-matrix
plot, and the predicted probabilities, against which the reports check the model
under the other backends.
"""

import sys
from pathlib import Path

import keras
import numpy as np

import bnk  # noqa: F401  (registers bnk's classes for safe loading)
from pipeline import dataset, params
from pipeline.atomic import atomic_path, write_json
from pipeline.backend import selected_backend
from pipeline.environment import describe
from pipeline.train import MODEL_FILE

SCHEMA = {"batch_size": params.positive_int}
METRICS_FILE = Path("metrics/eval.json")
PREDICTIONS_FILE = Path("metrics/test_predictions.csv")
PROBABILITIES_FILE = Path("models/test_probabilities.npy")


def load_model(path=MODEL_FILE):
    if not Path(path).exists():
        raise FileNotFoundError(
            f"No trained model at {path}: run `dvc repro train` first."
        )
    return keras.saving.load_model(path, safe_mode=True)


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


def main():
    try:
        selected_backend()
        config = params.load("evaluate", SCHEMA)
        model = load_model()
    except (ValueError, FileNotFoundError) as error:
        sys.exit(str(error))
    x_test, y_test = dataset.load_test()
    probabilities, metrics = evaluate(model, x_test, y_test, config["batch_size"])
    predicted = probabilities.argmax(axis=1)
    with atomic_path(PROBABILITIES_FILE) as tmp:
        np.save(tmp, probabilities)
    with atomic_path(PREDICTIONS_FILE) as tmp:
        rows = [f"{actual},{guess}" for actual, guess in zip(y_test, predicted)]
        tmp.write_text("\n".join(["actual,predicted", *rows]) + "\n")
    write_json(METRICS_FILE, {**describe(), **metrics})
    print(f"test accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}")


if __name__ == "__main__":
    main()
