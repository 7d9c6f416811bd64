"""What ran a stage: backend, library versions and device, for metrics and reports."""

import importlib.metadata
import os
import platform
import subprocess

BACKEND_PACKAGES = {"tensorflow": "tensorflow-cpu", "jax": "jax", "torch": "torch"}


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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

    def git(*arguments):
        return subprocess.run(
            ["git", *arguments], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=10", "HEAD")
        changed = git("status", "--porcelain", "--", *CODE)
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"{commit} plus uncommitted changes" if changed else commit


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
