"""One `fit` step of a Keras model converted by `bnk.replace_batch_norm(...,
synchronized=True)`, on one device and under `DataParallel` on 4 (JAX).

Run by tests/test_swap.py as `python tests/swap_jax.py OUT.npz` with 4 simulated JAX
devices (tests/data_parallel.py). Writes the weights' names and values (moving
statistics included) before the step and after it: on one device with the global
batch, under DataParallel, and, for contrast, on one device with ghost batches of one
device's share (statistics per device, what unsynchronized replicas would compute).
"""

import sys

import jax
import keras
import numpy as np
from data_parallel import BATCH, DEVICES, one_fit_step, save_weights, sharded_batch

import bnk

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


def main(out):
    assert len(jax.devices()) == DEVICES, jax.devices()
    keras.utils.set_random_seed(7)
    x, y = sharded_batch(np.random.default_rng(7), (8, 8, 3), classes=3)
    original = keras_model()

    def converted(**overrides):
        return lambda: bnk.replace_batch_norm(original, **overrides)

    distribution = keras.distribution.DataParallel(devices=jax.devices())
    results = {
        "initial": original.get_weights(),
        "one_device": one_fit_step(converted(synchronized=True), x, y),
        "data_parallel": one_fit_step(
            converted(synchronized=True), x, y, distribution
        ),
        "per_device": one_fit_step(
            converted(virtual_batch_size=BATCH // DEVICES), x, y
        ),
    }
    save_weights(out, [w.path for w in original.weights], results)


if __name__ == "__main__":
    main(sys.argv[1])
