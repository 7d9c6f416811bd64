"""One `fit` step of `bnk.CNN` on one device and under `DataParallel` on 4 (JAX).

Run by tests/test_synchronized.py as `python tests/replicas_jax.py OUT.npz` with 4
simulated JAX devices (tests/data_parallel.py). Writes the weights' names and values
(moving statistics included) before the step and after it: on one device, then under
DataParallel with synchronized=True and with synchronized=False.
"""

import functools
import sys

import jax
import keras
import numpy as np
from data_parallel import DEVICES, one_fit_step, save_weights, sharded_batch

import bnk


def main(out):
    assert len(jax.devices()) == DEVICES, jax.devices()
    keras.utils.set_random_seed(7)
    x, y = sharded_batch(np.random.default_rng(7), (28, 28, 1), classes=10)
    model = bnk.CNN(dropout=0.0)
    model.build((None, 28, 28, 1))
    initial = model.get_weights()

    def cnn(**options):
        def make_model():
            model = bnk.CNN(
                normalization=functools.partial(bnk.BatchNorm, **options), dropout=0.0
            )
            model.build((None, 28, 28, 1))
            model.set_weights(initial)
            return model

        return make_model

    distribution = keras.distribution.DataParallel(devices=jax.devices())
    results = {
        "initial": initial,
        "one_device": one_fit_step(cnn(), x, y),
        "synchronized": one_fit_step(cnn(synchronized=True), x, y, distribution),
        "unsynchronized": one_fit_step(cnn(), x, y, distribution),
    }
    save_weights(out, [w.path for w in model.weights], results)


if __name__ == "__main__":
    main(sys.argv[1])
