"""A ResNet50 converted by `bnk.replace_batch_norm` against the original, per backend:
images/s of a training step, in interleaved rounds.

    .venv/bin/python -m benchmarks.swap [--rounds 5] [--steps 10] [--batch 16]

`keras.applications.ResNet50(weights=None)` (53 BatchNormalization layers) on
64x64x3 synthetic images, 10 classes, Adam, each backend in Keras's default
compile mode (TensorFlow: a tf.function with oneDNN on; JAX: XLA; torch: eager),
against the same network after `bnk.replace_batch_norm` (the same weights). As
`benchmarks.run` does: one worker process per backend builds, compiles and warms
up both models, then the parent asks for one measurement of each configuration in
turn, round after round (the starting point rotating), times the second epoch of a
two-epoch `fit` (`benchmarks.worker.steady_state_clock`), and pairs the ratio
converted / original round by round. The goal is bnk's speed target
(`benchmarks.analysis.TARGETS["bnk_vs_keras_bn"]`): the bnk step at least 1.05x
Keras's. Writes benchmarks/swap.json and benchmarks/swap.md (`--out` elsewhere);
worker logs go to benchmarks/logs/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks import machine
from benchmarks.analysis import GOALS, backend_of, paired, summarize
from benchmarks.runner import JsonLinesWorker, worker_environment

if TYPE_CHECKING:  # Imported for real only in a worker, once KERAS_BACKEND is set.
    import keras

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKERS = ("tensorflow-onednn-on", "jax", "torch")
LABELS = ("original", "converted")
CLASSES = 10
GOAL = GOALS["bnk_vs_keras_bn"]


def model_pair(size: int, seed: int = 0) -> tuple[keras.Model, keras.Model]:
    """ResNet50 (weights=None) on `size`x`size`x3 images, 10 classes, and its copy
    with every BatchNormalization a bnk.BatchNorm; both compiled with Adam in
    Keras's default compile mode."""
    import keras

    import bnk

    keras.utils.set_random_seed(seed)
    original = keras.applications.ResNet50(
        weights=None, input_shape=(size, size, 3), classes=CLASSES
    )
    converted = bnk.replace_batch_norm(original)
    for model in (original, converted):
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(),
        )
    return original, converted


def fit_seconds(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch: int, steps: int
) -> float:
    """Seconds of `steps` training steps: the second epoch of a two-epoch fit."""
    from benchmarks.worker import steady_state_clock

    clock = steady_state_clock()
    model.fit(
        x[: 2 * batch * steps],
        y[: 2 * batch * steps],
        batch_size=batch,
        steps_per_epoch=steps,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[clock],
    )
    return clock.seconds


def serve(args: argparse.Namespace) -> None:
    """The worker: builds and warms up both models, says so, then answers each
    `{"run": LABEL}` line on stdin with `{"seconds": s, "images": n}`."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the libraries print goes to stderr
    import keras

    rng = np.random.default_rng(args.seed)
    n = 2 * args.batch * args.steps
    x = rng.random((n, args.size, args.size, 3), dtype=np.float32)
    y = rng.integers(0, CLASSES, n)
    models = dict(zip(LABELS, model_pair(args.size, args.seed), strict=True))
    for model in models.values():
        for _ in range(2):  # compiles, then warms up
            fit_seconds(model, x, y, args.batch, args.warmup)
    info = {
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "jit_compile": models["original"].jit_compile,
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
    }
    protocol.write(json.dumps({"ready": True, "info": info}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        seconds = fit_seconds(models[request["run"]], x, y, args.batch, args.steps)
        message = {"seconds": seconds, "images": args.batch * args.steps}
        protocol.write(json.dumps(message) + "\n")


class Worker(JsonLinesWorker):
    """A `benchmarks.swap --worker` subprocess; its stderr goes to
    `log_dir / f"swap-{name}.log"`."""

    def __init__(self, name: str, args: argparse.Namespace, log_dir: Path) -> None:
        command = [sys.executable, "-m", "benchmarks.swap", "--worker", name]
        for option in ("rounds", "steps", "batch", "size", "warmup", "seed"):
            command += [f"--{option}", str(getattr(args, option))]
        env = worker_environment(name, None, dict(os.environ))
        super().__init__(name, command, env, log_dir / f"swap-{name}.log")
        self.info: dict[str, Any] = {}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every worker's two configurations in `args.rounds` interleaved rounds:
    `{"workers": {name: info}, "rates": {"name/label": [images/s per round]}}`."""
    log_dir = HERE / "logs"
    log_dir.mkdir(exist_ok=True)
    workers = [Worker(name, args, log_dir) for name in args.workers]
    rates: dict[str, list[float]] = {}
    try:
        for worker in workers:  # they build and compile in parallel
            worker.info = worker.receive()["info"]
            print(f"  {worker.name} ready", flush=True)
        order = [(w, label) for label in LABELS for w in workers]
        for r in range(args.rounds):
            shift = (r * len(order)) // args.rounds
            for worker, label in order[shift:] + order[:shift]:
                result = worker.ask({"run": label})
                rate = result["images"] / result["seconds"]
                rates.setdefault(f"{worker.name}/{label}", []).append(rate)
                print(f"  [{r + 1}/{args.rounds}] {worker.name} {label}: "
                      f"{rate:.1f} images/s", flush=True)
    finally:
        for worker in workers:
            worker.close()
    return {"workers": {w.name: w.info for w in workers}, "rates": rates}


