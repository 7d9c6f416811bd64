"""An independent NumPy batch normalization, straight from the papers, in float64.

Ioffe & Szegedy (2015), Algorithm 1 (training): per channel, the mini-batch mean and
biased variance, normalize with epsilon, scale by gamma and shift by beta.
Ioffe (2017), "Batch Renormalization", Algorithm 1: the same, corrected by r and d
towards the moving mean and standard deviation, and its back-propagation.
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


def _channel(v, ndim, axis):
    shape = [1] * ndim
    shape[axis] = -1
    return np.reshape(np.asarray(v, dtype=np.float64), shape)


def batch_renorm_train(x, gamma, beta, mu, sigma, epsilon, clipping=None, axis=-1):
    """Ioffe (2017), Algorithm 1, one training step.

    `mu` and `sigma` are the moving mean and standard deviation; `clipping` maps
    "rmax", "rmin", "dmax" to their bounds (missing: unbounded). Returns the output
    y, the batch mean mu_B and standard deviation sigma_B (the paper's
    sqrt(sigma_B^2 + epsilon)), and r and d, each per channel.
    """
    clipping = clipping or {}
    x = np.asarray(x, dtype=np.float64)
    axes = tuple(a for a in range(x.ndim) if a != axis % x.ndim)
    mu_b = x.mean(axis=axes, keepdims=True)
    sigma_b = np.sqrt(((x - mu_b) ** 2).mean(axis=axes, keepdims=True) + epsilon)
    mu, sigma = _channel(mu, x.ndim, axis), _channel(sigma, x.ndim, axis)
    r = np.clip(sigma_b / sigma, clipping.get("rmin", 0.0),
                clipping.get("rmax", np.inf))
    dmax = clipping.get("dmax", np.inf)
    d = np.clip((mu_b - mu) / sigma, -dmax, dmax)
    x_hat = (x - mu_b) / sigma_b * r + d
    y = _channel(gamma, x.ndim, axis) * x_hat + _channel(beta, x.ndim, axis)
    return y, *(v.reshape(-1) for v in (mu_b, sigma_b, r, d))


def batch_renorm_input_gradient(x, dy, gamma, r, epsilon, axis=-1):
    """dloss/dx of Algorithm 1 given dloss/dy, r and d held constant (the paper's
    back-propagation formulas)."""
    x = np.asarray(x, dtype=np.float64)
    axes = tuple(a for a in range(x.ndim) if a != axis % x.ndim)
    m = x.size / x.shape[axis]
    mu_b = x.mean(axis=axes, keepdims=True)
    sigma_b = np.sqrt(((x - mu_b) ** 2).mean(axis=axes, keepdims=True) + epsilon)
    r = _channel(r, x.ndim, axis)
    dx_hat = dy * _channel(gamma, x.ndim, axis)
    dsigma_b = np.sum(dx_hat * (x - mu_b) * (-r / sigma_b**2), axis=axes,
                      keepdims=True)
    dmu_b = np.sum(dx_hat * (-r / sigma_b), axis=axes, keepdims=True)
    return dx_hat * r / sigma_b + dsigma_b * (x - mu_b) / (m * sigma_b) + dmu_b / m


def moving_update(average, batch_value, momentum):
    """The paper's update mu := mu + alpha (mu_B - mu), with alpha = 1 - momentum."""
    return average + (1.0 - momentum) * (np.asarray(batch_value) - average)


def population_statistics(batch_means, batch_variances, sizes):
    """Ioffe & Szegedy (2015), Algorithm 2: E[x] = E_B[mu_B] and
    Var[x] = m / (m - 1) E_B[sigma_B^2], each batch with its own size m."""
    m = np.asarray(sizes, dtype=np.float64)[:, None]
    return (
        np.mean(batch_means, axis=0),
        np.mean(m / (m - 1) * np.asarray(batch_variances), axis=0),
    )
