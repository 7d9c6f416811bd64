"""The benchmark's analysis and report (benchmarks/): targets counted and judged
as documented, and the Markdown showing them; the BN-layer-alone measurement on
this backend. No timing: the numbers are made up, or not looked at."""

import os
import platform
import subprocess
import sys

import keras
import numpy as np
import pytest

import bnk
from benchmarks import layer_alone, markdown
from benchmarks.analysis import (
    AUTODIFF,
    CLOSED_FORM,
    KERAS_BN,
    NO_BN,
    PLAIN_PYTORCH,
    analyze,
    paired,
)
from benchmarks.runner import ISA_CAPS, worker_environment

ON, OFF = "tensorflow-onednn-on", "tensorflow-onednn-off"
# (worker, mode) -> images/s of bnk closed-form, Keras BN, no BN: the same in
# every round (rounds are tested by `test_ratios_are_paired_round_by_round`).
TRAINING = {
    (ON, "graph"): (95, 90, 100),  # cost 5%: passes; 1.06x Keras: passes
    (ON, "xla"): (50, 50, 100),  # cost 50%, but the slower mode: not counted
    (OFF, "graph"): (30, 32, 100),  # oneDNN off: not counted; 0.94x Keras: slower
    ("jax", "xla"): (90, 88, 100),  # cost 10% > 6%; 1.02x Keras: both missed
    ("torch", "eager"): (90, 80, 100),  # cost 10% <= 12%: passes
    ("torch", "torch.compile"): (80, 70, 100),  # cost 20%: missed, yet counted
}
ROUNDS = 3


def rates():
    """Made-up rates of every kind of configuration, `ROUNDS` rounds each."""
    made = {}
    for (worker, mode), values in TRAINING.items():
        for label, value in zip((CLOSED_FORM, KERAS_BN, NO_BN), values, strict=True):
            made[f"train/{worker}/{label}/{mode}"] = [float(value)] * ROUNDS
        made[f"train/{worker}/{AUTODIFF}/{mode}"] = [values[0] / 2.0] * ROUNDS
        for label, value in (
            (CLOSED_FORM, 400.0),
            (AUTODIFF, 200.0),
            (KERAS_BN, 300.0),
        ):
            made[f"layer/{worker}/{label}/{mode}"] = [value] * ROUNDS
    made[PLAIN_PYTORCH] = [100.0] * ROUNDS
    made["infer/torch/folded/eager"] = [130.0] * ROUNDS
    made["infer/torch/unfolded/eager"] = [100.0] * ROUNDS
    made["peak/numpy-matmul"] = [1e9] * ROUNDS
    return made


WORKERS = {
    ON: {
        "device": "cpu",
        "device_name": "cpu",
        "TF_ENABLE_ONEDNN_OPTS": "1",
        "saved_bytes": {f"{ON}/{CLOSED_FORM}": None},
    },
    OFF: {
        "device": "cpu",
        "device_name": "cpu",
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "saved_bytes": {},
    },
    "jax": {
        "device": "cpu",
        "device_name": "cpu",
        "flop_forward_per_image": 10,
        "flop_train_per_image": 30,
        "saved_bytes": {f"jax/{CLOSED_FORM}": 3 * 2**20},
    },
    "torch": {"device": "cpu", "device_name": "cpu", "saved_bytes": {}},
}
TORCH_PROFILE = "Name  Self CPU %\naten::native_batch_norm_backward  41.0%"
# An older results.json's profile: the table alone, as text.
OLD_JAX_PROFILE = "Op  Self ms  Calls\nsubtract_divide_fusion.2  4.00  10"
# Ten steps with BN and without: BN adds 2 ms of `ynn_fusion` (two fusions
# merged, one call), 0.5 ms of a new reduction, and a call of `dot` per step.
JAX_PROFILE = {
    "steps": 10,
    "with_bn": [
        ["ynn_fusion.2", 0.030, 10],
        ["ynn_fusion.17", 0.010, 10],
        ["wrapped_reduce.3", 0.005, 10],
        ["dot.1", 0.002, 20],
    ],
    "without_bn": [["ynn_fusion.5", 0.020, 10], ["dot", 0.003, 10]],
}
TF_PROFILE = "Op  Self ms  Self %  Calls\nStatefulPartitionedCall/cnn_1/bn1_1/Mean:Mean"


