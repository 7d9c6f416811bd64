"""`benchmarks/results.md`: a benchmark report as Markdown."""

from __future__ import annotations

import functools
from typing import Any

from benchmarks import xplane
from benchmarks.analysis import (
    AUTODIFF,
    CLOSED_FORM,
    KERAS_BN,
    NO_BN,
    ONEDNN,
    TARGETS,
    backend_of,
    relabelled,
)
from benchmarks.bn_ops import added_by_bn, op_kind
from benchmarks.layer_alone import FIRST_BLOCK_ACTIVATION
from benchmarks.runner import ISA_CAPS

VERSION_KEYS = (
    "keras",
    "tensorflow",
    "TF_ENABLE_ONEDNN_OPTS",
    "jax",
    "torch",
    "numpy",
    "torch_threads",
)
# Who made a backend's op table (`benchmarks.worker.KerasBench.profile`).
PROFILERS = {
    "torch": "torch.profiler (self CPU time)",
    "tensorflow": (
        "TensorFlow's profiler (`benchmarks.xplane`: TensorFlow's ops in graph "
        "mode, named by layer scope; XLA's fusions and thunks in xla mode)"
    ),
    "jax": (
        "JAX's profiler (XLA; `benchmarks.xplane`: the fusions and single ops "
        "XLA runs, by HLO instruction name)"
    ),
}
# How `benchmarks.bn_ops.op_kind` merges a backend's ops into kinds.
OP_KINDS = {
    "torch": "the aten op; under torch.compile, a compiled graph or region without "
    "its hash or number",
    "tensorflow": (
        "TensorFlow's op type, marked `(BN layer)` inside a BN layer's scope; "
        "XLA's instruction without its number in xla mode"
    ),
    "jax": "XLA's instruction without its number: `ynn_fusion.17` is `ynn_fusion`",
}
THROUGHPUT_TABLES = (
    ("train", "Training throughput (images/s, batch {batch}, Adam)"),
    (
        "layer",
        "The BN layer alone: forward and backward in training mode "
        "(images/s, batch {batch} of {shape})",
    ),
    ("infer", "Inference throughput in eager mode (images/s, batch {infer_batch})"),
)


def worker_label(worker: str, machine: dict[str, Any]) -> str:
    """A worker as the tables name it: TensorFlow's with oneDNN on or off and
    whether the CPU has AVX-512 (`avx512f`), which sets TensorFlow's default,
    and the `--max-isa` cap the run put on it (`max_isa`), if any."""
    if worker not in ONEDNN:
        return worker
    state = "on" if ONEDNN[worker] == "1" else "off"
    avx512 = machine.get("avx512f")
    cpu = "" if avx512 is None else f", CPU {'with' if avx512 else 'without'} avx512f"
    if machine.get("max_isa"):
        cpu += f", capped at {machine['max_isa'].upper()}"
    return f"tensorflow (oneDNN {state}{cpu})"


def shown_ratio(row: dict[str, Any], cost: bool) -> str:
    """A target row's median and range: the ratio, or for a cost target the
    cost `1 - ratio` against its limit."""
    ratio = row["ratio"]
    if cost:
        return (
            f"cost {1 - ratio['median']:.0%} (rounds {1 - ratio['max']:.0%} – "
            f"{1 - ratio['min']:.0%}; limit {1 - row['goal']:.0%})"
        )
    return (
        f"{ratio['median']:.2f} (rounds {ratio['min']:.2f} – {ratio['max']:.2f}; "
        f"goal {row['goal']:.2f})"
    )


def verdict(value: bool | None) -> str:
    """A verdict as shown: "PASS", "MISS", or "n/a" when no row counted."""
    return "n/a" if value is None else "PASS" if value else "MISS"


def _rate_columns(summary: dict[str, Any], unit: str) -> tuple[str, str]:
    """The median and the "min – max" of a summary, as table cells."""
    if unit == "flop":
        return (
            f"{summary['median'] / 1e9:,.1f}",
            f"{summary['min'] / 1e9:,.1f} – {summary['max'] / 1e9:,.1f}",
        )
    return f"{summary['median']:,.0f}", f"{summary['min']:,.0f} – {summary['max']:,.0f}"


def render(report: dict[str, Any]) -> str:
    """The Markdown text of `report`, the dict `benchmarks.run` writes as JSON."""
    return "\n".join(
        [
            *_introduction(report),
            *_machine(report),
            *_matmul_peaks(report),
            *_throughputs(report),
            *_comparisons(report),
            *_targets(report),
            *_where_the_time_goes(report),
        ]
    )


