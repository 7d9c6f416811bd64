"""Stage `train`: fit bnk.CNN on MNIST -> models/cnn.keras, metrics/train.json.

Each epoch is a fresh shuffle drawn from the seed (`ShuffledBatches`), the same on
every backend. Resumable: a killed run picks up from its last finished epoch (BackupAndRestore,
in a folder keyed by the params and backend so a stale backup is never resumed).
The folder is locked while a trainer uses it: the trainer dies with a killed
`dvc repro` (pipeline.outputs), and should one outlive it, a second trainer refuses
to start instead of sharing the folder. A NaN loss stops training before anything
is written. The outputs are written together, atomically; a failed run puts back
the previous ones.
"""

import hashlib
import json
import math
import shutil
import time
from pathlib import Path

import filelock
import keras

import bnk
from pipeline import dataset, params
from pipeline.atomic import atomic_paths, json_text
from pipeline.backend import selected_backend
from pipeline.batches import ShuffledBatches
from pipeline.environment import describe
from pipeline.errors import PipelineError, one_line_errors
from pipeline.outputs import keeps_outputs

SCHEMA = {
    "epochs": params.positive_int,
    "batch_size": params.positive_int,
    "learning_rate": params.positive_float,
    "limit": params.optional_positive_int,
    "validation": params.positive_int,
    "momentum": params.fraction,
    "epsilon": params.positive_float,
    "dropout": params.fraction,
}
MODEL_FILE = Path("models/cnn.keras")
METRICS_FILE = Path("metrics/train.json")
HISTORY_FILE = Path("metrics/train_history.csv")
BACKUP_ROOT = Path("checkpoints")


def load_params():
    config = params.load("train", SCHEMA)
    if config["validation"] >= dataset.TRAINING_IMAGES:
        raise params.ParamsError(
            f"params.yaml: `train.validation`={config['validation']} leaves no "
            f"training images (MNIST has {dataset.TRAINING_IMAGES})."
        )
    available = dataset.TRAINING_IMAGES - config["validation"]
    if config["limit"] is not None and config["limit"] > available:
        raise params.ParamsError(
            f"params.yaml: `train.limit`={config['limit']} is larger than the "
            f"{available} training images left after the validation split."
        )
    return config


def build_model(config):
    model = bnk.CNN(
        momentum=config["momentum"],
        epsilon=config["epsilon"],
        dropout=config["dropout"],
    )
    model.build((None, 28, 28, 1))  # BackupAndRestore restores into built models
    model.compile(
        optimizer=keras.optimizers.Adam(config["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def backup_dir(config, backend):
    key = json.dumps({"params": config, "backend": backend}, sort_keys=True)
    return BACKUP_ROOT / f"train-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


class TrainingDiverged(PipelineError):
    """The loss became NaN or infinite."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise at the end of an epoch whose loss is NaN or infinite (Keras's
    TerminateOnNaN would end `fit` normally, and the diverged model would be saved).

    Once per epoch, not per batch: reading the loss every batch would cost a host
    round trip each step. The epoch's loss is the mean over its batches, so one
    diverged batch shows. Listed before the callbacks that log and back up the epoch.
    """

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(
                f"training diverged: loss is {float(loss)} in epoch {epoch + 1}; "
                f"{MODEL_FILE} and the metrics were not written (lower "
                "`train.learning_rate` in params.yaml)."
            )


def locked(backup):
    """Hold `backup`'s lock; PipelineError at once if another trainer holds it."""
    lock = filelock.FileLock(backup / "lock", timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise PipelineError(
            f"{backup} is in use by another trainer (an earlier `dvc repro` killed "
            "while training leaves its trainer running): wait for it or stop it."
        ) from None
    return lock


def history_rows(csv_path):
    """The per-epoch log, one row per epoch (a resumed epoch's last row wins)."""
    lines = csv_path.read_text().splitlines()
    header, rows = lines[0], {}
    for line in lines[1:]:
        rows[int(line.split(",")[0])] = line
    return header, [rows[epoch] for epoch in sorted(rows)]


class EpochCounter(keras.callbacks.Callback):
    """Counts the epochs this process ran (fewer than asked for after a resume)."""

    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


def load_data(config):
    """(x_train, y_train, x_val, y_val) of data/mnist.npz, checked against `config`."""
    x_train, y_train, x_val, y_val = dataset.load_training(
        config["validation"], config["limit"]
    )
    if config["batch_size"] > len(x_train):
        raise params.ParamsError(
            f"params.yaml: `train.batch_size`={config['batch_size']} is larger than "
            f"the {len(x_train)} training images."
        )
    return x_train, y_train, x_val, y_val


def train(config, backend):
    keras.utils.set_random_seed(config["seed"])
    x_train, y_train, x_val, y_val = load_data(config)
    model = build_model(config)
    backup = backup_dir(config, backend)
    backup.mkdir(parents=True, exist_ok=True)
    with locked(backup):
        fit_and_save(model, config, backup, x_train, y_train, x_val, y_val)
    shutil.rmtree(backup)


def fit_and_save(model, config, backup, x_train, y_train, x_val, y_val):
    log = backup / "history.csv"
    counter = EpochCounter()
    batches = ShuffledBatches(x_train, y_train, config["batch_size"], config["seed"])
    callbacks = [
        batches.start_at_resumed_epoch(),
        StopOnNonFiniteLoss(),
        keras.callbacks.CSVLogger(str(log), append=True),
        keras.callbacks.BackupAndRestore(str(backup / "state")),
        counter,
    ]
    start = time.perf_counter()
    model.fit(
        batches,
        steps_per_epoch=batches.batches_per_pass,
        epochs=config["epochs"],
        shuffle=False,  # The stream is the order.
        validation_data=(x_val, y_val),
        callbacks=callbacks,
        verbose=1,
    )
    seconds = time.perf_counter() - start
    header, rows = history_rows(log)
    final = dict(zip(header.split(","), rows[-1].split(",")))
    metrics = {
        **describe(),
        "epochs": config["epochs"],
        "epochs_run_by_this_process": counter.epochs,
        "training_images": len(x_train),
        "wall_seconds": round(seconds, 2),
        "images_per_second": round(counter.epochs * len(x_train) / seconds, 1),
        **{key: float(value) for key, value in final.items() if key != "epoch"},
    }
    # All three written before any replaces its old version: a kill in between
    # leaves the old set, which the stage then keeps whole (pipeline.outputs).
    with atomic_paths(MODEL_FILE, HISTORY_FILE, METRICS_FILE) as tmps:
        model.save(tmps[0])
        tmps[1].write_text("\n".join([header, *rows]) + "\n")
        tmps[2].write_text(json_text(metrics))


@keeps_outputs("train")
@one_line_errors
def main():
    train(load_params(), selected_backend())


if __name__ == "__main__":
    main()
