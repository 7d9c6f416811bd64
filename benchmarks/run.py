"""Throughput of bnk on this machine: `python -m benchmarks.run [--quick]`.

Measures, with each backend in its own worker process (`benchmarks.worker`):

- training throughput (images/s, batch 64, Adam, synthetic MNIST-shaped data in
  memory) of `bnk.CNN` with `bnk.BatchNorm`, with `keras.layers.BatchNormalization`
  in its place, and without BN, on TensorFlow and JAX (XLA, Keras's
  `jit_compile=True`; TensorFlow also as a plain tf.function, Keras's default on a
  CPU) and torch (eager, and `torch.compile` through
  `jit_compile=True`);
- the same network as a plain PyTorch eager loop with `torch.nn.BatchNorm2d`;
- inference throughput (batch 1000) of `bnk.CNN` as it is and folded by
  `bnk.fold_batch_norm`;
- the float32 matrix-multiply peak (numpy, torch, and XLA on TensorFlow and JAX),
  and each throughput as a fraction of the limit it implies.

All workers build, compile and warm up first; then, for each of `--repeats`
rounds, the parent asks the workers for one measurement of each configuration in
turn (round-robin over workers, the starting point rotating each round), so
that slow drifts of a shared machine hit every configuration alike. It reports
medians and min-max spreads, ratios paired round by round, and PASS/MISS for the
targets of issue 6. Writes `benchmarks/results.md` and `benchmarks/results.json`;
worker logs go to `benchmarks/logs/`.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKERS = ("tensorflow", "jax", "torch", "torch-native")
KERAS_BACKENDS = ("tensorflow", "jax", "torch")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a tiny smoke run (numbers meaningless)"
    )
    parser.add_argument("--repeats", type=int, help="rounds (default 7; quick 2)")
    parser.add_argument(
        "--steps", type=int, help="training steps per measurement (default 50; quick 3)"
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
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--infer-batch", type=int, default=1000)
    parser.add_argument("--matmul-n", type=int, default=2048)
    parser.add_argument(
        "--matmul-reps", type=int, help="products per measurement (default 10; quick 2)"
    )
    parser.add_argument(
        "--out", type=Path, default=HERE, help="where results.md/.json go"
    )
    args = parser.parse_args(argv)
    defaults = {
        "repeats": (7, 2),
        "steps": (50, 3),
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


class Worker:
    """A `benchmarks.worker` subprocess, spoken to in JSON lines."""

    def __init__(self, name, args, log_dir):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="2",
            XLA_PYTHON_CLIENT_PREALLOCATE="false",  # jax on a GPU: take what it needs.
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
            ),
        )
        if name in KERAS_BACKENDS:
            env["KERAS_BACKEND"] = name
        command = [sys.executable, "-m", "benchmarks.worker", "--backend", name]
        for option in (
            "batch",
            "steps",
            "infer_batch",
            "infer_steps",
            "warmup",
            "matmul_n",
            "matmul_reps",
        ):
            command += ["--" + option.replace("_", "-"), str(getattr(args, option))]
        if args.no_torch_compile:
            command.append("--no-torch-compile")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self.info = self.configs = None

    def receive(self):
        line = self.process.stdout.readline()
        if not line:
            tail = self.log_path.read_text().splitlines()[-20:]
            raise RuntimeError(
                f"worker {self.name} ended (exit {self.process.wait()}); "
                f"last lines of {self.log_path}:\n" + "\n".join(tail)
            )
        return json.loads(line)

    def wait_ready(self):
        message = self.receive()
        self.info, self.configs = message["info"], message["configs"]

    def measure(self, config):
        self.process.stdin.write(json.dumps({"run": config}) + "\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"quit": True}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()


def interleaved_order(workers):
    """Round-robin over workers: one config of each worker in turn."""
    queues = [[(w, c) for c in w.configs] for w in workers]
    order = []
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop(0))
    return order


def machine():
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])  # MemTotal
            info["memory_gib"] = round(kib / 2**20, 1)
    except OSError:
        pass
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    return info


def load_average():
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def summarize(values):
    median = statistics.median(values)
    return {
        "median": median,
        "min": min(values),
        "max": max(values),
        "spread": (max(values) - min(values)) / median if median else None,
        "values": values,
    }


def paired(raw, numerator, denominator):
    """Round-by-round ratios of two configurations' rates, summarized."""
    return summarize([a / b for a, b in zip(raw[numerator], raw[denominator])])


