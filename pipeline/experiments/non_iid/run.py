"""bnk.CNN trained on non-i.i.d. batches, each holding a few classes only (Ioffe, 2017,
section 4.2): BN's moving statistics, averaged over such batches, no longer describe
what the network sees at test time; Batch Renorm trains on what inference computes.

Each normalization is trained twice from the same initial weights, for the same
number of steps of the same batch size: on shuffled (i.i.d.) batches, and on batches
of `classes_per_batch` classes (pipeline.core.batches.FewClassBatches). Then the test
accuracy in inference mode (moving statistics), and for the BN family also with the
statistics of each test batch, from shuffled test batches and from test batches made
as the training batches were.
"""

import time
from pathlib import Path

import numpy as np

import bnk
from pipeline.core import dataset
from pipeline.core.batches import FewClassBatches, ShuffledBatches
from pipeline.core.normalizations import (
    BATCH_STATISTICS,
    INFERENCE_BATCH,
    accuracy,
    accuracy_with_batch_statistics,
    whole_batches,
)
from pipeline.core.runs import compiled_cnn, finite_list
from pipeline.experiments.non_iid.params import Params

SAMPLINGS = ("iid", "non_iid")


def training_stream(
    sampling: str,
    training: tuple[np.ndarray, np.ndarray],
    config: Params,
    seed: int,
) -> ShuffledBatches:
    """The batches of `sampling`: shuffled, or `classes_per_batch` classes each."""
    if sampling == "iid":
        return ShuffledBatches(*training, config.batch_size, seed)
    return FewClassBatches(*training, config.batch_size, config.classes_per_batch, seed)


def few_class_batches(
    data: tuple[np.ndarray, np.ndarray], config: Params, seed: int, part: str
) -> FewClassBatches:
    """FewClassBatches of `data` (`part` names it, "training" or "test"), a
    DataError if it cannot make them."""
    try:
        batches = FewClassBatches(
            *data, config.batch_size, config.classes_per_batch, seed
        )
    except ValueError as error:
        raise dataset.DataError(f"non_iid, {part} images: {error}") from None
    if batches.batches_per_pass == 0:
        raise dataset.DataError(
            f"non_iid: {len(data[0])} {part} images make no batch of "
            f"{config.classes_per_batch} classes with {config.batch_size} images."
        )
    return batches


def few_class_order(
    test: tuple[np.ndarray, np.ndarray], config: Params, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The test images in batches of `batch_size` made as the training batches are
    (one pass: all but a few shares' worth of the images)."""
    order = few_class_batches(test, config, seed, "test").order(0)
    return test[0][order], test[1][order]


def train_cnn(
    normalization: str,
    sampling: str,
    steps: int,
    config: Params,
    seed: int,
    training: tuple[np.ndarray, np.ndarray],
) -> tuple[bnk.CNN, dict]:
    """One run: the trained model and its record (without test accuracies)."""
    model = compiled_cnn(
        normalization,
        config.normalizers,
        config.batch_size,
        config.learning_rate,
        steps,
        seed,
    )
    start = time.perf_counter()
    history = model.fit(
        training_stream(sampling, training, config, seed),
        steps_per_epoch=steps,
        epochs=config.epochs,
        shuffle=False,
        verbose=0,
    )
    return model, {
        "normalization": normalization,
        "sampling": sampling,
        "training_loss": finite_list(history.history["loss"]),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }


def run(config: Params, seed: int, mnist: Path) -> dict:
    """Every normalization on i.i.d. and on few-class batches, on the file `mnist`."""
    x_train, y_train, _, _ = dataset.load_training(mnist, 0, config.limit)
    training = (x_train, y_train)
    # The steps of one few-class pass: the same number of steps for both.
    steps = few_class_batches(training, config, seed, "training").batches_per_pass
    x_test, y_test = dataset.load_test(mnist)
    test = whole_batches(x_test, y_test, config.batch_size, config.test_images)
    few_class_test = few_class_order(test, config, seed)
    runs = []
    for normalization in config.normalizations:
        for sampling in SAMPLINGS:
            model, record = train_cnn(
                normalization, sampling, steps, config, seed, training
            )
            record["test_accuracy"] = accuracy(model, *test, INFERENCE_BATCH)
            batch_family = normalization in BATCH_STATISTICS
            record["batch_statistics_accuracy"] = (
                accuracy_with_batch_statistics(model, *test, config.batch_size)
                if batch_family
                else None
            )
            record["few_class_batch_statistics_accuracy"] = (
                accuracy_with_batch_statistics(
                    model, *few_class_test, config.batch_size
                )
                if batch_family
                else None
            )
            runs.append(record)
            print(
                f"non_iid {normalization} {sampling}: test accuracy "
                f"{record['test_accuracy']:.4f} ({record['wall_seconds']:.0f} s)",
                flush=True,
            )
    return {
        "steps": steps * config.epochs,
        "training_images": len(x_train),
        "test_images": len(test[0]),
        "few_class_test_images": len(few_class_test[0]),
        "runs": runs,
    }
