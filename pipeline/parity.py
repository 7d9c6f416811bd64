"""Stage `parity@<backend>`: the CNN's loss at each of the first N training steps.

Run once per backend (KERAS_BACKEND set by dvc.yaml) from the same initial weights,
drawn with NumPy rather than the backend's own generator, on the same batches in the
same order. Dropout is off: its random masks differ between backends by design and
would hide what this compares, the arithmetic.
"""

import sys
import time
from pathlib import Path

import keras
import numpy as np

import bnk
from pipeline import dataset, params
from pipeline.atomic import write_json
from pipeline.environment import describe

SCHEMA = {
    "steps": params.positive_int,
    "batch_size": params.positive_int,
    "learning_rate": params.positive_float,
}
OUTPUT_DIR = Path("metrics/parity")
# Initial values by weight name, as bnk.CNN initializes them (the seed's choices).
CONSTANT_INITIAL = {"bias": 0.01, "gamma": 1.0, "beta": 0.0, "moving_mean": 0.0,
                    "moving_variance": 1.0}


def initial_weights(model, seed):
    """Kernels truncated-normal (stddev 0.01), the rest as bnk.CNN sets them."""
    rng = np.random.default_rng(seed)
    weights = []
    for variable in model.weights:
        name = variable.path.rsplit("/", 1)[-1]
        if name == "kernel":
            values = rng.normal(0.0, 0.01, variable.shape)
            outside = np.abs(values) > 0.02
            while outside.any():
                values[outside] = rng.normal(0.0, 0.01, outside.sum())
                outside = np.abs(values) > 0.02
        else:
            values = np.full(variable.shape, CONSTANT_INITIAL[name])
        weights.append(values.astype("float32"))
    return weights


def step_losses(config, x, y):
    model = bnk.CNN(dropout=0.0)
    model.build((None, 28, 28, 1))
    model.set_weights(initial_weights(model, config["seed"]))
    model.compile(
        optimizer=keras.optimizers.Adam(config["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    size = config["batch_size"]
    progress = keras.utils.Progbar(
        config["steps"], unit_name="step", stateful_metrics=["loss"]
    )
    losses = []
    for step in range(config["steps"]):
        batch = slice(step * size, (step + 1) * size)
        losses.append(float(model.train_on_batch(x[batch], y[batch])))
        progress.update(step + 1, values=[("loss", losses[-1])])
    return losses


def main():
    try:
        config = params.load("parity", SCHEMA)
    except ValueError as error:
        sys.exit(str(error))
    needed = config["steps"] * config["batch_size"]
    if needed > dataset.TRAINING_IMAGES:
        sys.exit(
            f"params.yaml: `parity.steps` x `parity.batch_size` = {needed} exceeds "
            f"the {dataset.TRAINING_IMAGES} training images."
        )
    x, y, _, _ = dataset.load_training(validation=0, limit=needed)
    start = time.perf_counter()
    losses = step_losses(config, x, y)
    write_json(
        OUTPUT_DIR / f"{keras.backend.backend()}.json",
        {**describe(), **config, "wall_seconds": round(time.perf_counter() - start, 2),
         "losses": losses},
    )


if __name__ == "__main__":
    main()
