"""One `fit` step of `bnk.CNN` on one device and under `DataParallel` on 4 (JAX).

Run by tests/test_synchronized.py as `python tests/replicas_jax.py OUT.npz`, with
KERAS_BACKEND=jax and XLA_FLAGS=--xla_force_host_platform_device_count=4 set before
JAX starts. Writes the weights' names and values (moving statistics included) before
the step and after it: on one device, then under DataParallel with synchronized=True
and with synchronized=False.
"""

import contextlib
import sys

import jax
import keras
import numpy as np

import bnk

DEVICES, BATCH = 4, 8


def synchronized_batch_norm(**kwargs):
    return bnk.BatchNorm(synchronized=True, **kwargs)


def one_step(normalization, initial, x, y, distribution=None):
    scope = distribution.scope() if distribution else contextlib.nullcontext()
    with scope:
        model = bnk.CNN(normalization=normalization, dropout=0.0)
        model.build((None, 28, 28, 1))
        model.set_weights(initial)
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
    x = rng.random((BATCH, 28, 28, 1)).astype("float32")
    # Each device's shard of the batch gets its own offset: statistics of one shard
    # would be far from those of the whole batch.
    x += np.repeat(np.arange(DEVICES), BATCH // DEVICES)[:, None, None, None]
    y = rng.integers(0, 10, BATCH)
    model = bnk.CNN(dropout=0.0)
    model.build((None, 28, 28, 1))
    initial = model.get_weights()
    results = {"initial": initial, "one_device": one_step(bnk.BatchNorm, initial, x, y)}
    distribution = keras.distribution.DataParallel(devices=jax.devices())
    for name, normalization in [
        ("synchronized", synchronized_batch_norm),
        ("unsynchronized", bnk.BatchNorm),
    ]:
        results[name] = one_step(normalization, initial, x, y, distribution)
    np.savez(
        out,
        names=[w.path for w in model.weights],
        **{
            f"{name}.{i}": w
            for name, weights in results.items()
            for i, w in enumerate(weights)
        },
    )


if __name__ == "__main__":
    main(sys.argv[1])
