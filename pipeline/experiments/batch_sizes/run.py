"""Test accuracy of bnk.CNN against batch size, for each normalization (Wu & He, 2018,
Figure 1: BN's error climbs at small batches, GroupNorm's stays flat).

Every run trains the CNN from the same initial weights on the same stream of training
images (the project's seeded shuffle), at each batch size for `epochs` passes (equal
epochs, Wu & He's comparison) and for as many steps as the largest batch size takes
in them (equal steps), with Adam at a learning rate scaled with the square root of
the batch size (Hoffer et al., 2017). Wu & He
scale SGD's rate linearly (Goyal et al., 2017); with the seed's small initial weights
SGD leaves the CNN without normalization untrained, and a linearly scaled rate made
every variant diverge at the largest batches in a short trial. Then the test
accuracy in inference mode (for the BN family: with the moving statistics), and for
the BN family also with the statistics of each test batch of the training batch size
(the train/inference gap), and with population statistics recomputed after training
by `bnk.recompute_statistics` over training batches of the training size (how much
of the gap is the moving averages' fault).
"""

import math
import time
from pathlib import Path

import numpy as np

import bnk
from pipeline.core import dataset
from pipeline.core.normalizations import (
    BATCH_STATISTICS,
    INFERENCE_BATCH,
    accuracy,
    accuracy_with_batch_statistics,
    ghost_batch_size,
    whole_batches,
)
from pipeline.core.runs import (
    MOMENTUM,
    compiled_cnn,
    finite_list,
    statistics_batches,
    training_batches,
)
from pipeline.experiments.batch_sizes.params import Params


def scaled_learning_rate(config: Params, batch_size: int) -> float:
    """`learning_rate` at `reference_batch_size`, scaled with the square root of the
    batch size."""
    return config.learning_rate * math.sqrt(batch_size / config.reference_batch_size)


def train_cnn(
    normalization: str,
    batch_size: int,
    steps: int,
    config: Params,
    seed: int,
    training: tuple[np.ndarray, np.ndarray],
) -> tuple[bnk.CNN, dict]:
    """Train one CNN for `steps` steps; return it and its record (without test
    accuracies)."""
    learning_rate = scaled_learning_rate(config, batch_size)
    batches = training_batches(*training, batch_size, seed)
    model = compiled_cnn(
        normalization, config.normalizers, batch_size, learning_rate, steps, seed
    )
    start = time.perf_counter()
    history = model.fit(
        batches, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0
    )
    record = {
        "normalization": normalization,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "steps": steps,
        "epochs": steps * batch_size / len(training[0]),
        "training_loss": finite_list(history.history["loss"]),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    if normalization == "ghost_batch_norm":
        record["ghost_batch_size"] = ghost_batch_size(config.normalizers, batch_size)
    return model, record


def accuracies(
    model: bnk.CNN,
    normalization: str,
    batch_size: int,
    test: tuple[np.ndarray, np.ndarray],
    population: list[tuple[np.ndarray, np.ndarray]],
) -> dict[str, float | None]:
    """Inference-mode accuracy; for the BN family also with batch statistics, and
    with the population statistics recomputed over the batches `population` after
    training (None for the others, which have no moving statistics)."""
    result: dict[str, float | None] = {
        "test_accuracy": accuracy(model, *test, INFERENCE_BATCH),
        "batch_statistics_accuracy": None,
        "population_accuracy": None,
    }
    if normalization in BATCH_STATISTICS:
        result["batch_statistics_accuracy"] = accuracy_with_batch_statistics(
            model, *test, batch_size
        )
        bnk.recompute_statistics(model, population)
        result["population_accuracy"] = accuracy(model, *test, INFERENCE_BATCH)
    return result


#: Wu & He compare batch sizes at an equal number of epochs (the same images seen);
#: at an equal number of steps, each batch size takes as many steps as the largest
#: takes in `epochs` passes (so the smaller ones see fewer images).
BUDGETS = ("epochs", "steps")


def runs_to_make(config: Params) -> list[tuple[str, int, str]]:
    """(normalization, batch size, budget) of every run: at the largest batch size
    both budgets are the same run, made once (as budget "epochs")."""
    largest = max(config.batch_sizes)
    return [
        (normalization, batch_size, budget)
        for normalization in config.normalizations
        for batch_size in sorted(config.batch_sizes)
        for budget in BUDGETS
        if not (budget == "steps" and batch_size == largest)
    ]


def budget_steps(budget: str, batch_size: int, config: Params, images: int) -> int:
    """Training steps of a run at `batch_size` under `budget`, on `images` images
    (a multiple of every batch size)."""
    size = batch_size if budget == "epochs" else max(config.batch_sizes)
    return images // size * config.epochs


def run(config: Params, seed: int, mnist: Path) -> dict:
    """Every normalization at every batch size on the MNIST file `mnist`."""
    largest = max(config.batch_sizes)
    # A multiple of every batch size (powers of two: of the largest), so every run
    # sees the same images in full batches.
    common = math.lcm(*config.batch_sizes)
    x_train, y_train, _, _ = dataset.load_training(mnist, 0, config.limit)
    training = whole_batches(x_train, y_train, common)
    test = whole_batches(*dataset.load_test(mnist), largest, config.test_images)
    if len(training[0]) == 0:
        raise dataset.DataError(
            f"batch_sizes: {len(x_train)} training images are fewer than {common}, "
            "the smallest number that every batch size divides."
        )
    runs = []
    for normalization, batch_size, budget in runs_to_make(config):
        steps = budget_steps(budget, batch_size, config, len(training[0]))
        model, record = train_cnn(
            normalization, batch_size, steps, config, seed, training
        )
        record["budget"] = budget
        population = statistics_batches(
            *training, batch_size, config.statistics_batches, seed
        )
        record.update(accuracies(model, normalization, batch_size, test, population))
        record["statistics_batches"] = len(population)
        runs.append(record)
        print(
            f"batch_sizes {normalization} batch {batch_size}, equal {budget}: test "
            f"accuracy {record['test_accuracy']:.4f} ({record['wall_seconds']:.0f} s)",
            flush=True,
        )
    return {
        "momentum": MOMENTUM,
        "training_images": len(training[0]),
        "test_images": len(test[0]),
        "runs": runs,
    }
