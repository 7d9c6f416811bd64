"""Channels-first convolutions on CPUs whose backend has no kernel for them.

TensorFlow runs a channels-first (NCHW) convolution on the CPU only through oneDNN,
which it turns on by default only on processors with AVX-512-class features
(`TF_ENABLE_ONEDNN_OPTS=0` turns it off anywhere). Where the kernel is missing, a
channels-first model still builds and folds (both are symbolic); only running it
fails. The tests then run the same arithmetic through a channels-last twin: the same
layers and weights (Keras keeps a convolution's kernel as (..., in, out) in either
layout), with the input and output transposed.
"""

import functools

import keras
import numpy as np

CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


@functools.cache
def channels_first_conv_runs():
    """Whether this backend, on this CPU, can run a channels-first convolution."""
    try:
        keras.ops.conv(
            np.zeros((1, 1, 3, 3), "float32"),
            np.zeros((1, 1, 1, 1), "float32"),
            data_format="channels_first",
        )
    except Exception as error:  # TensorFlow raises UnimplementedError here.
        if "NHWC" not in str(error):
            raise
        return False
    return True


def channels_last_twin(model):
    """`model` (layers chained on one channels-first input) laid out channels last."""
    spec = model.inputs[0]
    rank = len(spec.shape)
    inputs = x = keras.Input(shape=(*spec.shape[2:], spec.shape[1]))
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        config = layer.get_config()
        if config.get("data_format") == "channels_first":
            config["data_format"] = "channels_last"
        if config.get("axis") in (1, 1 - rank):  # A norm over the channels.
            config["axis"] = -1
        twin = layer.__class__.from_config(config)
        x = twin(x)
        twin.set_weights(layer.get_weights())
    return keras.Model(inputs, x)


def predict(model, x):
    """`model(x)` in inference mode, through the channels-last twin if need be."""
    channels_first = any(
        isinstance(layer, CONVOLUTIONS) and layer.data_format == "channels_first"
        for layer in model.layers
    )
    if not channels_first or channels_first_conv_runs():
        return keras.ops.convert_to_numpy(model(x, training=False))
    to_last = (0, *range(2, x.ndim), 1)
    to_first = (0, x.ndim - 1, *range(1, x.ndim - 1))
    outputs = channels_last_twin(model)(np.transpose(x, to_last), training=False)
    return np.transpose(keras.ops.convert_to_numpy(outputs), to_first)
