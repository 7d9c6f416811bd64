"""The op tables of the benchmark's profiles (benchmarks/xplane.py, and
benchmarks.worker.op_rows): ops' own time read from an XSpace the test builds;
what BN adds to a step (benchmarks/bn_ops.py) from made-up rows; and real
profiles of a tiny training step with and without BN on this backend (not
timed)."""

import functools
import re

import keras
import numpy as np
import pytest

import bnk
from benchmarks import xplane
from benchmarks.bn_ops import AddedOp, added_by_bn, op_kind
from benchmarks.worker import op_rows

MEAN = "cnn/bn/Mean:Mean"


def space():
    """A host plane of two threads (lines), times in picoseconds:

    line 1: ExecutorState::Process [0, 100) holds `MEAN` [10, 70), which holds
            an Eigen task [15, 55): MEAN's own time is 20 (60 in all);
            `MEAN` again [70, 80), right after: 10 more, not nested;
            Iterator::Prefetch [85, 95): not an op (its type is not its name's).
    line 2: ThunkExecutor::Execute [0, 90) holds fusion.1 [5, 55) (an XLA
            thunk, its `hlo_op` stat a reference) and dot.2 [60, 65) (the stat
            a string): 50 and 5, all their own.
    """
    pb2 = xplane.xplane_pb2()
    result = pb2.XSpace()
    plane = result.planes.add(name="/host:CPU")
    for i, name in enumerate(("hlo_op", "fusion.1"), start=1):
        plane.stat_metadata[i].id, plane.stat_metadata[i].name = i, name
    names = {
        1: ("ExecutorState::Process", ""),
        2: (MEAN, "Mean"),
        3: ("Eigen task", ""),
        4: ("Iterator::Root::Prefetch", "Iterator::Prefetch"),
        5: ("ThunkExecutor::Execute", ""),
        6: ("fusion.1", ""),
        7: ("dot.2", ""),
    }
    for i, (name, display) in names.items():
        plane.event_metadata[i].id = i
        plane.event_metadata[i].name = name
        plane.event_metadata[i].display_name = display
    first = plane.lines.add(id=1, name="tf_Compute/1")
    for metadata, offset, duration in (
        (2, 70, 10),  # Out of order: the reader must not rely on it.
        (1, 0, 100),
        (2, 10, 60),
        (3, 15, 40),
        (4, 85, 10),
    ):
        first.events.add(metadata_id=metadata, offset_ps=offset, duration_ps=duration)
    second = plane.lines.add(id=2, name="tf_XLAEigen/2")
    second.events.add(metadata_id=5, offset_ps=0, duration_ps=90)
    fusion = second.events.add(metadata_id=6, offset_ps=5, duration_ps=50)
    fusion.stats.add(metadata_id=1, ref_value=2)
    dot = second.events.add(metadata_id=7, offset_ps=60, duration_ps=5)
    dot.stats.add(metadata_id=1, str_value="dot.2")
    return result


def test_ops_sorted_by_their_own_time_summed_over_runs():
    rows = xplane.op_times(space())
    # MEAN would come first (70 in all) if nested time were not taken off.
    assert [(row.name, row.count) for row in rows] == [
        ("fusion.1", 1),
        (MEAN, 2),
        ("dot.2", 1),
    ]
    assert [row.seconds for row in rows] == [
        50 * xplane.PICOSECONDS,
        30 * xplane.PICOSECONDS,
        5 * xplane.PICOSECONDS,
    ]


def test_table_shows_the_first_rows_and_shares_of_all_ops(tmp_path):
    # As a profiler writes it: a `.xplane.pb` a few folders down.
    folder = tmp_path / "plugins" / "profile" / "run"
    folder.mkdir(parents=True)
    (folder / "host.xplane.pb").write_bytes(space().SerializeToString())
    rows = xplane.read_profiles(tmp_path)
    assert rows == xplane.op_times(space())
    table = xplane.render(rows, limit=2).splitlines()
    assert table[0].split() == ["Op", "Self", "ms", "Self", "%", "Calls"]
    # 50 of the 85 of all three ops' own time; `dot.2` is left out, not its time.
    assert table[2].split() == ["fusion.1", "0.00", "58.8%", "1"]
    assert table[3].split() == [MEAN, "0.00", "35.3%", "2"]
    assert len(table) == 5 and table[4] == "Self time of all 3 ops: 0.00 ms"


def test_op_kinds_drop_what_differs_between_models_and_mark_bn_layers():
    tf = functools.partial(op_kind, "tensorflow")
    assert tf("StatefulPartitionedCall/Sum_3:Sum") == "Sum"
    conv = "StatefulPartitionedCall/cnn_1/conv2_1/BiasAdd:_MklNativeFusedConv2D"
    assert tf(conv) == "_MklNativeFusedConv2D"
    assert tf("StatefulPartitionedCall/cnn_1/bn2_1/mul_5:Mul") == "Mul (BN layer)"
    assert tf("gradient_tape/cnn/bn1/Mean/Sum:Sum") == "Sum (BN layer)"
    assert tf("StatefulPartitionedCall/cnn_1/bnx/mul:Mul") == "Mul"  # Not a BN's.
    # XLA's instructions, in JAX's and TensorFlow's xla mode.
    for backend in ("jax", "tensorflow"):
        assert op_kind(backend, "ynn_fusion.17") == "ynn_fusion"
        assert op_kind(backend, "wrapped_reduce-window") == "wrapped_reduce-window"
        assert op_kind(backend, "broadcast_subtract_fusion.1") == (
            "broadcast_subtract_fusion"
        )
    assert op_kind("torch", "aten::native_batch_norm.1") == "aten::native_batch_norm.1"
    # torch.compile's programs, one per model: their hashes and numbers go.
    assert op_kind("torch", "## Call CompiledFxGraph fao37zxwnuv ##") == (
        "## Call CompiledFxGraph ##"
    )
    assert op_kind("torch", "Torch-Compiled Region: 38/0") == "Torch-Compiled Region"