def analyze(raw, workers):
    """Summaries, fractions of the matmul limit, and the issue's targets."""
    summary = {name: summarize(rates) for name, rates in raw.items()}
    kinds = {name: kind for name, (kind, _) in CONFIG_META.items()}
    peaks = {}  # device -> best median matmul rate (FLOP/s) measured on it
    for name, s in summary.items():
        if name.startswith("peak/"):
            device = kinds[name]
            peaks[device] = max(peaks.get(device, 0.0), s["median"])
    flop = next(
        (
            (w.info["flop_forward_per_image"], w.info["flop_train_per_image"])
            for w in workers
            if "flop_train_per_image" in w.info
        ),
        None,
    )
    for name, s in summary.items():
        device = kinds[name]
        if flop and device in peaks and not name.startswith("peak/"):
            per_image = flop[1] if name.startswith("train/") else flop[0]
            s["fraction_of_peak"] = s["median"] * per_image / peaks[device]

    # Where a backend ran in two compile modes (torch: eager, torch.compile;
    # tensorflow: graph, xla), the
    # targets count the faster one, as a user would keep it; the other is shown.
    kept = {
        "train": kept_modes(summary, "train", "bnk.BatchNorm"),
        "infer": kept_modes(summary, "infer", "unfolded"),
    }
    targets = {"a": [], "b": [], "c": []}
    for name in raw:
        parts = name.split("/")
        if len(parts) != 4:
            continue
        task, backend, label, mode = parts
        if task == "train" and label == "bnk.BatchNorm":
            other, key, goal = "keras.BatchNormalization", "a", 1.0
        elif task == "infer" and label == "folded":
            other, key, goal = "unfolded", "c", 1.3
        else:
            continue
        other = f"{task}/{backend}/{other}/{mode}"
        if other in raw:
            targets[key].append(
                {
                    "backend": f"{backend} ({mode})",
                    "ratio": paired(raw, name, other),
                    "goal": goal,
                    "counted": kept[task][backend] == mode,
                }
            )
    native = "train/torch-native/BatchNorm2d/eager"
    keras_bnk = [
        n
        for n in raw
        if n.startswith("train/")
        and "/bnk.BatchNorm/" in n
        and n.split("/")[1] in KERAS_BACKENDS
    ]
    if native in raw and keras_bnk:
        best = max(keras_bnk, key=lambda n: summary[n]["median"])
        _, backend, _, mode = best.split("/")
        targets["b"].append(
            {
                "backend": f"{backend} ({mode}) vs plain PyTorch",
                "ratio": paired(raw, best, native),
                "goal": 1.0,
                "counted": True,
            }
        )
    verdicts = {}
    for key, rows in targets.items():
        for row in rows:
            row["pass"] = row["ratio"]["median"] >= row["goal"]
        counted = [row["pass"] for row in rows if row["counted"]]
        verdicts[key] = all(counted) if counted else None
    return summary, peaks, flop, targets, verdicts


def kept_modes(summary, task, label):
    """backend -> the compile mode in which `task/backend/label` is fastest."""
    best = {}
    for name, s in summary.items():
        parts = name.split("/")
        if len(parts) == 4 and parts[0] == task and parts[2] == label:
            backend = parts[1]
            if backend not in best or s["median"] > summary[best[backend]]["median"]:
                best[backend] = name
    return {backend: name.split("/")[3] for backend, name in best.items()}


CONFIG_META = {}  # name -> (device, unit), filled as results come in

TARGET_TEXT = {
    "a": "bnk.BatchNorm training step at least as fast as "
    "keras.layers.BatchNormalization, on every backend in its faster compile mode "
    "(bnk / keras >= 1)",
    "b": "fastest Keras backend (bnk.CNN + bnk.BatchNorm) trains at least as fast "
    "as the plain PyTorch loop (ratio >= 1)",
    "c": "folded inference at least 1.3x unfolded, on every backend in its faster "
    "compile mode "
    "(folded / unfolded >= 1.3)",
}


def verdict(value):
    return "n/a" if value is None else "PASS" if value else "MISS"


def fmt_rate(s, unit):
    if unit == "flop":
        return (
            f"{s['median'] / 1e9:,.1f}",
            f"{s['min'] / 1e9:,.1f} – {s['max'] / 1e9:,.1f}",
        )
    return f"{s['median']:,.0f}", f"{s['min']:,.0f} – {s['max']:,.0f}"


