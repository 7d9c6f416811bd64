"""On torch eager every aten op run costs its dispatch, whatever its size: bnk's BN
runs at most four fifths as many of them as Keras's own layer."""

import keras
import pytest

import bnk
from benchmarks import op_count
from benchmarks.analysis import AUTODIFF, CLOSED_FORM, KERAS_BN

on_torch_only = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="counts torch's aten op runs"
)


def aten_op_runs(layer, x):
    """The aten op runs (torch.profiler's count, nested ops included) of one
    training-mode forward and backward pass of `layer` on `x`, after a first one
    (which builds the layer)."""
    import torch

    x = torch.tensor(x, requires_grad=True)
    dy = torch.ones_like(x)

    def step():
        layer(x, training=True).backward(dy)

    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
        step()
    return sum(e.count for e in p.key_averages() if e.key.startswith("aten::"))


@on_torch_only
def test_bn_runs_at_most_four_fifths_of_keras_aten_ops(rng):
    """The first block's activation. Measured (torch 2.13): 95 against 166; 175 when
    each statistic was summed one axis at a time."""
    x = rng.normal(0.3, 0.2, (64, 28, 28, 32)).astype("float32")
    ours = aten_op_runs(bnk.BatchNorm(), x)
    theirs = aten_op_runs(keras.layers.BatchNormalization(), x)
    assert ours <= 0.8 * theirs, (ours, theirs)


@on_torch_only
def test_a_training_step_gains_at_most_four_fifths_of_keras_aten_ops():
    """What `benchmarks.op_count` measures, on a smaller fit: the runs BN adds to
    a step of `bnk.CNN` do not depend on the batch's size."""
    added = op_count.added_by_bn(batch=8, steps=2)
    assert set(added) == {CLOSED_FORM, AUTODIFF, KERAS_BN}
    assert 0 < added[CLOSED_FORM] <= op_count.GOAL * added[KERAS_BN], added


@pytest.mark.parametrize(("ours", "outcome"), [(80.0, "PASS"), (81.0, "MISS")])
def test_the_verdict_compares_the_closed_form_with_keras(ours, outcome):
    added = {CLOSED_FORM: ours, AUTODIFF: 90.0, KERAS_BN: 100.0}
    assert op_count.verdict(added).startswith(f"{outcome}: ")
    assert f"{ours:.0f} aten op runs" in op_count.verdict(added)
    page = op_count.markdown(added, {"torch": "2.13"})
    assert f"| {CLOSED_FORM} | {ours:.0f} | {ours / 100:.2f} |" in page
    assert op_count.verdict(added) in page


def test_the_command_refuses_another_backend(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with pytest.raises(SystemExit):
        op_count.main(["--out", str(tmp_path)])
    assert "KERAS_BACKEND is 'jax'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