def analyze(rates: dict[str, list[float]], workers: Sequence[str]) -> dict[str, Any]:
    """Per worker: each configuration's summary, and converted / original paired
    round by round, against `GOAL`."""
    rows = {}
    for name in workers:
        ratio = paired(rates, f"{name}/converted", f"{name}/original")
        rows[name] = {
            **{label: summarize(rates[f"{name}/{label}"]) for label in LABELS},
            "ratio": ratio,
            "pass": ratio["median"] >= GOAL,
        }
    return rows


def markdown(report: dict[str, Any]) -> str:
    """benchmarks/swap.md: the settings, the machine, one row per backend."""
    settings, described = report["settings"], report["machine"]
    lines = [
        "# A converted ResNet50 against the original",
        "",
        f"Run {report['date']} with `{report['command']}`: "
        "`keras.applications.ResNet50(weights=None)` (53 BatchNormalization layers) "
        f"on {settings['size']}x{settings['size']}x3 synthetic images, batch "
        f"{settings['batch']}, Adam, {settings['steps']} training steps per "
        f"measurement, median of {settings['rounds']} interleaved rounds, against "
        "the same network after `bnk.replace_batch_norm` (the same weights); each "
        "backend in Keras's default compile mode. Machine: "
        f"{described['cpu']} ({described['cpu_count']} cores); load average at "
        f"start {report['load_start']}, at end {report['load_end']}.",
        "",
        "| backend | compile | original images/s | converted images/s | "
        "converted / original | rounds | goal | verdict |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for name, row in report["rows"].items():
        info = report["workers"][name]
        mode = "jit" if info.get("jit_compile") else "no jit"
        ratio = row["ratio"]
        lines.append(
            f"| {name} | {mode} | {row['original']['median']:,.1f} | "
            f"{row['converted']['median']:,.1f} | {ratio['median']:.2f} | "
            f"{ratio['min']:.2f} – {ratio['max']:.2f} | {GOAL:.2f} | "
            f"{'PASS' if row['pass'] else 'MISS'} |"
        )
    lines += [
        "",
        "The goal is bnk's speed target (`benchmarks.analysis.TARGETS"
        "[\"bnk_vs_keras_bn\"]`): bnk's training step at least "
        f"{GOAL:.2f}x Keras's. Ratios are paired round by round.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10,
                        help="training steps per measurement")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="image height and width")
    parser.add_argument("--warmup", type=int, default=2,
                        help="steps of each of the two warm-up fits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", default=",".join(WORKERS),
                        help=f"comma-separated, of: {', '.join(WORKERS)}")
    parser.add_argument("--out", type=Path, default=HERE,
                        help="where swap.md and swap.json go")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.workers = [w.strip() for w in args.workers.split(",") if w.strip()]
    unknown = set(args.workers) - set(WORKERS)
    if unknown:
        parser.error(f"unknown workers {sorted(unknown)}; choose from {WORKERS}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        if backend_of(args.worker) != os.environ.get("KERAS_BACKEND"):
            raise RuntimeError(f"worker {args.worker} needs its KERAS_BACKEND set")
        serve(args)
        return
    start, load_start = time.perf_counter(), machine.load_average()
    measured = measure(args)
    report = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(
            ["python -m benchmarks.swap", *(sys.argv[1:] if argv is None else argv)]
        ).strip(),
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("worker", "out")
        },
        "machine": machine.describe(),
        "load_start": load_start,
        "load_end": machine.load_average(),
        "wall_seconds": time.perf_counter() - start,
        **measured,
        "rows": analyze(measured["rates"], args.workers),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "swap.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "swap.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
