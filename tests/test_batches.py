"""`ShuffledBatches`: the project's batch order, fresh every pass, equal on every
backend."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from batches_seen import BATCH_SIZE, EXAMPLES, SEED, batches_seen
from conftest import BACKENDS

from pipeline.core.batches import ShuffledBatches

ROOT = Path(__file__).resolve().parents[1]


def passes(seen):
    """The batches `fit` fed, joined into one list of example indices per pass."""
    per_pass = -(-EXAMPLES // BATCH_SIZE)
    return [list(itertools.chain.from_iterable(seen[i : i + per_pass]))
            for i in range(0, len(seen), per_pass)]


def test_every_pass_is_a_new_permutation_of_the_data():
    stream = ShuffledBatches(np.arange(10), np.arange(10), 4, seed=0)
    orders = [np.concatenate([stream[b][0] for b in range(p * 3, p * 3 + 3)])
              for p in range(4)]
    for order in orders:
        assert sorted(order) == list(range(10))  # nothing dropped, nothing repeated
    assert len({tuple(order) for order in orders}) == 4
    assert [len(stream[b][0]) for b in range(3)] == [4, 4, 2]  # the remainder last
    # A pure function of (seed, batch): asking again, or out of order, changes nothing.
    np.testing.assert_array_equal(stream[5][0], stream[5][0])
    same_seed = ShuffledBatches(np.arange(10), np.arange(10), 4, 0)
    other_seed = ShuffledBatches(np.arange(10), np.arange(10), 4, 1)
    np.testing.assert_array_equal(same_seed[7][0], stream[7][0])
    assert not np.array_equal(other_seed[0][0], stream[0][0])


def test_fit_sees_a_fresh_order_every_epoch():
    """Seeded as the stages seed it, which made Keras's own TensorFlow order repeat."""
    keras.utils.set_random_seed(SEED)
    orders = passes(batches_seen(epochs=3))
    assert len(orders) == 3
    for order in orders:
        assert sorted(order) == list(range(EXAMPLES))
    assert orders[0] != orders[1] and orders[1] != orders[2]


def test_first_epochs_are_identical_on_the_next_backend():
    """This backend against the next one (the three suite runs close the circle)."""
    here = keras.backend.backend()
    other = BACKENDS[(BACKENDS.index(here) + 1) % len(BACKENDS)]
    env = {**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests/batches_seen.py"), "2"],
        env=env, capture_output=True, text=True, check=True,
    )
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    ours = batches_seen(epochs=2)
    assert len(ours) == 2 * -(-EXAMPLES // BATCH_SIZE)
    assert ours == theirs


def test_a_resumed_fit_continues_with_the_order_of_its_epoch(tmp_path):
    uninterrupted = passes(batches_seen(epochs=3))

    class CrashAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise RuntimeError("simulated crash")

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        batches_seen(epochs=3, callbacks=[backup, CrashAfterFirstEpoch()])
    resumed = passes(batches_seen(epochs=3, callbacks=[backup]))
    assert resumed == uninterrupted[1:]


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((np.zeros(3), np.zeros(2), 1, 0), "x has 3 examples but y has 2"),
        (
            (np.zeros(3), np.zeros(3), 0, 0),
            "batch_size must be a positive integer, got 0",
        ),
        ((np.zeros(0), np.zeros(0), 2, 0), "no examples"),
    ],
)
def test_bad_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        ShuffledBatches(*arguments)