def report():
    """A report as `benchmarks.run` writes it, of the made-up rates."""
    made = rates()
    kinds = {
        name: {
            "device": "cpu",
            "unit": "flop" if name.startswith("peak/") else "images",
        }
        for name in made
    }
    return {
        "date": "today",
        "command": "python -m benchmarks.run",
        "settings": {
            "quick": False,
            "repeats": ROUNDS,
            "steps": 30,
            "batch": 64,
            "layer_reps": 30,
            "infer_steps": 5,
            "infer_batch": 1000,
            "matmul_n": 2048,
        },
        "machine": {
            "platform": "Linux",
            "python": "3.11",
            "cpu": "a CPU",
            "cpu_count": 2,
            "avx512f": False,
        },
        "load_start": [0.0, 0.0, 0.0],
        "load_end": [0.0, 0.0, 0.0],
        "wall_seconds": 60.0,
        "workers": WORKERS,
        "profiles": {
            f"train/torch/{CLOSED_FORM}/torch.compile": TORCH_PROFILE,
            f"train/jax/{CLOSED_FORM}/xla": JAX_PROFILE,
        },
        **analyze(made, kinds, WORKERS),
    }


def by_backend(rows):
    return {row["backend"]: row for row in rows}


def test_bn_cost_counts_each_backends_faster_mode_with_onednn_on():
    result = report()
    rows = by_backend(result["targets"]["bn_cost"])
    assert set(rows) == {f"{w} ({m})" for w, m in TRAINING}
    counted = {name for name, row in rows.items() if row["counted"]}
    assert counted == {
        f"{ON} (graph)",
        "jax (xla)",
        "torch (eager)",
        "torch (torch.compile)",
    }
    passed = {name for name, row in rows.items() if row["pass"]}
    assert passed == {f"{ON} (graph)", "torch (eager)"}
    assert rows["jax (xla)"]["goal"] == pytest.approx(0.94)
    assert rows["torch (eager)"]["goal"] == pytest.approx(0.88)
    assert rows[f"{ON} (graph)"]["ratio"]["median"] == pytest.approx(0.95)
    assert result["verdicts"]["bn_cost"] is False


def test_bnk_vs_keras_counts_each_backends_fastest_configuration():
    result = report()
    rows = by_backend(result["targets"]["bnk_vs_keras_bn"])
    counted = {name for name, row in rows.items() if row["counted"]}
    # TensorFlow's fastest of both oneDNN settings and both modes; torch's faster.
    assert counted == {f"{ON} (graph)", "jax (xla)", "torch (eager)"}
    assert rows[f"{ON} (graph)"]["pass"] and not rows["jax (xla)"]["pass"]
    assert result["verdicts"]["bnk_vs_keras_bn"] is False


def test_folding_counts_in_eager_mode_and_plain_pytorch_against_the_fastest():
    result = report()
    (folding,) = result["targets"]["folding_speedup"]
    assert folding["counted"] and folding["ratio"]["median"] == pytest.approx(1.3)
    assert result["verdicts"]["folding_speedup"] is True
    (plain,) = result["targets"]["keras_vs_plain_pytorch"]
    assert plain["config"] == f"train/{ON}/{CLOSED_FORM}/graph"
    assert plain["ratio"]["median"] == pytest.approx(0.95)
    assert result["verdicts"]["keras_vs_plain_pytorch"] is False


def test_comparisons_pair_closed_form_with_each_variant():
    comparisons = report()["comparisons"]
    train = comparisons[f"train/jax/{CLOSED_FORM}/xla"]
    assert train[AUTODIFF]["median"] == pytest.approx(2.0)
    assert train[KERAS_BN]["median"] == pytest.approx(90 / 88)
    assert train[NO_BN]["median"] == pytest.approx(0.9)
    layer = comparisons[f"layer/torch/{CLOSED_FORM}/eager"]
    assert layer[AUTODIFF]["median"] == pytest.approx(2.0)
    assert NO_BN not in layer


