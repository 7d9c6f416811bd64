"""What ran a stage: backend, library versions and device, for metrics and reports;
and TensorFlow's oneDNN setting, which the pipeline chooses before TensorFlow starts.
"""

import hashlib
import importlib
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Literal, TypedDict

from pipeline.core.errors import PipelineError

BACKEND_PACKAGES = {"tensorflow": "tensorflow-cpu", "jax": "jax", "torch": "torch"}


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpuinfo(field: str) -> str | None:
    """The first CPU's `field` in Linux's /proc/cpuinfo; None where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() == field:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what `platform` knows."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


#: The CPU features that decide how fast TensorFlow's CPU kernels run, and whether
#: TensorFlow turns oneDNN on by itself (it does where AVX-512 is).
CPU_FLAGS = ("avx2", "avx512f")


def cpu_flags() -> dict[str, bool] | None:
    """Which of CPU_FLAGS the CPU has (Linux's /proc/cpuinfo); None where unknown."""
    flags = _cpuinfo("flags")
    if flags is None:
        return None
    present = set(flags.split())
    return {flag: flag in present for flag in CPU_FLAGS}


#: TensorFlow's switch for its oneDNN kernels, read once when TensorFlow starts.
ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
#: Set beside ONEDNN when the pipeline chose its value, so that the processes a stage
#: starts (a restart under torchrun, a notebook's kernel), which inherit both, still
#: tell the pipeline's choice from the user's.
ONEDNN_CHOSEN = "BNK_ONEDNN_CHOSEN"
#: The values TensorFlow reads (any case); it takes anything else for unset.
ONEDNN_VALUES = {"1": True, "true": True, "0": False, "false": False}
X86_64 = ("x86_64", "amd64")


class OneDnnError(PipelineError, ValueError):
    """TF_ENABLE_ONEDNN_OPTS holds a value TensorFlow does not read."""


class OneDnn(TypedDict):
    """TensorFlow's oneDNN setting: on, off, or None (TensorFlow's own default), and
    who chose it."""

    enabled: bool | None
    chosen_by: Literal["user", "pipeline", "tensorflow"]


def choose_onednn(
    environ: MutableMapping[str, str], machine: str | None = None
) -> None:
    """Turn TensorFlow's oneDNN on in `environ` on an x86-64 CPU (`machine`, else
    this one's), unless the user set ONEDNN: their value wins.

    Measured on a 2-core x86-64 CPU without AVX-512, where TensorFlow leaves oneDNN
    off: the same training step 2.65x as fast with it on. With AVX-512 TensorFlow
    turns it on itself. Elsewhere TensorFlow's own default stays. Must run before
    TensorFlow is imported (pipeline.stages does it for every stage).
    """
    value = environ.get(ONEDNN, "")
    if value:
        if value.lower() not in ONEDNN_VALUES:
            raise OneDnnError(
                f"{ONEDNN}={value!r}: TensorFlow reads only 1, true, 0 or false "
                "(1: oneDNN on, 0: off; unset: the pipeline's choice)."
            )
        return
    if (machine or platform.machine()).lower() in X86_64:
        environ[ONEDNN] = environ[ONEDNN_CHOSEN] = "1"


def onednn_setting(environ: Mapping[str, str] = os.environ) -> OneDnn:
    """The oneDNN setting `environ` gives TensorFlow, and who chose it."""
    value = environ.get(ONEDNN, "")
    if not value:
        return {"enabled": None, "chosen_by": "tensorflow"}
    chosen_by = "pipeline" if environ.get(ONEDNN_CHOSEN) == value else "user"
    return {"enabled": ONEDNN_VALUES.get(value.lower()), "chosen_by": chosen_by}


def accelerator() -> tuple[str, str] | None:
    """`(kind, name)` of the accelerator the Keras backend computes on, or None."""
    # Keras is imported where it is used: the benchmarks' parent process reads
    # cpu_name() and must not start a backend.
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        first = jax.devices()[0]
        if first.platform != "cpu":
            kind = (
                "gpu" if first.platform in ("gpu", "cuda", "rocm") else first.platform
            )
            return kind, first.device_kind
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():  # Keras's torch backend then uses it.
            return "gpu", torch.cuda.get_device_name(0)
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return "gpu", details.get("device_name", gpus[0].name)
    return None


def device() -> str:
    """The accelerator the backend computes on, else the CPU and its core count."""
    found = accelerator()
    if found:
        return f"{found[0]}: {found[1]}"
    return f"cpu: {cpu_name()} ({os.cpu_count()} cores)"


CODE = ["bnk", "pipeline", "notebooks", "params.yaml", "dvc.yaml"]


def code_version() -> str:
    """The commit of the code that ran, marked if that code had uncommitted changes."""

    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", *arguments], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=10", "HEAD")
        changed = git("status", "--porcelain", "--", *CODE)
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"{commit} plus uncommitted changes" if changed else commit


#: The packages whose code decides what a training run computes.
CODE_PACKAGES = ("bnk", "pipeline")


def code_digest(packages: Sequence[str | Path] = CODE_PACKAGES) -> str:
    """A digest of every Python file of `packages` (names of importable packages,
    or folders), path and contents: two runs with the same digest ran the same code,
    committed or not."""
    digest = hashlib.sha256()
    for package in packages:
        root = Path(package)
        if not root.is_dir():
            root = Path(importlib.import_module(str(package)).__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root.parent).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def describe() -> dict[str, str]:
    import keras

    backend = keras.backend.backend()
    package = BACKEND_PACKAGES[backend]
    version = _version(package) or _version(backend)
    return {
        "backend": backend,
        "keras_version": keras.__version__,
        "backend_version": version,
        "python_version": platform.python_version(),
        "device": device(),
        "code_version": code_version(),
    }
