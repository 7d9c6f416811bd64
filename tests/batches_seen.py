"""What a model is fed by `fit` over `ShuffledBatches`: run as a script, it prints the
batches as JSON, so a test can compare backends in separate processes."""

import json
import sys

import keras
import numpy as np

from pipeline.core.batches import ShuffledBatches

EXAMPLES, BATCH_SIZE, SEED = 10, 4, 7


class Record(keras.layers.Layer):
    """Passes its input through and notes, in training, which examples it saw."""

    def __init__(self, seen, **kwargs):
        super().__init__(**kwargs)
        # A bound method, not the list: Keras would track a copy of a list attribute.
        self.note = seen.append

    def call(self, x, training=None):
        if training:  # Not the symbolic passes that build the model.
            self.note(keras.ops.convert_to_numpy(x)[:, 0].astype(int).tolist())
        return x


def batches_seen(epochs, callbacks=(), initial_model=None):
    """The example indices of every batch `fit` fed, in order, and the model."""
    seen = []
    x = np.arange(EXAMPLES, dtype="float32")[:, None]
    batches = ShuffledBatches(x, np.zeros(EXAMPLES, "float32"), BATCH_SIZE, SEED)
    model = keras.Sequential([keras.Input((1,)), Record(seen), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    model.fit(
        batches,
        steps_per_epoch=batches.batches_per_pass,
        epochs=epochs,
        shuffle=False,  # The stream is the order; Keras's shuffle would not apply.
        callbacks=[batches.start_at_resumed_epoch(), *callbacks],
        verbose=0,
    )
    return seen


if __name__ == "__main__":
    print(json.dumps(batches_seen(int(sys.argv[1]))))
