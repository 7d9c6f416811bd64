"""Throughput of bnk on this machine: `python -m benchmarks.run [--quick]`.

Measures, with each backend in its own worker process (`benchmarks.worker`,
driven by `benchmarks.runner`):

- training throughput (images/s, batch 64, Adam, synthetic MNIST-shaped data in
  memory) of `bnk.CNN` with `bnk.BatchNorm` (its closed-form gradient, and Keras
  autodiff with `closed_form_gradient=False`), with
  `keras.layers.BatchNormalization` in its place, and without BN, on TensorFlow
  (a plain tf.function, Keras's default on a CPU, and XLA, Keras's
  `jit_compile=True`), each with oneDNN on and off (`TF_ENABLE_ONEDNN_OPTS`), on
  JAX (XLA) and torch (eager, and `torch.compile` through `jit_compile=True`);
- the BN layer alone, forward and backward in training mode on a 64-image
  activation like the input of bnk.CNN's first BN layer (`benchmarks.layer_alone`),
  in the same variants and compile modes, and the bytes each variant keeps for
  its backward pass (JAX and torch);
- the same network as a plain PyTorch eager loop with `torch.nn.BatchNorm2d`;
- inference throughput (batch 1000) of `bnk.CNN` as it is and folded by
  `bnk.fold_batch_norm`, in eager mode (torch);
- the float32 matrix-multiply peak (numpy, torch, and XLA on TensorFlow and JAX),
  and each throughput as a fraction of the limit it implies.

It reports medians and min-max spreads, ratios paired round by round, and
PASS/MISS for the targets (`benchmarks.analysis.TARGETS`), with an op profile
(torch.profiler's, or TensorFlow's and JAX's read by `benchmarks.xplane`) of the
training steps whose target is missed, and the ops BN adds to them (against the
same steps with no BN: `benchmarks.bn_ops`). Writes
`benchmarks/results.json` and `benchmarks/results.md` (`benchmarks.markdown`);
worker logs go to `benchmarks/logs/`. `--reanalyze` redoes the analysis and the
Markdown from an earlier `results.json`, without measuring.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import machine, markdown
from benchmarks.analysis import TARGETS, WORKERS, analyze
from benchmarks.runner import ISA_CAPS, measure

HERE = Path(__file__).resolve().parent


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a tiny smoke run (numbers meaningless)"
    )
    parser.add_argument("--repeats", type=int, help="rounds (default 5; quick 2)")
    parser.add_argument(
        "--steps", type=int, help="training steps per measurement (default 20; quick 3)"
    )
    parser.add_argument(
        "--layer-reps",
        type=int,
        help="forward+backward passes of the BN layer alone per measurement "
        "(default 30; quick 3)",
    )
    parser.add_argument(
        "--infer-steps",
        type=int,
        help="inference batches per measurement (default 5; quick 1)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        help="steps of each of the two warm-up calls (default 5; quick 1)",
    )
    parser.add_argument(
        "--backends",
        default=",".join(WORKERS),
        help="comma-separated, of: " + ", ".join(WORKERS) + " (default: all); "
        "torch-native is the plain PyTorch loop and also measures the matmul peak",
    )
    parser.add_argument(
        "--no-torch-compile",
        action="store_true",
        help="on the torch backend, measure eager only (torch.compile takes minutes "
        "to compile on a small CPU)",
    )
    parser.add_argument(
        "--max-isa",
        choices=sorted(ISA_CAPS),
        help="cap the vector instructions oneDNN, XLA and torch's kernels choose "
        "at run time (a stand-in for a CPU without AVX-512: the cores, clock and "
        "caches stay this machine's)",
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--infer-batch", type=int, default=1000)
    parser.add_argument("--matmul-n", type=int, default=2048)
    parser.add_argument(
        "--matmul-reps", type=int, help="products per measurement (default 10; quick 2)"
    )
    parser.add_argument(
        "--out", type=Path, default=HERE, help="where results.md/.json go"
    )
    parser.add_argument(
        "--reanalyze",
        action="store_true",
        help="measure nothing: redo the analysis of OUT/results.json and rewrite "
        "it and results.md",
    )
    args = parser.parse_args(argv)
    defaults = {
        "repeats": (5, 2),
        "steps": (20, 3),
        "layer_reps": (30, 3),
        "infer_steps": (5, 1),
        "warmup": (5, 1),
        "matmul_reps": (10, 2),
    }
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - set(WORKERS)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {WORKERS}")
    return args


def run(args: argparse.Namespace, argv: Sequence[str] | None) -> dict[str, Any]:
    """Measures as `args` says; returns the report `results.json` holds."""
    start = time.perf_counter()
    load_start = machine.load_average()
    log_dir = HERE / "logs"
    log_dir.mkdir(exist_ok=True)
    print(
        f"starting workers: {', '.join(args.backends)} (logs in {log_dir})", flush=True
    )
    workers, rates, kinds, profiles = measure(args, log_dir)
    command = "python -m benchmarks.run " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command.strip(),
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("out", "reanalyze")
        },
        "machine": {**machine.describe(), "max_isa": args.max_isa},
        "load_start": load_start,
        "load_end": machine.load_average(),
        "wall_seconds": time.perf_counter() - start,
        "workers": workers,
        "profiles": profiles,
        **analyze(rates, kinds, workers),
    }


def reanalyzed(path: Path) -> dict[str, Any]:
    """The report in `path` (a `results.json`), its analysis done again."""
    report = json.loads(path.read_text())
    results = report["results"]
    report.update(
        analyze(
            {name: summary["values"] for name, summary in results.items()},
            {
                name: {"device": summary["device"], "unit": summary["unit"]}
                for name, summary in results.items()
            },
            report["workers"],
        )
    )
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """Measures (or reanalyzes) and writes `results.json` and `results.md`."""
    args = parse_args(argv)
    report = (
        reanalyzed(args.out / "results.json") if args.reanalyze else run(args, argv)
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "results.md").write_text(markdown.render(report))

    print()
    for name, target in TARGETS.items():
        rows = ", ".join(
            f"{row['backend']} {markdown.shown_ratio(row, target.cost)}"
            + ("" if row["counted"] else " (not counted)")
            for row in report["targets"][name]
        )
        print(
            f"{name} {markdown.verdict(report['verdicts'][name])}: "
            f"{target.description} [{rows}]"
        )
    print(
        f"\nwrote {args.out / 'results.md'} and results.json "
        f"(measurements of {report['wall_seconds'] / 60:.1f} min)"
    )


if __name__ == "__main__":
    main()
