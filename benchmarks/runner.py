"""The measuring side of the benchmark: worker processes, asked in turn.

Each backend runs in its own `benchmarks.worker` process. All workers build,
compile and warm up first; then, for each round, the runner asks the workers
for one measurement of each configuration in turn (round-robin over workers,
the starting point rotating each round), so that slow drifts of a shared
machine hit every configuration alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.analysis import ONEDNN, backend_of

ROOT = Path(__file__).resolve().parent.parent
# The command-line settings every worker gets as they are.
WORKER_OPTIONS = (
    "batch",
    "steps",
    "infer_batch",
    "infer_steps",
    "warmup",
    "layer_reps",
    "matmul_n",
    "matmul_reps",
)


# `benchmarks.run --max-isa`: what each worker's environment gets so that every
# library that picks its vector instructions at run time (oneDNN in TensorFlow and
# torch, XLA's CPU compiler, torch's ATen kernels) stops at that instruction set.
ISA_CAPS = {
    "avx2": {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
    },
}


def worker_environment(
    name: str, max_isa: str | None, base: dict[str, str]
) -> dict[str, str]:
    """The environment of worker `name` (one of `WORKERS`): `base` (the parent's)
    with the backend, oneDNN's setting and the `ISA_CAPS` of `max_isa` (None:
    none) set; an `XLA_FLAGS` already in `base` is kept, the cap appended."""
    env = dict(
        base,
        TF_CPP_MIN_LOG_LEVEL="2",
        XLA_PYTHON_CLIENT_PREALLOCATE="false",  # jax on a GPU: take what it needs.
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")])),
    )
    if name != "torch-native":
        env["KERAS_BACKEND"] = backend_of(name)
    if name in ONEDNN:
        env["TF_ENABLE_ONEDNN_OPTS"] = ONEDNN[name]
    for variable, value in ISA_CAPS.get(max_isa, {}).items():
        if variable == "XLA_FLAGS" and base.get(variable):
            value = f"{base[variable]} {value}"
        env[variable] = value
    return env


class JsonLinesWorker:
    """A worker subprocess spoken to in JSON lines: one request a line on its stdin,
    one answer a line on its stdout.

    Args:
        name: what messages call it.
        command: its command line, run in the project's root.
        env: its environment.
        log_path: where its stderr goes.
    """

    def __init__(
        self, name: str, command: Sequence[str], env: dict[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def receive(self) -> dict[str, Any]:
        """The worker's next message; raises with its log's tail if it ended."""
        line = self.process.stdout.readline()
        if not line:
            tail = self.log_path.read_text().splitlines()[-20:]
            raise RuntimeError(
                f"worker {self.name} ended (exit {self.process.wait()}); "
                f"last lines of {self.log_path}:\n" + "\n".join(tail)
            )
        return json.loads(line)

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """The worker's answer to `request`."""
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self) -> None:
        """Asks the worker to quit, and kills it if it does not within a minute."""
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"quit": True}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()


class Worker(JsonLinesWorker):
    """A `benchmarks.worker` subprocess.

    Args:
        name: one of `WORKERS`: a Keras backend, TensorFlow with oneDNN on or
            off, or `torch-native`.
        args: the parsed command line of `benchmarks.run`; the worker gets
            its `WORKER_OPTIONS` and `no_torch_compile`, and `max_isa` decides
            its `ISA_CAPS`.
        log_dir: the worker's stderr goes to `log_dir / f"{name}.log"`.
    """

    def __init__(self, name: str, args: argparse.Namespace, log_dir: Path) -> None:
        env = worker_environment(name, args.max_isa, dict(os.environ))
        command = [sys.executable, "-m", "benchmarks.worker", "--backend", name]
        for option in WORKER_OPTIONS:
            command += ["--" + option.replace("_", "-"), str(getattr(args, option))]
        if args.no_torch_compile:
            command.append("--no-torch-compile")
        super().__init__(name, command, env, log_dir / f"{name}.log")
        self.info = self.configs = None

    def wait_ready(self) -> None:
        """Waits until the worker has built and warmed up its configurations."""
        message = self.receive()
        self.info, self.configs = message["info"], message["configs"]

    def measure(self, config: str) -> dict[str, Any]:
        """One measurement of `config`: seconds, work, its unit and device."""
        return self.ask({"run": config})

    def profile(self, config: str) -> dict[str, Any] | None:
        """The ops of a few training steps of `config` and of its model with no
        BN (`benchmarks.worker.KerasBench.profile`), or None."""
        return self.ask({"profile": config})["profile"]


def interleaved_order(workers: Sequence[Worker]) -> list[tuple[Worker, str]]:
    """Round-robin over workers: one config of each worker in turn."""
    queues = [[(w, c) for c in w.configs] for w in workers]
    order = []
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop(0))
    return order


def measure(
    args: argparse.Namespace, log_dir: Path
) -> tuple[
    dict[str, dict[str, Any]],
    dict[str, list[float]],
    dict[str, dict[str, str]],
    dict[str, dict[str, Any]],
]:
    """Starts a worker per backend and measures every configuration in rounds,
    then profiles the training steps the workers offer to profile.

    Progress goes to stdout as it happens.

    Args:
        args: the parsed command line of `benchmarks.run`: `backends` (names
            of `WORKERS`), `repeats` (rounds) and the workers' settings.
        log_dir: an existing folder for the workers' logs.

    Returns:
        `(workers, rates, kinds, profiles)`: `workers` maps each worker's name
        to what it reports about itself (versions, device, FLOP per image,
        bytes saved for the backward pass); `rates` maps each configuration to
        its rate (images/s or FLOP/s) in each round, in round order; `kinds`
        maps each configuration to its `device` ("cpu" or "gpu") and `unit`
        ("images" or "flop"); `profiles` maps a training configuration to its
        ops and those of the same steps with no BN, where the worker's backend
        gives them.
    """
    start = time.perf_counter()
    workers = [Worker(name, args, log_dir) for name in args.backends]
    rates, kinds, profiles = {}, {}, {}
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
                rates.setdefault(config, []).append(rate)
                kinds[config] = {"device": result["device"], "unit": result["unit"]}
                shown = (
                    f"{rate / 1e9:.1f} GFLOP/s"
                    if result["unit"] == "flop"
                    else f"{rate:.0f} images/s"
                )
                print(f"  [{r + 1}/{args.repeats}] {config}: {shown}", flush=True)
        for w in workers:
            for config in w.info.get("profiles", []):
                profile = w.profile(config)
                if profile:
                    profiles[config] = profile
                    print(f"  profiled {config}", flush=True)
    finally:
        for w in workers:
            w.close()
    return {w.name: w.info for w in workers}, rates, kinds, profiles
