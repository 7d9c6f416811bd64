"""What the data-parallel checks share: running a helper script in a process of its
own backend (and, for JAX, its own simulated devices), and, inside such a JAX
script, one `fit` step on one device or under `DataParallel`, saved for the test.

The scripts (tests/replicas_<backend>.py, tests/swap_jax.py) run as
`python tests/<script>.py OUT.npz`, so this module is importable from them as
`data_parallel`, as it is from the tests.
"""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEVICES, BATCH = 4, 8


def run_python(arguments, backend, env=None, simulated_devices=None):
    """Run this interpreter with `arguments` (a script and its arguments, or `-c`
    and code) under `backend`, with this checkout's bnk and tests/ importable; with
    `simulated_devices`, JAX sees that many CPU devices (XLA_FLAGS, set before JAX
    starts)."""
    python_path = [str(HERE.parent), str(HERE), os.environ.get("PYTHONPATH", "")]
    extra = dict(env or {})
    if simulated_devices:
        devices = f"--xla_force_host_platform_device_count={simulated_devices}"
        extra["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {devices}".strip()
    subprocess.run(
        [sys.executable, *map(str, arguments)],
        env={
            **os.environ,
            "KERAS_BACKEND": backend,
            "PYTHONPATH": os.pathsep.join(filter(None, python_path)),
            **extra,
        },
        check=True,
        timeout=600,
    )


def sharded_batch(rng, shape, classes):
    """A batch of BATCH inputs of `shape` and labels below `classes`, in which each
    device's shard has its own offset: statistics of one shard would be far from
    those of the whole batch."""
    x = rng.random((BATCH, *shape)).astype("float32")
    offsets = np.repeat(np.arange(DEVICES), BATCH // DEVICES)
    x += offsets.reshape(-1, *[1] * len(shape))
    return x, rng.integers(0, classes, BATCH)


def one_fit_step(make_model, x, y, distribution=None):
    """The weights after one SGD step of `fit` on the whole batch, of the model
    `make_model()` builds (inside `distribution`'s scope, if given)."""
    import keras

    scope = distribution.scope() if distribution else contextlib.nullcontext()
    with scope:
        model = make_model()
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    if distribution:  # the weights live on every device
        assert len(model.weights[0].value.sharding.device_set) == DEVICES
    return model.get_weights()


def save_weights(out, names, results):
    """`results` ({run: weights}) in `out`, weight i of a run as `<run>.<i>`, with
    the weights' `names`."""
    np.savez(
        out,
        names=names,
        **{
            f"{run}.{i}": weight
            for run, weights in results.items()
            for i, weight in enumerate(weights)
        },
    )
