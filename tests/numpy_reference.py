"""An independent NumPy batch normalization, straight from Ioffe & Szegedy (2015).

Algorithm 1 (training): per channel, the mini-batch mean and biased variance,
normalize with epsilon, scale by gamma and shift by beta. Computed in float64.
"""

import numpy as np


def batch_norm_train(x, gamma, beta, epsilon, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    axes = tuple(a for a in range(x.ndim) if a != axis % x.ndim)
    mu = x.mean(axis=axes, keepdims=True)
    sigma2 = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    x_hat = (x - mu) / np.sqrt(sigma2 + epsilon)
    shape = [1] * x.ndim
    shape[axis] = -1
    y = np.reshape(gamma, shape) * x_hat + np.reshape(beta, shape)
    return y, mu.reshape(-1), sigma2.reshape(-1)


def batch_norm_infer(x, gamma, beta, mean, variance, epsilon, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    shape = [1] * x.ndim
    shape[axis] = -1

    def channel(v):
        return np.reshape(np.asarray(v, dtype=np.float64), shape)

    return channel(gamma) * (x - channel(mean)) / np.sqrt(
        channel(variance) + epsilon
    ) + channel(beta)


def ghost_batch_norm_train(x, gamma, beta, epsilon, size, axis=-1):
    """Algorithm 1 on each sub-batch of `size` consecutive examples (ghost batches).

    Returns the outputs and the mean over the sub-batches of their means and of their
    biased variances, which the moving averages follow.
    """
    outputs, means, variances = zip(
        *(
            batch_norm_train(x[start:start + size], gamma, beta, epsilon, axis)
            for start in range(0, len(x), size)
        ),
        strict=True,
    )
    return np.concatenate(outputs), np.mean(means, axis=0), np.mean(variances, axis=0)
