"""Stage `train`: fit bnk.CNN on MNIST; the model, its headline metrics, its history.

Each epoch is a fresh shuffle drawn from the seed (`ShuffledBatches`), the same on
every backend. Resumable: a killed run picks up from its last finished epoch
(BackupAndRestore, in a folder keyed by the params and backend so a stale backup is
never resumed).
The folder is locked while a trainer uses it: the trainer dies with a killed
`dvc repro` (pipeline.core.outputs), and should one outlive it, a second trainer refuses
to start instead of sharing the folder. A NaN loss stops training before anything
is written. The outputs are written together, atomically; a failed run puts back
the previous ones. Besides the headline metrics, the run's record (environment,
images, time) goes to its own file, which the reports read.

With `statistics: recomputed`, the moving averages are replaced after training by
population statistics over `statistics_batches` training batches
(bnk.recompute_statistics); the per-epoch validation scores are the moving averages'.
The metrics also say whether TensorFlow's oneDNN was on (`onednn`, 1 or 0; absent
where TensorFlow kept its own default), the record who chose it and the CPU's flags
that bear on it (pipeline.core.environment).
"""

import argparse
import hashlib
import json
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import filelock
import keras
import numpy as np

import bnk
from bnk.cnn import INPUT_SHAPE
from pipeline.core import dataset, params
from pipeline.core.atomic import atomic_paths, json_text
from pipeline.core.backends import selected_backend
from pipeline.core.batches import ShuffledBatches
from pipeline.core.cli import stage_paths
from pipeline.core.devices import (
    AverageLogsOverProcesses,
    Replica,
    average_gradients_over_processes,
    check_batches_split,
    data_parallel,
    device_names,
)
from pipeline.core.environment import (
    OneDnn,
    code_digest,
    cpu_flags,
    describe,
    onednn_setting,
)
from pipeline.core.errors import PipelineError, one_line_errors
from pipeline.core.models import compile_classifier, synchronized_batch_norm
from pipeline.core.outputs import keeps_outputs
from pipeline.core.runs import statistics_batches

# What `dvc metrics show` lists: the numbers a reader compares across runs.
HEADLINE = ("accuracy", "loss", "val_accuracy", "val_loss", "images_per_second")


def headline(measured: dict[str, float], onednn: OneDnn) -> dict[str, float]:
    """HEADLINE's numbers, and `onednn`: 1 if TensorFlow's oneDNN was on, 0 if off
    (left out where TensorFlow kept its own default, which the pipeline cannot
    know)."""
    numbers = {key: measured[key] for key in HEADLINE}
    if onednn["enabled"] is not None:
        numbers["onednn"] = int(onednn["enabled"])
    return numbers


def build_model(config: params.Train) -> bnk.CNN:
    model = bnk.CNN(
        normalization=synchronized_batch_norm if config.devices > 1 else bnk.BatchNorm,
        momentum=config.momentum,
        epsilon=config.epsilon,
        dropout=config.dropout,
    )
    model.build((None, *INPUT_SHAPE))  # BackupAndRestore restores into built models
    return compile_classifier(
        model, keras.optimizers.Adam(config.learning_rate), metrics=["accuracy"]
    )


def backup_dir(root: Path, config: params.Train, seed: int, backend: str) -> Path:
    # The code too: a checkpoint of a run killed before a change of bnk or the
    # pipeline must not be resumed by the changed code.
    key = json.dumps(
        {
            "params": config.model_dump(),
            "seed": seed,
            "backend": backend,
            "code": code_digest(),
        },
        sort_keys=True,
    )
    return Path(root) / f"train-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


