"""Stage `train`: fit bnk.CNN on MNIST -> models/cnn.keras, metrics/train.json.

Each epoch is a fresh shuffle drawn from the seed (`ShuffledBatches`), the same on
every backend. Resumable: a killed run picks up from its last finished epoch (BackupAndRestore,
in a folder keyed by the params and backend so a stale backup is never resumed).
The model file is written atomically.
"""

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import keras

import bnk
from pipeline import dataset, params
from pipeline.atomic import atomic_path, write_json
from pipeline.backend import selected_backend
from pipeline.batches import ShuffledBatches
from pipeline.environment import describe

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


def train(config, backend):
    keras.utils.set_random_seed(config["seed"])
    x_train, y_train, x_val, y_val = dataset.load_training(
        config["validation"], config["limit"]
    )
    model = build_model(config)
    backup = backup_dir(config, backend)
    backup.mkdir(parents=True, exist_ok=True)
    log = backup / "history.csv"
    counter = EpochCounter()
    batches = ShuffledBatches(x_train, y_train, config["batch_size"], config["seed"])
    callbacks = [
        batches.start_at_resumed_epoch(),
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
    with atomic_path(MODEL_FILE) as tmp:
        model.save(tmp)
    with atomic_path(HISTORY_FILE) as tmp:
        tmp.write_text("\n".join([header, *rows]) + "\n")
    write_json(
        METRICS_FILE,
        {
            **describe(),
            "epochs": config["epochs"],
            "epochs_run_by_this_process": counter.epochs,
            "training_images": len(x_train),
            "wall_seconds": round(seconds, 2),
            "images_per_second": round(counter.epochs * len(x_train) / seconds, 1),
            **{key: float(value) for key, value in final.items() if key != "epoch"},
        },
    )
    shutil.rmtree(backup)


def main():
    try:
        backend = selected_backend()
        config = load_params()
    except ValueError as error:
        sys.exit(str(error))
    if not Path(dataset.MNIST_FILE).exists():
        sys.exit(f"{dataset.MNIST_FILE} is missing: run `dvc repro fetch` first.")
    train(config, backend)


if __name__ == "__main__":
    main()
