"""What the stages and experiments do alike with a classifier: compile, load, test.

Every model here maps images to logits, so the loss is always sparse categorical
cross-entropy from logits.
"""

import zipfile
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

import bnk  # also registers bnk's classes for safe loading
from bnk.cnn import INPUT_SHAPE
from pipeline.core.errors import PipelineError


class ModelError(PipelineError, ValueError):
    """A model file is missing, unreadable, or not the trained bnk.CNN."""


@keras.saving.register_keras_serializable(package="pipeline")
def synchronized_batch_norm(**kwargs: object) -> bnk.BatchNorm:
    """bnk.BatchNorm with `synchronized=True`, as bnk.CNN's `normalization` when
    training over several devices (registered, so a saved model finds it)."""
    return bnk.BatchNorm(synchronized=True, **kwargs)


def logits_loss() -> keras.losses.Loss:
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compile_classifier(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    metrics: Sequence[str] = (),
    steps_per_execution: int = 1,
    jit_compile: bool | str = "auto",
) -> keras.Model:
    """`model` compiled with the logits loss; returned for chaining."""
    model.compile(
        optimizer=optimizer,
        loss=logits_loss(),
        metrics=list(metrics),
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    return model


def load_trained_cnn(path: Path) -> bnk.CNN:
    """The bnk.CNN in `path` (safe_mode), checked to map MNIST images to 10 logits."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"No trained model at {path}: run `dvc repro train` first.")
    if not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise ModelError(
            f"{path} is not a Keras model file (not a .keras zip archive)."
        )
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # a damaged or foreign archive fails in many ways
        raise ModelError(
            f"{path} cannot be loaded as a Keras model: {error}"
        ) from error
    if not isinstance(model, bnk.CNN):
        raise ModelError(
            f"{path} holds a {type(model).__name__}, not the trained bnk.CNN."
        )
    image = np.zeros((1, *INPUT_SHAPE), "float32")
    output = tuple(model(image, training=False).shape)
    if output != (1, 10):
        raise ModelError(
            f"{path}: the model maps an MNIST image to {output}, not 10 logits."
        )
    return model


def evaluate_classifier(
    model: keras.Model, x_test: np.ndarray, y_test: np.ndarray, batch_size: int
) -> tuple[np.ndarray, dict]:
    """(probabilities, metrics) of `model` on the test set, in inference mode."""
    logits = model.predict(x_test, batch_size=batch_size, verbose=0)
    predicted = np.argmax(logits, axis=1)
    classes = range(logits.shape[1])
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    return probabilities, {
        "accuracy": float(np.mean(predicted == y_test)),
        "loss": float(keras.ops.convert_to_numpy(logits_loss()(y_test, logits))),
        "per_class_accuracy": {
            str(c): float(np.mean(predicted[y_test == c] == c)) for c in classes
        },
        "test_images": len(y_test),
    }