class TrainingDiverged(PipelineError):
    """The loss became NaN or infinite."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise at the end of an epoch whose loss is NaN or infinite (Keras's
    TerminateOnNaN would end `fit` normally, and the diverged model would be saved).

    Once per epoch, not per batch: reading the loss every batch would cost a host
    round trip each step. The epoch's loss is the mean over its batches, so one
    diverged batch shows. Listed before the callbacks that log and back up the epoch.
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(
                f"training diverged: loss is {float(loss)} in epoch {epoch + 1}; "
                "the model and the metrics were not written (lower "
                "`train.learning_rate` in params.yaml)."
            )


def locked(backup: Path) -> filelock.FileLock:
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


def history_rows(csv_path: Path) -> tuple[str, list[str]]:
    """The per-epoch log, one row per epoch (a resumed epoch's last row wins)."""
    lines = csv_path.read_text().splitlines()
    header, rows = lines[0], {}
    for line in lines[1:]:
        rows[int(line.split(",")[0])] = line
    return header, [rows[epoch] for epoch in sorted(rows)]


class EpochCounter(keras.callbacks.Callback):
    """Counts the epochs this process ran (fewer than asked for after a resume)."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs += 1


def train(paths: argparse.Namespace, config: params.Train, seed: int) -> None:
    # First: on JAX and PyTorch it may restart the process, on TensorFlow it must
    # come before the runtime starts.
    with data_parallel(config.devices) as replica:
        keras.utils.set_random_seed(seed)
        x_train, y_train, x_val, y_val = dataset.training_split(
            paths.mnist, "train", config
        )
        check_batches_split(len(x_train), config.batch_size, config.devices)
        backup = backup_dir(paths.checkpoints, config, seed, selected_backend())
        if replica.processes > 1:  # each process backs up its own state
            backup = backup.with_name(f"{backup.name}-process{replica.rank}")
        backup.mkdir(parents=True, exist_ok=True)
        with locked(backup):
            model = build_model(config)
            if replica.processes > 1:
                average_gradients_over_processes(model)
            fit_and_save(
                model,
                paths,
                config,
                seed,
                backup,
                (x_train, y_train),
                (x_val, y_val),
                replica,
            )
    shutil.rmtree(backup)


def fit_and_save(
    model: bnk.CNN,
    paths: argparse.Namespace,
    config: params.Train,
    seed: int,
    backup: Path,
    training: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    replica: Replica,
) -> None:
    log = backup / "history.csv"
    counter = EpochCounter()
    batches = ShuffledBatches(*training, config.batch_size, seed, replica.share)
    callbacks = [
        *([AverageLogsOverProcesses()] if replica.processes > 1 else []),
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
        epochs=config.epochs,
        shuffle=False,  # The stream is the order.
        validation_data=validation,
        callbacks=callbacks,
        verbose=1 if replica.writes_outputs else 0,
    )
    seconds = time.perf_counter() - start
    if config.statistics == "recomputed":
        bnk.recompute_statistics(
            model,
            statistics_batches(
                *training, config.batch_size, config.statistics_batches, seed
            ),
        )
    if not replica.writes_outputs:
        return
    header, rows = history_rows(log)
    final = dict(zip(header.split(","), rows[-1].split(","), strict=True))
    images = len(training[0])
    measured = {
        "images_per_second": round(counter.epochs * images / seconds, 1),
        **{key: float(value) for key, value in final.items() if key != "epoch"},
    }
    onednn = onednn_setting()
    run = {
        **describe(),
        "cpu_flags": cpu_flags(),
        "onednn": onednn,
        "epochs": config.epochs,
        "epochs_run_by_this_process": counter.epochs,
        "devices": device_names(config.devices),
        "training_images": images,
        "wall_seconds": round(seconds, 2),
        **measured,
    }
    # All four written before any replaces its old version: a kill in between
    # leaves the old set, which the stage then keeps whole (pipeline.core.outputs).
    outputs = (paths.model, paths.history, paths.metrics, paths.run)
    with atomic_paths(*outputs) as (model_file, history, metrics, run_file):
        model.save(model_file)
        history.write_text("\n".join([header, *rows]) + "\n")
        metrics.write_text(json_text(headline(measured, onednn)))
        run_file.write_text(json_text(run))


@keeps_outputs("train")
@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(
        __doc__, argv, "mnist", "model", "metrics", "history", "run", "checkpoints"
    )
    config = params.load()
    train(paths, config.train, config.seed)


if __name__ == "__main__":
    main()
