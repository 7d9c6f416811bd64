"""The synchronized layer in a gloo process group of two against one process (PyTorch).

Run by tests/test_synchronized.py as
`python tests/replicas_torch.py OUT MEAN0,MEAN1 [MEAN0,MEAN1 ...]` with
KERAS_BACKEND=torch. For each pair of means, the batch is two shards of 4 examples, of
these means and standard deviation 1. Writes OUT/MEAN0,MEAN1/one_process.npz (the
whole batch in one process without a process group; with the inputs) and
OUT/MEAN0,MEAN1/rank0.npz and rank1.npz (each of two processes in a gloo group its
shard): the training-mode outputs, the
gradients of a fixed weighted sum of them with respect to the inputs, gamma and beta,
and the moving statistics after the pass (momentum 0: the batch statistics).
"""

import socket
import sys
from pathlib import Path

import keras
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import bnk

SHARD, WORLD = 4, 2


def data(means):
    """The inputs, the weights of the outputs in the loss, gamma and beta."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(mean, 1.0, (SHARD, 3, 3, 2)) for mean in means])
    w = rng.normal(size=x.shape)
    gamma, beta = rng.uniform(0.5, 1.5, 2), rng.normal(0.0, 0.5, 2)
    return [a.astype("float32") for a in (x, w, gamma, beta)]


def run(x, w, gamma, beta, path):
    # Momentum 0: the moving statistics are the batch statistics.
    layer = bnk.BatchNorm(momentum=0.0, synchronized=True)
    layer.build(x.shape)
    layer.set_weights([gamma, beta, np.zeros(2), np.ones(2)])
    inputs = keras.ops.convert_to_tensor(x).requires_grad_()
    outputs = layer(inputs, training=True)
    (outputs * keras.ops.convert_to_tensor(w)).sum().backward()
    numpy = keras.ops.convert_to_numpy
    np.savez(
        path,
        inputs=x,
        gamma=gamma,
        beta=beta,
        outputs=numpy(outputs.detach()),
        input_gradient=numpy(inputs.grad),
        gamma_gradient=numpy(layer.gamma.value.grad),
        beta_gradient=numpy(layer.beta.value.grad),
        moving_mean=numpy(layer.moving_mean),
        moving_variance=numpy(layer.moving_variance),
    )


def worker(rank, out, port, cases):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        for case in cases:
            x, w, gamma, beta = data(case_means(case))
            shard = slice(rank * SHARD, (rank + 1) * SHARD)
            run(x[shard], w[shard], gamma, beta, out / case / f"rank{rank}.npz")
    finally:
        dist.destroy_process_group()


def case_means(case):
    return [float(mean) for mean in case.split(",")]


def main(out, cases):
    for case in cases:
        (out / case).mkdir()
        run(*data(case_means(case)), out / case / "one_process.npz")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(worker, args=(out, port, cases), nprocs=WORLD)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
