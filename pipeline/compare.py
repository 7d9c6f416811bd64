"""Stage `compare@<backend>`: bnk.CNN trained on one backend, for comparing backends.

Run once per backend in `report.backends` (KERAS_BACKEND set by dvc.yaml), from the
same initial weights, drawn with NumPy rather than the backend's own generator, on the
same batches in the same order (`ShuffledBatches`). Dropout is off: its random masks
differ between backends by design and would hide what this compares, the arithmetic.
Records the loss at every step, test accuracy, wall time and images/s, and two probes
of where the backends' arithmetic parts: the relative error of the batch mean that
BatchNorm takes of the first convolution's output, and the small weights after the
first step.
"""

import time
from pathlib import Path

import keras
import numpy as np

import bnk
from bnk.cnn import INITIALIZERS
from bnk.functional import moments
from pipeline import dataset, params
from pipeline.atomic import write_json
from pipeline.batches import ShuffledBatches
from pipeline.environment import describe
from pipeline.errors import one_line_errors
from pipeline.evaluate import evaluate
from pipeline.outputs import stops_with_parent

SCHEMA = {
    "epochs": params.positive_int,
    "batch_size": params.positive_int,
    "learning_rate": params.positive_float,
    "validation": params.positive_int,
    "limit": params.optional_positive_int,
}
OUTPUT_DIR = Path("metrics/compare")
# Weights small enough to record after the first step (every one but three kernels).
RECORDED_SIZE = 2048


def initial_weights(model, seed):
    """bnk.CNN's initial weights (`INITIALIZERS`), its kernels drawn by NumPy.

    Keras's random initializers draw different numbers on each backend, so the
    kernels come from NumPy's generator, truncated at two standard deviations
    as Keras's `TruncatedNormal` is; every other weight is a constant, which
    Keras's own initializer gives alike on every backend.
    """
    rng = np.random.default_rng(seed)
    stddev = INITIALIZERS["kernel"]["config"]["stddev"]
    weights = []
    for variable in model.weights:
        name = variable.path.rsplit("/", 1)[-1]
        if name == "kernel":
            values = rng.normal(0.0, stddev, variable.shape)
            outside = np.abs(values) > 2 * stddev
            while outside.any():
                values[outside] = rng.normal(0.0, stddev, outside.sum())
                outside = np.abs(values) > 2 * stddev
        else:
            initializer = keras.initializers.get(INITIALIZERS[name])
            values = keras.ops.convert_to_numpy(initializer(variable.shape))
        weights.append(values.astype("float32"))
    return weights


def batch_mean_errors(model, images):
    """Relative error, against float64, of the first BatchNorm's batch mean."""
    features = model.blocks[0][0](images)
    exact = keras.ops.convert_to_numpy(features).astype("float64").mean(axis=(0, 1, 2))

    def error(mean):
        mean = keras.ops.convert_to_numpy(mean).astype("float64").ravel()
        return float(np.abs(mean - exact).max() / np.abs(exact).max())

    return {
        "keras.ops.mean": error(keras.ops.mean(features, axis=(0, 1, 2))),
        "bnk.functional.moments": error(moments(features, (0, 1, 2))[0]),
    }


def train(config, x, y):
    """(model, per-step losses, seconds, the small weights after step 1)."""
    model = bnk.CNN(dropout=0.0)
    model.build((None, 28, 28, 1))
    model.set_weights(initial_weights(model, config["seed"]))
    model.compile(
        optimizer=keras.optimizers.Adam(config["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    batches = ShuffledBatches(x, y, config["batch_size"], config["seed"])
    steps = config["epochs"] * batches.batches_per_pass
    progress = keras.utils.Progbar(steps, unit_name="step", stateful_metrics=["loss"])
    losses, after_first_step = [], None
    start = time.perf_counter()
    for step in range(steps):
        losses.append(float(model.train_on_batch(*batches[step])))
        progress.update(step + 1, values=[("loss", losses[-1])])
        if step == 0:
            after_first_step = {
                variable.path: keras.ops.convert_to_numpy(variable).ravel().tolist()
                for variable in model.weights
                if np.prod(variable.shape) <= RECORDED_SIZE
            }
    return model, losses, time.perf_counter() - start, after_first_step


@one_line_errors
def main():
    stops_with_parent()
    config = params.load("compare", SCHEMA)
    x, y, _, _ = dataset.load_training(config["validation"], config["limit"])
    x_test, y_test = dataset.load_test()
    model, losses, seconds, after_first_step = train(config, x, y)
    probe = ShuffledBatches(x, y, config["batch_size"], config["seed"])[0][0]
    untrained = bnk.CNN(dropout=0.0)
    untrained.build((None, 28, 28, 1))
    untrained.set_weights(initial_weights(untrained, config["seed"]))
    _, test = evaluate(model, x_test, y_test, batch_size=1000)
    write_json(
        OUTPUT_DIR / f"{keras.backend.backend()}.json",
        {
            **describe(),
            **config,
            "training_images": len(x),
            "steps": len(losses),
            "losses": losses,
            "wall_seconds": round(seconds, 2),
            "images_per_second": round(config["epochs"] * len(x) / seconds, 1),
            "test_accuracy": test["accuracy"],
            "test_loss": test["loss"],
            "test_images": test["test_images"],
            "batch_mean_error": batch_mean_errors(untrained, probe),
            "weights_after_first_step": after_first_step,
        },
    )
    print(f"{keras.backend.backend()}: test accuracy {test['accuracy']:.4f} after "
          f"{len(losses)} steps ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
