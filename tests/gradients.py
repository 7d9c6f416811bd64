"""The gradients of a layer in training mode, on whichever backend is active.

`vjp(layer, x, dy, mask)` returns the gradient of ``sum(layer(x) * dy)`` with
respect to ``x`` and to each trainable weight, as float64 NumPy arrays: what
back-propagation hands the layer before and the optimizer.
"""

import keras
import numpy as np


def vjp(layer, x, dy, mask=None):
    backend = keras.backend.backend()
    x = np.asarray(x, dtype="float32")
    dy = np.asarray(dy, dtype="float32")
    if not layer.built:
        layer.build(x.shape)
    if backend == "tensorflow":
        import tensorflow as tf

        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, training=True, mask=mask)
            loss = tf.reduce_sum(tf.cast(outputs, "float32") * dy)
        grads = tape.gradient(loss, [inputs, *layer.trainable_variables])
    elif backend == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        others = [v.value for v in layer.non_trainable_variables]

        def loss(inputs, trainable):
            outputs, _ = layer.stateless_call(
                trainable, others, inputs, training=True, mask=mask
            )
            return (outputs.astype("float32") * dy).sum()

        dx, dweights = jax.grad(loss, argnums=(0, 1))(jax.numpy.asarray(x), trainable)
        grads = [dx, *dweights]
    elif backend == "torch":
        import torch

        # On the device Keras computes on (a GPU, where there is one).
        inputs = keras.ops.convert_to_tensor(x).detach().clone().requires_grad_()
        if mask is not None:
            mask = keras.ops.convert_to_tensor(np.asarray(mask))
        outputs = layer(inputs, training=True, mask=mask)
        loss = (outputs.float() * keras.ops.convert_to_tensor(dy)).sum()
        weights = [v.value for v in layer.trainable_variables]
        grads = torch.autograd.grad(loss, [inputs, *weights])
    else:
        raise ValueError(f"no gradients on backend {backend!r}")
    return [np.asarray(keras.ops.convert_to_numpy(g), dtype="float64") for g in grads]