def test_ratios_are_paired_round_by_round():
    # Both have the same rates, in other rounds: pairing them by round, not by
    # rank, gives 2, 0.5 and 1.
    made = {"a": [100.0, 50.0, 80.0], "b": [50.0, 100.0, 80.0]}
    ratio = paired(made, "a", "b")
    assert (ratio["min"], ratio["median"], ratio["max"]) == (0.5, 1.0, 2.0)


def test_markdown_shows_verdicts_memory_onednn_and_where_the_time_goes():
    text = markdown.render(report())
    assert "### `bn_cost`: MISS" in text
    assert "### `folding_speedup`: PASS" in text
    assert "- jax, xla: cost 10% (rounds 10% – 10%; limit 6%) MISS" in text
    assert (
        "- tensorflow (oneDNN on, CPU without avx512f), graph vs plain PyTorch" in text
    )
    assert "only in eager mode" in text
    assert "| tensorflow (oneDNN off, CPU without avx512f) | no BN | graph |" in text
    assert "- AVX-512 (avx512f): no" in text
    assert "| 3.0 MiB |" in text and "| not reported |" in text
    missed = text.split("## Where the time goes")[1]
    # torch.compile missed bn_cost, jax both targets: each with its profile.
    torch_part = missed.split("### torch, torch.compile")[1]
    assert "torch.profiler (self CPU time), the ten ops" in torch_part
    assert TORCH_PROFILE in torch_part
    jax_part = missed.split("### jax, xla")[1].split("###")[0]
    assert "JAX's profiler (XLA;" in jax_part
    added = jax_part.split("What BN adds to one training step")[1]
    assert "a `fit` of 10 steps" in added
    table = [line for line in added.splitlines() if line.startswith("| `")]
    assert table == [
        "| `ynn_fusion` | 2.00 | 1 |",
        "| `wrapped_reduce` | 0.50 | 1 |",
        "| `dot` | -0.10 | 1 |",
    ]
    assert (
        "Op runs per step: 5.0 with BN, 2.0 without; op self time per step: "
        "4.7 ms with BN, 2.3 ms without (" in added
    )
    # The BN step's own table, collapsed.
    assert "<details><summary>JAX's profiler" in added
    assert "ynn_fusion.2  " in added and "Self time of all 4 ops: 47.00 ms" in added
    # Missed rows only: torch's eager step met its targets.
    assert "### torch, eager" not in missed
    # 64 images at 90 images/s.
    assert f"{1000 * 64 / 90:.1f} ms with bnk closed-form" in missed
    # jax: 64 images at 90 against 100 images/s; the layer alone at 400, twice
    # (the second block's half as big).
    cost, alone = 1000 * (64 / 90 - 64 / 100), 1000 * 1.5 * 64 / 400
    assert f"BN's cost in the step: {cost:.1f} ms, against {alone:.1f} ms" in missed


def test_markdown_names_tensorflows_profiler_and_says_when_it_caught_nothing():
    result = report()
    tf_graph = f"train/{ON}/{CLOSED_FORM}/graph"
    for row in result["targets"]["bn_cost"]:
        if row["config"] == tf_graph:
            row["pass"] = False  # Now a missed target, with no profile yet.
    heading = "### tensorflow (oneDNN on, CPU without avx512f), graph"
    missed = markdown.render(result).split(heading)[1].split("###")[0]
    assert "No op table for this step" in missed
    result["profiles"][tf_graph] = TF_PROFILE
    missed = markdown.render(result).split(heading)[1].split("###")[0]
    assert "TensorFlow's profiler (" in missed and TF_PROFILE in missed
    assert "No op table" not in missed


