"""One `fit` step of a Keras model converted by `bnk.replace_batch_norm(...,
synchronized=True)`, on one device and under `DataParallel` on 4 (JAX).

Run by tests/test_swap.py as `python tests/swap_jax.py OUT.npz`, with
KERAS_BACKEND=jax and XLA_FLAGS=--xla_force_host_platform_device_count=4 set before
JAX starts. Writes the weights' names and values (moving statistics included)
before the step and after it: on one device with the global batch, under
DataParallel, and, for contrast, on one device with ghost batches of one device's
share (statistics per device, what unsynchronized replicas would compute).
"""

import contextlib
import sys

import jax
import keras
import numpy as np

import bnk

DEVICES, BATCH = 4, 8
L = keras.layers


def keras_model():
    """Conv -> BatchNormalization -> ReLU twice, the second block a nested
    Sequential, then a dense head: Keras's layers only."""
    block = keras.Sequential(
        [L.Conv2D(6, 3, padding="same", use_bias=False, name="block_conv"),
         L.BatchNormalization(momentum=0.5, name="block_bn"), L.ReLU()],
        name="block",
    )
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = L.ReLU()(L.BatchNormalization(momentum=0.5, name="bn")(x))
    x = L.GlobalAveragePooling2D()(block(x))
    return keras.Model(inputs, L.Dense(3, name="head")(x))


def one_step(original, x, y, distribution=None, **overrides):
    scope = distribution.scope() if distribution else contextlib.nullcontext()
    with scope:
        model = bnk.replace_batch_norm(original, **overrides)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    if distribution:  # the weights live on every device
        assert len(model.weights[0].value.sharding.device_set) == DEVICES
    return model.get_weights()


def main(out):
    assert len(jax.devices()) == DEVICES, jax.devices()
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    x = rng.random((BATCH, 8, 8, 3)).astype("float32")
    # Each device's shard of the batch gets its own offset: statistics of one
    # shard would be far from those of the whole batch.
    x += np.repeat(np.arange(DEVICES), BATCH // DEVICES)[:, None, None, None]
    y = rng.integers(0, 3, BATCH)
    original = keras_model()
    results = {
        "initial": original.get_weights(),
        "one_device": one_step(original, x, y, synchronized=True),
        "data_parallel": one_step(
            original, x, y, keras.distribution.DataParallel(devices=jax.devices()),
            synchronized=True,
        ),
        "per_device": one_step(original, x, y, virtual_batch_size=BATCH // DEVICES),
    }
    np.savez(
        out,
        names=[w.path for w in original.weights],
        **{
            f"{name}.{i}": w
            for name, weights in results.items()
            for i, w in enumerate(weights)
        },
    )


if __name__ == "__main__":
    main(sys.argv[1])