def test_added_by_bn_merges_kinds_keeps_growth_sorted_per_step():
    """Two profiles of 4 steps, TensorFlow op names."""
    with_bn = [
        xplane.OpTime("s/cnn/conv1/BiasAdd:Conv2D", 1.0, 4),
        xplane.OpTime("s/cnn/bn1/Mean:Mean", 0.4, 4),
        xplane.OpTime("s/Sum_3:Sum", 0.2, 4),  # Two nodes of one kind: merged.
        xplane.OpTime("s/Sum_1:Sum", 0.2, 4),
        xplane.OpTime("s/adam/Mul_2:Mul", 0.1, 8),
    ]
    without = [
        xplane.OpTime("s/cnn/conv1/Relu:Conv2D", 1.2, 4),  # Shrank: left out.
        xplane.OpTime("s/Sum_1:Sum", 0.1, 4),
        xplane.OpTime("s/adam/Mul_1:Mul", 0.1, 4),
        xplane.OpTime("s/Relu:Relu", 0.3, 4),  # Gone with BN: left out.
    ]
    added = added_by_bn(with_bn, without, functools.partial(op_kind, "tensorflow"), 4)
    # Most added time first; Mul's runs grew, its time did not.
    assert [op.kind for op in added.ops] == ["Mean (BN layer)", "Sum", "Mul"]
    assert added.ops == [
        AddedOp("Mean (BN layer)", pytest.approx(0.1), 1.0),
        AddedOp("Sum", pytest.approx(0.075), 1.0),
        AddedOp("Mul", pytest.approx(0.0), 1.0),
    ]
    assert added.runs == (6.0, 4.0)
    assert added.seconds == (pytest.approx(1.9 / 4), pytest.approx(1.7 / 4))
    # By exact name, the two Sum nodes would be two rows.
    by_name = added_by_bn(with_bn, without, str, 1)
    assert [op.kind for op in by_name.ops if op.kind.endswith(":Sum")] == [
        "s/Sum_3:Sum",  # 0.2 s added, against Sum_1's 0.1 s.
        "s/Sum_1:Sum",
    ]


def tiny_cnn(normalization):
    """A tiny CNN, `normalization` (a layer, or None) named as `bnk.CNN`'s."""
    layers = [keras.Input((6, 6, 2)), keras.layers.Conv2D(4, 3, name="conv")]
    if normalization is not None:
        layers.append(normalization(name="bn1"))
    layers += [keras.layers.Flatten(), keras.layers.Dense(3)]
    return keras.Sequential(layers, name="cnn")


def test_a_real_training_step_profiles_on_this_backend():
    """The ops of two steps of a tiny CNN with `bnk.BatchNorm`, and what it adds
    to the same CNN without BN, by the functions the benchmark's workers and
    report use (torch.profiler on torch)."""
    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 6, 6, 2), dtype=np.float32), rng.integers(0, 3, 8)
    profiles = []
    for normalization in (bnk.BatchNorm, None):
        model = tiny_cnn(normalization)
        # TensorFlow in graph mode, where op names keep the layers' scopes;
        # JAX's step compiled by XLA, as in the benchmark.
        jit = backend == "jax"
        model.compile("adam", "sparse_categorical_crossentropy", jit_compile=jit)
        model.fit(x, y, batch_size=4, verbose=0)  # Compiles.
        fit = functools.partial(model.fit, x, y, batch_size=4, verbose=0)
        profiles.append(op_rows(backend, fit))
    with_bn, without = profiles
    added = added_by_bn(with_bn, without, functools.partial(op_kind, backend), 2)
    kinds = [op.kind for op in added.ops]
    assert kinds and added.runs[0] > added.runs[1] > 0
    assert all(op.seconds > 0 or op.calls > 0 for op in added.ops)
    table = xplane.render(with_bn)
    if backend == "torch":
        assert "aten::convolution_backward" in table
        assert any(kind.startswith("aten::") for kind in kinds)
        return
    rows = [row.split() for row in table.splitlines()]
    # The heading, ten ops and the total; the step's ops ran once per step.
    assert len(rows) == 2 + 10 + 1 and rows[-1][:4] == ["Self", "time", "of", "all"]
    assert any(row[-1] == "2" and float(row[-2].rstrip("%")) > 0 for row in rows)
    if backend == "tensorflow":  # In graph mode, named by the layer's scope.
        assert re.search(r"cnn(_\d+)?/conv(_\d+)?/\S*:\w*Conv2D", table)
        assert any(kind.endswith(" (BN layer)") for kind in kinds)
    else:  # XLA's instructions, their numbers dropped.
        assert not any(re.search(r"\.\d+$", kind) for kind in kinds)