def test_markdown_shows_an_older_reports_profile_as_it_was():
    result = report()
    result["profiles"][f"train/jax/{CLOSED_FORM}/xla"] = OLD_JAX_PROFILE
    jax_part = markdown.render(result).split("### jax, xla")[1].split("###")[0]
    assert "JAX's profiler (XLA;" in jax_part and OLD_JAX_PROFILE in jax_part
    assert "What BN adds" not in jax_part


def test_layer_alone_runs_and_measures_what_it_keeps():
    """One forward and backward pass of the BN layer alone, and the bytes kept,
    on this backend (not timed). TensorFlow reports no bytes."""
    backend = keras.backend.backend()
    x, dy = layer_alone.activation(2, seed=0)
    x, dy = x[..., :3], dy[..., :3]
    for layer in (bnk.BatchNorm(), keras.layers.BatchNormalization()):
        layer.build((None, *x.shape[1:]))
        moving_mean = keras.ops.convert_to_numpy(layer.moving_mean)
        layer_alone.step_function(backend, layer, False, x, dy)()
        if backend != "jax":  # jax's stateless pass leaves the variables be.
            # The pass ran in training mode: it moved the moving mean.
            moved = keras.ops.convert_to_numpy(layer.moving_mean)
            assert not np.allclose(moved, moving_mean)
        kept = layer_alone.saved_bytes(backend, layer, x)
        if backend == "tensorflow":
            assert kept is None
        else:
            # Backward needs at least the normalized input, or the input.
            assert kept >= x.nbytes


def test_max_isa_sets_every_librarys_cap_and_keeps_other_xla_flags():
    base = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false", "PATH": "/bin"}
    capped = worker_environment(ON, "avx2", base)
    assert capped["XLA_FLAGS"] == (
        "--xla_cpu_enable_fast_math=false --xla_cpu_max_isa=AVX2"
    )
    assert capped["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert capped["ATEN_CPU_CAPABILITY"] == "avx2"
    assert capped["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert capped["KERAS_BACKEND"] == "tensorflow"
    plain = worker_environment("jax", None, base)
    assert plain["XLA_FLAGS"] == base["XLA_FLAGS"]
    assert not set(ISA_CAPS["avx2"]) - {"XLA_FLAGS"} & set(plain)


# What each backend's own library reports of the cap, run in a capped worker's
# environment: oneDNN's verbose log names the instruction set it dispatches to
# (TensorFlow's convolutions), torch names its kernels' capability, and XLA
# refuses flags it does not know, so a run that compiles proves the flag exists.
ISA_PROBES = {
    "tensorflow": (
        "import tensorflow as tf; tf.nn.conv2d(tf.ones((1, 4, 4, 1)), "
        "tf.ones((3, 3, 1, 1)), 1, 'SAME')",
        "isa:Intel AVX2",
    ),
    "jax": ("import jax; print(jax.jit(lambda x: x * 2)(1.0))", "2.0"),
    "torch": ("import torch; print(torch.backends.cpu.get_cpu_capability())", "AVX2"),
}


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"),
    reason="the caps are x86-64 instruction sets",
)
def test_max_isa_takes_effect_in_this_backends_libraries():
    backend = keras.backend.backend()
    code, expected = ISA_PROBES[backend]
    worker = ON if backend == "tensorflow" else backend
    env = worker_environment(worker, "avx2", dict(os.environ, ONEDNN_VERBOSE="1"))
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert expected in run.stdout + run.stderr


def test_never_slower_than_keras_counts_every_backend_and_mode():
    result = report()
    rows = by_backend(result["targets"]["never_slower_than_keras_bn"])
    assert set(rows) == {f"{w} ({m})" for w, m in TRAINING}
    assert all(row["counted"] and row["goal"] == 1.0 for row in rows.values())
    # Equal to Keras passes (ON xla); oneDNN off's graph mode, 30 against 32, fails.
    assert {name for name, row in rows.items() if not row["pass"]} == {f"{OFF} (graph)"}
    assert result["verdicts"]["never_slower_than_keras_bn"] is False