def _introduction(report: dict[str, Any]) -> list[str]:
    """The title and how the run was made."""
    settings = report["settings"]
    lines = [
        "# bnk throughput on this machine",
        "",
        (
            f"Run {report['date']} with `{report['command']}` "
            f"({settings['repeats']} interleaved rounds; "
            f"{settings['steps']} training steps of batch "
            f"{settings['batch']}, {settings['layer_reps']} passes of the BN "
            f"layer alone and {settings['infer_steps']} "
            f"inference batches of {settings['infer_batch']} per measurement; "
            f"{report['wall_seconds'] / 60:.1f} min in all)."
        ),
        "",
    ]
    if settings["quick"]:
        lines += [
            (
                "**A `--quick` smoke run: too few steps and rounds for the "
                "numbers to mean anything.**"
            ),
            "",
        ]
    return lines


def _machine(report: dict[str, Any]) -> list[str]:
    """The machine, its load, the workers' versions and devices, the network's
    cost, and how a measurement is timed."""
    m = report["machine"]
    lines = [
        "## Machine",
        "",
        (
            f"- CPU: {m.get('cpu')}, {m.get('cpu_count')} logical cores "
            f"({m.get('usable_cpus', '?')} usable), "
            f"{m.get('memory_gib', '?')} GiB memory"
        ),
        f"- {m['platform']}, Python {m['python']}",
        (
            "- AVX-512 (avx512f): "
            + {True: "yes", False: "no", None: "unknown"}[m.get("avx512f")]
            + " (TensorFlow turns oneDNN on by default only on CPUs with it; "
            "both settings are measured, forced by `TF_ENABLE_ONEDNN_OPTS`)"
        ),
        (
            f"- load average (1, 5, 15 min) at start {report['load_start']}, "
            f"at end {report['load_end']} "
            "(other work on the machine makes numbers noisy)"
        ),
    ]
    max_isa = report["settings"].get("max_isa")
    if max_isa:
        lines.append(
            f"- **vector instructions capped at {max_isa.upper()}** (`--max-isa`: "
            + ", ".join(f"`{k}={v}`" for k, v in ISA_CAPS[max_isa].items())
            + "), a stand-in for a CPU without AVX-512; the cores, clock and "
            "caches are this CPU's, and code that picks its instructions "
            "otherwise is as it was (TensorFlow's kernels without oneDNN, compiled "
            "ahead of time; numpy's matrix product, OpenBLAS's own choice)"
        )
    for name, info in report["workers"].items():
        versions = ", ".join(f"{k} {v}" for k, v in info.items() if k in VERSION_KEYS)
        lines.append(
            f"- {worker_label(name, m)}: {versions}; "
            f"device: {info['device']} ({info['device_name']})"
        )
    flop = report["flop_per_image"]
    if flop:
        lines.append(
            f"- bnk.CNN cost, counted from its Conv2D/Dense layers: "
            f"{flop[0] / 1e6:.1f} MFLOP per image forward, {flop[1] / 1e6:.1f} MFLOP "
            "per training image (forward + input and weight gradients)"
        )
    return [
        *lines,
        "",
        (
            "Each measurement times a fixed number of steps after warm-up (compile); "
            "Keras timings run from the first batch's start to the end of "
            "`fit`/`predict` (per-call setup left out). Medians over the rounds, "
            "min – max beside; ratios are paired round by round."
        ),
        "",
    ]


def _matmul_peaks(report: dict[str, Any]) -> list[str]:
    """The table of matrix-multiply rates, and the limit they set."""
    results = report["results"]
    peaks = [name for name in results if name.startswith("peak/")]
    if not peaks:
        return []
    lines = [
        f"## float32 matrix-multiply peak ({report['settings']['matmul_n']}²)",
        "",
        "| | device | GFLOP/s | min – max |",
        "| --- | --- | ---: | --- |",
    ]
    for name in peaks:
        median, span = _rate_columns(results[name], "flop")
        library = name.split("/")[1]
        lines.append(f"| {library} | {results[name]['device']} | {median} | {span} |")
    return [
        *lines,
        "",
        "The limit each throughput is compared with below (`of matmul limit`) is "
        "the best of these medians on its device: "
        + ", ".join(
            f"{device} {rate / 1e9:,.1f} GFLOP/s"
            for device, rate in report["peak_flop_per_s"].items()
        )
        + "; that is, images/s x FLOP per image / limit.",
        "",
    ]


