"""Stage `compare@<backend>`: bnk.CNN trained on one backend, for comparing backends.

Run once per backend in `report.backends` (KERAS_BACKEND set by dvc.yaml), from the
same initial weights, drawn with NumPy rather than the backend's own generator, on the
same batches in the same order (`ShuffledBatches`). Dropout is off: its random masks
differ between backends by design and would hide what this compares, the arithmetic.
Once per seed of `compare.seeds`. Records, for the first seed, the loss at every step,
test accuracy, wall time and images/s, and two probes of where the backends'
arithmetic parts: the relative error of the batch mean that BatchNorm takes of the
first convolution's output, and the small weights after the first step; and in `runs`,
every seed's losses and test scores, for the spread between seeds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import keras
import numpy as np

import bnk
from bnk.cnn import INITIALIZERS, INPUT_SHAPE
from bnk.functional import Tensor, moments
from pipeline.core import dataset, params
from pipeline.core.atomic import write_json
from pipeline.core.batches import ShuffledBatches
from pipeline.core.cli import stage_paths
from pipeline.core.environment import describe
from pipeline.core.errors import one_line_errors
from pipeline.core.models import compile_classifier, evaluate_classifier
from pipeline.core.outputs import stops_with_parent

# What `runs` keeps of every seed's run.
SEED_KEYS = ("seed", "losses", "test_accuracy", "test_loss", "wall_seconds")
# Weights small enough to record after the first step (every one but three kernels).
RECORDED_SIZE = 2048


def initial_cnn(seed: int) -> bnk.CNN:
    """bnk.CNN without dropout, at its initial weights drawn from `seed`."""
    model = bnk.CNN(dropout=0.0)
    model.build((None, *INPUT_SHAPE))
    model.set_weights(initial_weights(model, seed))
    return model


def initial_weights(model: bnk.CNN, seed: int) -> list[np.ndarray]:
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


def batch_mean_errors(model: bnk.CNN, images: np.ndarray) -> dict[str, float]:
    """Relative error, against float64, of the first BatchNorm's batch mean."""
    features = model.blocks[0][0](images)
    exact = keras.ops.convert_to_numpy(features).astype("float64").mean(axis=(0, 1, 2))

    def error(mean: Tensor) -> float:
        mean = keras.ops.convert_to_numpy(mean).astype("float64").ravel()
        return float(np.abs(mean - exact).max() / np.abs(exact).max())

    return {
        "keras.ops.mean": error(keras.ops.mean(features, axis=(0, 1, 2))),
        "bnk.functional.moments": error(moments(features, (0, 1, 2))[0]),
    }


def train(
    config: params.Compare, seed: int, batches: ShuffledBatches
) -> tuple[bnk.CNN, list[float], float, dict[str, list[float]]]:
    """(model, per-step losses, seconds, the small weights after step 1)."""
    model = compile_classifier(
        initial_cnn(seed), keras.optimizers.Adam(config.learning_rate)
    )
    steps = config.epochs * batches.batches_per_pass
    progress = keras.utils.Progbar(steps, unit_name="step", stateful_metrics=["loss"])
    losses, after_first_step = [], {}
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


def one_seed(
    config: params.Compare,
    seed: int,
    training: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    test_batch_size: int,
) -> dict:
    """Train from `seed`'s weights on `seed`'s batches: the per-step losses, the test
    scores, the time, and the two probes of the arithmetic."""
    batches = ShuffledBatches(*training, config.batch_size, seed)
    # Measured before training, on the first batch and the initial weights.
    mean_errors = batch_mean_errors(initial_cnn(seed), batches[0][0])
    model, losses, seconds, after_first_step = train(config, seed, batches)
    _, scores = evaluate_classifier(model, *test, test_batch_size)
    return {
        "seed": seed,
        "steps": len(losses),
        "losses": losses,
        "wall_seconds": round(seconds, 2),
        "images_per_second": round(config.epochs * len(training[0]) / seconds, 1),
        "test_accuracy": scores["accuracy"],
        "test_loss": scores["loss"],
        "test_images": scores["test_images"],
        "batch_mean_error": mean_errors,
        "weights_after_first_step": after_first_step,
    }


@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(__doc__, argv, "mnist", "output")
    with stops_with_parent():
        every = params.load()
        config = every.compare
        x, y, _, _ = dataset.training_split(paths.mnist, "compare", config)
        test = dataset.load_test(paths.mnist)
        runs = []
        for seed in config.seeds:
            runs.append(one_seed(config, seed, (x, y), test, every.evaluate.batch_size))
            print(
                f"{keras.backend.backend()}, seed {seed}: test accuracy "
                f"{runs[-1]['test_accuracy']:.4f} after {runs[-1]['steps']} steps "
                f"({runs[-1]['wall_seconds']:.0f} s)",
                flush=True,
            )
        # The first seed's run at the top level: the one the report dissects.
        write_json(
            paths.output,
            {
                **describe(),
                **config.model_dump(),
                "training_images": len(x),
                **runs[0],
                "runs": [{key: run[key] for key in SEED_KEYS} for run in runs],
            },
        )


if __name__ == "__main__":
    main()
