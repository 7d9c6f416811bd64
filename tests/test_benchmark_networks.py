"""The benchmarks' copies of `bnk.CNN`'s shape, restated where Keras is not
imported (the benchmark's parent process, the plain-PyTorch worker), match it."""

import pytest

import bnk
from benchmarks import layer_alone
from bnk.cnn import INPUT_SHAPE


def test_layer_alone_measures_the_first_convolutions_output():
    conv1 = bnk.CNN().get_layer("conv1")
    output = conv1.compute_output_shape((None, *INPUT_SHAPE))
    assert tuple(output[1:]) == layer_alone.FIRST_BLOCK_ACTIVATION


def test_plain_pytorch_twin_has_bnk_cnns_layers_and_settings():
    pytest.importorskip("torch")
    from benchmarks import native_torch

    twin = native_torch.seed_cnn()
    model = bnk.CNN()
    model.build((None, *INPUT_SHAPE))

    def shapes(weights):
        # PyTorch orders a kernel's axes otherwise: (out, in, height, width).
        return [sorted(weight.shape) for weight in weights]

    assert shapes(twin.parameters()) == shapes(model.trainable_weights)
    running_statistics = [b for b in twin.buffers() if b.is_floating_point()]
    assert shapes(running_statistics) == shapes(model.non_trainable_weights)
    norms = [m for m in twin.modules() if type(m).__name__ == "BatchNorm2d"]
    assert len(norms) == 2
    for norm in norms:
        # PyTorch's momentum is the weight of the new batch: Keras's 1 - momentum.
        assert norm.momentum == pytest.approx(1 - model.momentum)
        assert norm.eps == model.epsilon
    (dropout,) = [m for m in twin.modules() if type(m).__name__ == "Dropout"]
    assert dropout.p == model.dropout_rate
