"""The order in which training sees its examples, owned by the project.

Keras's own `shuffle=True` draws the order from the backend's generator, so the same
seed gives each backend different batches, and TensorFlow, once seeded, repeats one
order in every epoch. Here the order is NumPy's: pass `p` over the data visits the
examples in `numpy.random.default_rng([seed, p]).permutation(n)`, on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np

Batch = tuple[np.ndarray, np.ndarray]


class ShuffledBatches(keras.utils.PyDataset):
    """An endless stream of `(x, y)` batches, freshly shuffled on every pass.

    Batch `i` of the stream is batch `i % batches_per_pass` of pass
    `i // batches_per_pass`, a pure function of `(seed, i)`, so what Keras prefetches,
    or asks for twice, never changes the order. Each pass holds every example exactly
    once; when the batch size does not divide the data, the last batch of a pass
    holds the remainder.

    Give `fit` the stream with `steps_per_epoch` (one pass: `batches_per_pass`);
    a resumed `fit` must start its stream at the resumed epoch: add
    `start_at_resumed_epoch()` to its callbacks.

    Args:
        x: inputs, a NumPy array with examples on the first axis.
        y: targets, with as many examples as `x`.
        batch_size: examples per batch, a positive integer.
        seed: the order's seed; the same seed gives the same batches everywhere.
        share: maps each batch to the part of it this process trains on (one of
            several processes that train together, each on its share of every
            batch); by default the whole batch.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        seed: int,
        share: Callable[[Batch], Batch] = lambda batch: batch,
    ) -> None:
        super().__init__()
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}.")
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or batch_size < 1
        ):
            raise ValueError(
                f"batch_size must be a positive integer, got {batch_size!r}."
            )
        if len(x) == 0:
            raise ValueError("There are no examples to draw batches from.")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.seed = seed
        self.process_share = share
        self.batches_per_pass = math.ceil(len(x) / batch_size)
        self.first_batch = 0
        self._pass, self._order = None, None

    @property
    def num_batches(self) -> None:
        return None  # Endless: `steps_per_epoch` says how much of it fit takes.

    def order(self, pass_index: int) -> np.ndarray:
        """The example indices in the order pass `pass_index` visits them."""
        if pass_index != self._pass:
            rng = np.random.default_rng([self.seed, pass_index])
            self._pass, self._order = pass_index, rng.permutation(len(self.x))
        return self._order

    def indices(self, batch: int) -> np.ndarray:
        """The example indices of batch `batch` of the stream."""
        pass_index, position = divmod(self.first_batch + batch, self.batches_per_pass)
        start = position * self.batch_size
        return self.order(pass_index)[start : start + self.batch_size]

    def __getitem__(self, batch: int) -> Batch:
        picked = self.indices(batch)
        return self.process_share((self.x[picked], self.y[picked]))

    def start_at_resumed_epoch(self) -> keras.callbacks.Callback:
        """A callback that starts the stream at the epoch `fit` starts at.

        `BackupAndRestore` resumes `fit` at a later epoch, but Keras asks an endless
        stream for its batches from 0 again: this sets the stream's offset so the
        resumed epoch gets the order it would have had. Needs epochs of one pass.
        """
        return _StartAtEpoch(self)


class _StartAtEpoch(keras.callbacks.Callback):
    def __init__(self, batches: ShuffledBatches) -> None:
        super().__init__()
        self.batches = batches
        self.started = False

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if not self.started:
            self.batches.first_batch = epoch * self.batches.batches_per_pass
            self.started = True


class FewClassBatches(ShuffledBatches):
    """Like ShuffledBatches, but each batch holds `classes_per_batch` classes only,
    `batch_size / classes_per_batch` examples of each: non-i.i.d. batches.

    Pass `p` draws from `numpy.random.default_rng([seed, p])`: a random order of the
    classes, each class's examples shuffled and cut into shares of a batch (a class's
    remainder short of a share is left out of that pass); the shares laid end to end
    class by class, and share `j` joined with shares `j + m`, `j + 2m`, ... (`m` the
    number of batches), which lie in other classes because no class fills `m` shares;
    then the batches in a random order. So every batch mixes that many classes, each
    pass visits each example at most once, and all but a few shares' worth of them.

    Args:
        x: inputs, a NumPy array with examples on the first axis.
        y: integer class labels, one per example.
        batch_size: examples per batch, a multiple of `classes_per_batch`.
        classes_per_batch: classes in every batch, at least 2.
        seed: the order's seed; the same seed gives the same batches everywhere.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        classes_per_batch: int,
        seed: int,
    ) -> None:
        super().__init__(x, y, batch_size, seed)
        if classes_per_batch < 2 or batch_size % classes_per_batch:
            raise ValueError(
                f"batch_size={batch_size} must be a multiple of classes_per_batch="
                f"{classes_per_batch}, which must be at least 2."
            )
        self.classes_per_batch = classes_per_batch
        self.share = batch_size // classes_per_batch
        self.members = [np.flatnonzero(y == label) for label in np.unique(y)]
        shares = [len(members) // self.share for members in self.members]
        self.batches_per_pass = sum(shares) // classes_per_batch
        if max(shares) > self.batches_per_pass:
            raise ValueError(
                f"No {classes_per_batch} different classes for every batch: one "
                f"class fills {max(shares)} of the {sum(shares)} shares of "
                f"{self.share} examples, more than 1/{classes_per_batch} of them."
            )

    def order(self, pass_index: int) -> np.ndarray:
        if pass_index != self._pass:
            rng = np.random.default_rng([self.seed, pass_index])
            shares = []
            for label in rng.permutation(len(self.members)):
                members = rng.permutation(self.members[label])
                whole = len(members) // self.share * self.share
                shares.extend(members[:whole].reshape(-1, self.share))
            batches = self.batches_per_pass
            kept = np.array(shares[: batches * self.classes_per_batch])
            # Row j: shares j, j + m, j + 2m, ...: different classes.
            joined = kept.reshape(self.classes_per_batch, batches, self.share)
            joined = joined.transpose(1, 0, 2).reshape(batches, self.batch_size)
            self._pass = pass_index
            self._order = joined[rng.permutation(batches)].reshape(-1)
        return self._order
