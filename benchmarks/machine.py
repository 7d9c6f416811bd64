"""The machine a benchmark runs on, and how busy it is, for the record."""

from __future__ import annotations

import os
import platform
from typing import Any

from pipeline.core.environment import cpu_flags, cpu_name


def describe() -> dict[str, Any]:
    """Platform, Python, CPU model and core counts, and memory of this machine."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
    }
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])  # MemTotal
            info["memory_gib"] = round(kib / 2**20, 1)
    except OSError:
        pass
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    # TensorFlow turns oneDNN on by default only on CPUs with AVX-512, so this says
    # which default a run measured.
    flags = cpu_flags()
    if flags is not None:
        info["avx512f"] = flags["avx512f"]
    return info


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the OS has none."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
