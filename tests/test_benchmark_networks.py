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


def test_swap_benchmark_pair_is_resnet50_before_and_after_and_trains():
    """`benchmarks.swap`'s two models: ResNet50 with Keras's 53 batch norm layers,
    and the same with bnk's, the same weights; each runs its timed fit."""
    import keras
    import numpy as np

    from benchmarks import swap

    original, converted = swap.model_pair(size=32)
    for model, kind in ((original, keras.layers.BatchNormalization),
                        (converted, bnk.BatchNorm)):
        norms = [layer for layer in model.layers if type(layer) is kind]
        assert len(norms) == 53
    for ours, theirs in zip(converted.get_weights(), original.get_weights(),
                            strict=True):
        assert np.array_equal(ours, theirs)
    rng = np.random.default_rng(0)
    x = rng.random((4, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, swap.CLASSES, 4)
    for model in (original, converted):
        assert swap.fit_seconds(model, x, y, batch=2, steps=1) > 0


def test_swap_benchmark_report_has_a_row_per_backend_against_the_goal():
    from benchmarks import swap

    rates = {
        "jax/original": [10.0, 11.0, 12.0], "jax/converted": [11.0, 12.1, 12.0],
        "torch/original": [10.0, 10.0, 10.0], "torch/converted": [9.0, 9.5, 10.0],
    }
    rows = swap.analyze(rates, ["jax", "torch"])
    assert rows["jax"]["ratio"]["median"] == pytest.approx(1.1)
    assert rows["jax"]["pass"] and not rows["torch"]["pass"]
    report = {
        "date": "today", "command": "python -m benchmarks.swap",
        "settings": {"size": 64, "batch": 16, "steps": 10, "rounds": 3},
        "machine": {"cpu": "a CPU", "cpu_count": 2},
        "load_start": [1.0], "load_end": [1.0],
        "workers": {"jax": {"jit_compile": True}, "torch": {"jit_compile": False}},
        "rows": rows,
    }
    text = swap.markdown(report)
    assert "| jax | jit | 11.0 | 12.0 | 1.10 | 1.00 – 1.10 | 1.05 | PASS |" in text
    assert "| torch | no jit | 10.0 | 9.5 | 0.95 | 0.90 – 1.00 | 1.05 | MISS |" in text