def _throughputs(report: dict[str, Any]) -> list[str]:
    """One table per task of `THROUGHPUT_TABLES` that the run measured."""
    results, settings = report["results"], report["settings"]
    saved = {
        key: nbytes
        for info in report["workers"].values()
        for key, nbytes in info.get("saved_bytes", {}).items()
    }
    lines = []
    for task, title in THROUGHPUT_TABLES:
        names = [name for name in results if name.startswith(task + "/")]
        if not names:
            continue
        shape = "×".join(map(str, FIRST_BLOCK_ACTIVATION))
        lines += [
            "## " + title.format(shape=shape, **settings),
            "",
            "| backend | BN | compile | images/s | min – max | spread | "
            + ("kept for backward |" if task == "layer" else "of matmul limit |"),
            "| --- | --- | --- | ---: | --- | ---: | ---: |",
        ]
        for name in sorted(names):
            _, worker, bn, mode = name.split("/")
            summary = results[name]
            median, span = _rate_columns(summary, "images")
            if task == "layer":
                last = _bytes(saved.get(f"{worker}/{bn}"))
            else:
                fraction = summary.get("fraction_of_peak")
                last = f"{100 * fraction:.1f}%" if fraction is not None else "–"
            lines.append(
                f"| {worker_label(worker, report['machine'])} | {bn} | {mode} | "
                f"{median} | {span} | {100 * summary['spread']:.0f}% | {last} |"
            )
        lines.append("")
        if task == "layer":
            lines += [
                "`kept for backward`: the bytes one forward pass keeps for the "
                "backward pass (measured once per variant: JAX, the residuals of "
                "`jax.vjp`; torch in eager mode, the tensors autograd saves plus "
                "those a custom gradient holds, counted once per storage, the "
                "input included where kept). TensorFlow: not reported, its "
                "gradient tape gives no account of what it keeps.",
                "",
            ]
    return lines


def _targets(report: dict[str, Any]) -> list[str]:
    """Each target's verdict, description and rows."""
    lines = ["## Targets", ""]
    for name, target in TARGETS.items():
        lines += [
            f"### `{name}`: {verdict(report['verdicts'][name])}",
            "",
            f"{target.description}.",
            "",
        ]
        for row in report["targets"][name]:
            _, worker, _, mode = row["config"].split("/")
            compared = " vs plain PyTorch" if name == "keras_vs_plain_pytorch" else ""
            note = "" if row["counted"] else " (not counted)"
            lines.append(
                f"- {worker_label(worker, report['machine'])}, {mode}{compared}: "
                f"{shown_ratio(row, target.cost)} {verdict(row['pass'])}{note}"
            )
        lines.append("")
    return lines


def _bytes(nbytes: int | None) -> str:
    """A byte count as a table cell, in MiB."""
    return "not reported" if nbytes is None else f"{nbytes / 2**20:.1f} MiB"


