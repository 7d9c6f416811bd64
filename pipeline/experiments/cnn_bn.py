"""The seed's CNN (bnk.CNN) with and without BatchNorm, Adam at several rates.

Validation accuracy and loss every `eval_every` steps, on held-out training images;
the same initial weights and the same batches for both variants at every rate.
"""

import time
from pathlib import Path

import keras
import numpy as np

import bnk
from pipeline import dataset, params
from pipeline.experiments.runs import (
    aligned,
    finite_list,
    steps_per_execution,
    training_batches,
)
from pipeline.models import compile_classifier

VALIDATION_BATCH = 500


def train_cnn(
    batch_norm: bool,
    learning_rate: float,
    config: params.Cnn,
    seed: int,
    training: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
) -> dict:
    """One run: the per-evaluation series of one variant at one learning rate."""
    keras.utils.set_random_seed(seed)  # the same initial weights for both
    normalization = bnk.BatchNorm if batch_norm else None
    model = bnk.CNN(normalization=normalization)
    eval_every = config.eval_every
    compile_classifier(
        model,
        keras.optimizers.Adam(learning_rate),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution(eval_every),
    )
    start = time.perf_counter()
    history = model.fit(
        training_batches(*training, config.batch_size, seed),
        steps_per_epoch=eval_every,
        epochs=config.steps // eval_every,
        validation_data=validation,
        validation_batch_size=VALIDATION_BATCH,
        shuffle=False,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    logs = history.history
    return {
        "learning_rate": learning_rate,
        "batch_norm": batch_norm,
        "val_accuracy": finite_list(logs["val_accuracy"]),
        "val_loss": finite_list(logs["val_loss"]),
        "loss": finite_list(logs["loss"]),
        "accuracy": finite_list(logs["accuracy"]),
        "wall_seconds": round(seconds, 2),
    }


def run(config: params.Cnn, seed: int, mnist: Path) -> dict:
    """Every rate, with and without BN, on the MNIST file `mnist`."""
    x_train, y_train, x_val, y_val = dataset.load_training(
        mnist, config.validation, config.limit
    )
    training = aligned(
        x_train, y_train, config.batch_size, config.eval_every, "experiment.cnn"
    )
    runs = []
    for learning_rate in config.learning_rates:
        for batch_norm in (True, False):
            result = train_cnn(
                batch_norm, learning_rate, config, seed, training, (x_val, y_val)
            )
            runs.append(result)
            final = result["val_accuracy"][-1]
            print(
                f"cnn lr={learning_rate:g} {'bn' if batch_norm else 'plain'}: "
                f"val accuracy {final if final is None else round(final, 4)} "
                f"({result['wall_seconds']:.0f} s)",
                flush=True,
            )
    every = config.eval_every
    return {
        "steps": list(range(every, config.steps + 1, every)),
        "training_images": len(training[0]),
        "validation_images": len(x_val),
        "runs": runs,
    }