def write_markdown(path, report):
    m = report["machine"]
    lines = [
        "# bnk throughput on this machine",
        "",
        (
            f"Run {report['date']} with `{report['command']}` "
            f"({report['settings']['repeats']} interleaved rounds; "
            f"{report['settings']['steps']} training steps of batch "
            f"{report['settings']['batch']} and {report['settings']['infer_steps']} "
            f"inference batches of {report['settings']['infer_batch']} per measurement; "
            f"{report['wall_seconds'] / 60:.1f} min in all)."
        ),
        "",
        *(
            [
                "**A `--quick` smoke run: too few steps and rounds for the "
                + "numbers to mean anything.**",
                "",
            ]
            if report["settings"]["quick"]
            else []
        ),
        "## Machine",
        "",
        (
            f"- CPU: {m.get('cpu')}, {m.get('cpu_count')} logical cores "
            f"({m.get('usable_cpus', '?')} usable), {m.get('memory_gib', '?')} GiB memory"
        ),
        f"- {m['platform']}, Python {m['python']}",
        (
            f"- load average (1, 5, 15 min) at start {report['load_start']}, "
            f"at end {report['load_end']} (other work on the machine makes numbers noisy)"
        ),
    ]
    for name, info in report["workers"].items():
        versions = ", ".join(
            f"{k} {v}"
            for k, v in info.items()
            if k in ("keras", "tensorflow", "jax", "torch", "numpy", "torch_threads")
        )
        lines.append(
            f"- {name}: {versions}; device: {info['device']} ({info['device_name']})"
        )
    flop = report["flop_per_image"]
    if flop:
        lines.append(
            f"- bnk.CNN cost, counted from its Conv2D/Dense layers: "
            f"{flop[0] / 1e6:.1f} MFLOP per image forward, {flop[1] / 1e6:.1f} MFLOP "
            "per training image (forward + input and weight gradients)"
        )
    lines += [
        "",
        (
            "Each measurement times a fixed number of steps after warm-up (compile); "
            "Keras timings run from the first batch's start to the end of "
            "`fit`/`predict` (per-call setup left out). Medians over the rounds, "
            "min – max beside; ratios are paired round by round."
        ),
        "",
    ]
    rows = report["results"]
    peak = [n for n in rows if n.startswith("peak/")]
    if peak:
        lines += [
            f"## float32 matrix-multiply peak ({report['settings']['matmul_n']}²)",
            "",
            "| | device | GFLOP/s | min – max |",
            "| --- | --- | ---: | --- |",
        ]
        for n in peak:
            med, rng = fmt_rate(rows[n], "flop")
            lines.append(f"| {n.split('/')[1]} | {CONFIG_META[n][0]} | {med} | {rng} |")
        lines += [
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
    for kind, title in (
        ("train", "Training throughput (images/s, batch 64, Adam)"),
        ("infer", "Inference throughput (images/s, batch 1000)"),
    ):
        names = [n for n in rows if n.startswith(kind + "/")]
        if not names:
            continue
        lines += [
            f"## {title}",
            "",
            "| backend | BN | compile | images/s | min – max | spread | of matmul limit |",
            "| --- | --- | --- | ---: | --- | ---: | ---: |",
        ]
        for n in sorted(names):
            _, backend, bn, mode = n.split("/")
            s = rows[n]
            med, rng = fmt_rate(s, "images")
            frac = s.get("fraction_of_peak")
            frac = f"{100 * frac:.1f}%" if frac is not None else "–"
            lines.append(
                f"| {backend} | {bn} | {mode} | {med} | {rng} | "
                f"{100 * s['spread']:.0f}% | {frac} |"
            )
        lines.append("")
    lines += ["## Targets (issue 6)", ""]
    for key in "abc":
        lines.append(
            f"- ({key}) **{verdict(report['verdicts'][key])}**: {TARGET_TEXT[key]}"
        )
        for row in report["targets"][key]:
            r = row["ratio"]
            note = "" if row["counted"] else " (not counted: the other mode is faster)"
            lines.append(
                f"  - {row['backend']}: {r['median']:.2f} "
                f"(rounds {r['min']:.2f} – {r['max']:.2f}) "
                f"{'PASS' if row['pass'] else 'MISS'}{note}"
            )
    lines.append("")
    path.write_text("\n".join(lines))


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    load_start = load_average()
    log_dir = HERE / "logs"
    log_dir.mkdir(exist_ok=True)
    print(
        f"starting workers: {', '.join(args.backends)} (logs in {log_dir})", flush=True
    )
    workers = [Worker(name, args, log_dir) for name in args.backends]
    raw = {}
    try:
        for w in workers:  # They build and compile in parallel.
            w.wait_ready()
            print(
                f"  {w.name} ready after {time.perf_counter() - start:.0f} s: "
                f"{len(w.configs)} configurations on {w.info['device_name']}",
                flush=True,
            )
        order = interleaved_order(workers)
        for r in range(args.repeats):
            shift = (r * len(order)) // args.repeats
            for w, config in order[shift:] + order[:shift]:
                result = w.measure(config)
                rate = result["work"] / result["seconds"]
                raw.setdefault(config, []).append(rate)
                CONFIG_META[config] = (result["device"], result["unit"])
                shown = (
                    f"{rate / 1e9:.1f} GFLOP/s"
                    if result["unit"] == "flop"
                    else f"{rate:.0f} images/s"
                )
                print(f"  [{r + 1}/{args.repeats}] {config}: {shown}", flush=True)
    finally:
        for w in workers:
            w.close()

    summary, peaks, flop, targets, verdicts = analyze(raw, workers)
    command = "python -m benchmarks.run " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    report = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command.strip(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "machine": machine(),
        "load_start": load_start,
        "load_end": load_average(),
        "wall_seconds": time.perf_counter() - start,
        "workers": {w.name: w.info for w in workers},
        "flop_per_image": flop,
        "peak_flop_per_s": peaks,
        "results": summary,
        "targets": targets,
        "verdicts": verdicts,
    }
    for name, s in summary.items():
        s["device"], s["unit"] = CONFIG_META[name]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(args.out / "results.md", report)

    print()
    for key in "abc":
        rows = ", ".join(
            f"{row['backend']} {row['ratio']['median']:.2f}"
            + ("" if row["counted"] else " (not counted)")
            for row in targets[key]
        )
        print(f"({key}) {verdict(verdicts[key])}: {TARGET_TEXT[key]} [{rows}]")
    print(
        f"\nwrote {args.out / 'results.md'} and results.json "
        f"in {report['wall_seconds'] / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