def _comparisons(report: dict[str, Any]) -> list[str]:
    """The table of bnk closed-form over each other variant, paired by round."""
    rows = report["comparisons"]
    if not rows:
        return []
    lines = [
        "## bnk closed-form over the other variants (paired by round)",
        "",
        f"| task | backend | compile | / {AUTODIFF} | / {KERAS_BN} | / {NO_BN} |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for name, ratios in sorted(rows.items()):
        task, worker, _, mode = name.split("/")
        cells = [
            f"{ratios[label]['median']:.2f}" if label in ratios else "–"
            for label in (AUTODIFF, KERAS_BN, NO_BN)
        ]
        task = "training step" if task == "train" else "layer alone"
        lines.append(
            f"| {task} | {worker_label(worker, report['machine'])} | {mode} | "
            + " | ".join(cells)
            + " |"
        )
    return [*lines, ""]


def _where_the_time_goes(report: dict[str, Any]) -> list[str]:
    """For each training step whose counted target row is missed: the step's
    time with and without BN, the BN layer's own time, and the op profile
    where the backend gave one."""
    missed = sorted(
        {
            row["config"]
            for name in ("bn_cost", "bnk_vs_keras_bn", "never_slower_than_keras_bn")
            for row in report["targets"][name]
            if row["counted"] and not row["pass"]
        }
    )
    if not missed:
        return []
    results, batch = report["results"], report["settings"]["batch"]
    lines = [
        "## Where the time goes in the steps that miss a target",
        "",
        "Why these targets are missed. The closed form leaves BN's forward pass "
        "as it was, on purpose: the variance of the deviations from the mean (a "
        "second read of the activation, which keeps its digits at large means), "
        "each statistic summed one axis at a time on TensorFlow (whose CPU kernel "
        "loses digits over many axes at once) and over every axis at once on JAX "
        "and torch, then one write of the output. Below, "
        "each missed step's cost of BN is set against the layer's own "
        "arithmetic, measured alone, and against the profile of the same steps "
        "without BN. Where the step loses more than the arithmetic, the rest is "
        "outside it, and the profile shows where: BN adds many small ops to a "
        "step (op runs per step, with and without BN), and each pays its "
        "backend's cost per op (the executor in TensorFlow's graph mode, a "
        "thunk in XLA's CPU runtime, Python dispatch in torch's eager mode, "
        "graph calls and guards under torch.compile). Ops that run no more "
        "often with BN (no extra calls) but take longer are the layers around "
        "it (convolutions, products, pooling, ReLU): on TensorFlow part of that "
        "is a lost fusion (oneDNN fuses a convolution with its bias and ReLU "
        "only when nothing stands between them); elsewhere this run does not "
        "say why. A backward pass removes some of BN's ops, but not the "
        "forward pass's, not the optimizer's updates of gamma and beta, and "
        "not what the layers around BN lose.",
        "",
    ]

    def seconds(name: str) -> float | None:
        """Seconds per batch of a configuration, from its median rate."""
        if name not in results:
            return None
        return batch / results[name]["median"]

    def ms(name: str) -> str:
        """Milliseconds per batch of a configuration, from its median rate."""
        value = seconds(name)
        return "–" if value is None else f"{1000 * value:.1f} ms"

    for name in missed:
        _, worker, _, mode = name.split("/")
        layer = f"layer/{worker}/{CLOSED_FORM}/{mode}"
        lines += [
            f"### {worker_label(worker, report['machine'])}, {mode}",
            "",
            f"- training step: {ms(name)} with bnk closed-form, "
            f"{ms(relabelled(name, KERAS_BN))} with Keras BN, "
            f"{ms(relabelled(name, NO_BN))} without BN",
            "- the first block's BN layer alone, forward and backward: "
            + ", ".join(
                f"{ms(relabelled(layer, label))} ({label})"
                for label in (CLOSED_FORM, AUTODIFF, KERAS_BN)
            )
            + " (the second block's has half as many elements)",
        ]
        step, plain, alone = (
            seconds(name), seconds(relabelled(name, NO_BN)), seconds(layer)
        )
        if step is not None and plain is not None and alone is not None:
            # Both blocks' layers: the second has half the first's elements.
            lines.append(
                f"- BN's cost in the step: {1000 * (step - plain):.1f} ms, against "
                f"{1000 * 1.5 * alone:.1f} ms of BN arithmetic (both layers, "
                "measured alone)"
            )
        lines.append("")
        lines += _profile(report.get("profiles", {}).get(name), worker)
    return lines


def _profile(profile: dict[str, Any] | str | None, worker: str) -> list[str]:
    """A missed step's profile as shown: what BN adds to the step (the ops of
    the same steps with BN and without, by `op_kind`), then the BN step's ten
    ops with the most time of their own, collapsed. A profile of an older
    `results.json` is that table alone, as text."""
    if not profile:
        return [
            "No op table for this step: the profiler caught no op, or "
            "TensorFlow, whose message classes read its trace, is not "
            "installed.",
            "",
        ]
    backend = backend_of(worker)
    heading = (
        PROFILERS[backend] + ", the ten ops with the most time of their own in a "
        "`fit` of up to ten training steps (a step's op runs once per step: see "
        "its calls)"
    )
    if isinstance(profile, str):
        return [heading + ":", "", "```", profile.rstrip(), "```", ""]
    with_bn, without = (
        [xplane.OpTime(*row) for row in profile[key]]
        for key in ("with_bn", "without_bn")
    )
    steps = profile["steps"]
    added = added_by_bn(with_bn, without, functools.partial(op_kind, backend), steps)
    lines = [
        f"What BN adds to one training step: the ops of a `fit` of {steps} "
        "steps with bnk closed-form against the same steps with no BN, by "
        f"{PROFILERS[backend]}, merged by op kind ({OP_KINDS[backend]}); the "
        "ten kinds whose time of their own grew most, per step:",
        "",
        "| op kind | extra self ms per step | extra calls per step |",
        "| --- | ---: | ---: |",
    ]
    for op in added.ops[:10]:
        lines.append(
            f"| `{op.kind}` | {1000 * op.seconds:.2f} | {round(op.calls, 1):g} |"
        )
    (runs_with, runs_without), (seconds_with, seconds_without) = (
        added.runs,
        added.seconds,
    )
    lines += [
        "",
        f"Op runs per step: {runs_with:.1f} with BN, {runs_without:.1f} without; "
        f"op self time per step: {1000 * seconds_with:.1f} ms with BN, "
        f"{1000 * seconds_without:.1f} ms without (the `fit`'s ops outside its "
        "steps, once per epoch or call, divided among the steps too; a kind "
        "whose calls did not grow gained time only by running slower).",
        "",
        "<details><summary>" + heading + ", with BN</summary>",
        "",
        "```",
        xplane.render(with_bn),
        "```",
        "",
        "</details>",
        "",
    ]
    return lines
