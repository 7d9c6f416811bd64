"""Op tables from TensorFlow's and JAX's profilers, in the spirit of
torch.profiler's: the ops that take the most time of their own in a few
training steps.

Both profilers write an XSpace protobuf (`<host>.xplane.pb`): planes (the host
CPU's is `/host:CPU`), each of lines (threads) of timed events, which name
their metadata (`plane.event_metadata[id]`) and may carry stats. On a CPU the
ops are two kinds of event:

- TensorFlow's executor ops (graph mode), named `scope/node:OpType` with the
  op type as the metadata's display name; the scope names the layer, e.g.
  `StatefulPartitionedCall/cnn_1/batch_norm_1/Mean:Mean`.
- XLA's thunks (JAX, and TensorFlow with `jit_compile=True`), which carry an
  `hlo_op` stat: the HLO instruction run, a fusion (`subtract_divide_fusion.2`,
  its name made of the kinds of op it fuses) or a single op (`dot.3`,
  `wrapped_reduce-window.1`).

Everything else (Python calls, the runtime's wrappers, waits) is left out.
An op's own time is its duration less that of the events nested inside it on
the same line.
"""

from __future__ import annotations

import contextlib
import importlib.util
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

PICOSECONDS = 1e-12


class OpTime(NamedTuple):
    """An op's time of its own, summed over its `count` runs."""

    name: str
    seconds: float
    count: int


def xplane_pb2() -> ModuleType:
    """The XSpace message classes that TensorFlow's wheel bundles, loaded from
    their file: importing them as `tensorflow.tsl...` would import (and start)
    all of TensorFlow, which the JAX worker has no other use for."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "Reading a profile needs TensorFlow's xplane_pb2; tensorflow is not "
            "installed."
        )
    path = Path(spec.submodule_search_locations[0], "tsl/profiler/protobuf")
    module_spec = importlib.util.spec_from_file_location(
        "benchmarks_xplane_pb2", path / "xplane_pb2.py"
    )
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def op_name(plane: Any, event: Any) -> str | None:
    """The op `event` (of `plane`, an XPlane) runs, or None if it runs none: the
    HLO instruction of an XLA thunk, or the `node:OpType` of a TensorFlow op."""
    for stat in event.stats:
        if plane.stat_metadata[stat.metadata_id].name == "hlo_op":
            if stat.WhichOneof("value") == "ref_value":
                return plane.stat_metadata[stat.ref_value].name
            return stat.str_value
    metadata = plane.event_metadata[event.metadata_id]
    _, colon, op_type = metadata.name.rpartition(":")
    if colon and op_type and op_type == metadata.display_name:
        return metadata.name
    return None


def self_times(events: Iterable[tuple[int, int]]) -> list[int]:
    """Each event's duration less those of the events nested inside it, for
    events `(offset, duration)` of one line (one thread, so that events nest
    or follow each other), in picoseconds, in the order given."""
    events = list(events)
    # Starts in order, an enclosing event before the events it encloses.
    order = sorted(range(len(events)), key=lambda i: (events[i][0], -events[i][1]))
    own = [duration for _, duration in events]
    open_events: list[int] = []  # Indices, each nested in the one before.
    for i in order:
        offset, duration = events[i]
        while open_events and offset >= sum(events[open_events[-1]]):
            open_events.pop()
        if open_events:
            own[open_events[-1]] -= duration
        open_events.append(i)
    return own


def op_times(space: Any) -> list[OpTime]:
    """The ops of `space` (an XSpace) by time of their own, most first (ties by
    name), each summed over its runs on every thread of every plane."""
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    for plane in space.planes:
        for line in plane.lines:
            events = list(line.events)
            own = self_times((e.offset_ps, e.duration_ps) for e in events)
            for event, picoseconds in zip(events, own, strict=True):
                name = op_name(plane, event)
                if name is not None:
                    seconds[name] = seconds.get(name, 0.0) + picoseconds * PICOSECONDS
                    counts[name] = counts.get(name, 0) + 1
    return by_self_time(OpTime(name, seconds[name], counts[name]) for name in seconds)


def by_self_time(rows: Iterable[OpTime]) -> list[OpTime]:
    """`rows` most self time first, ties by name: the order of every op table."""
    return sorted(rows, key=lambda row: (-row.seconds, row.name))


def render(rows: list[OpTime], limit: int = 10) -> str:
    """A fixed-width table of the first `limit` of `rows` (sorted as `op_times`
    sorts them): time of their own in ms, and % of all rows' time."""
    total = sum(row.seconds for row in rows)
    shown = rows[:limit]
    width = max([len("Op"), *(len(row.name) for row in shown)])
    lines = [f"{'Op':<{width}}  {'Self ms':>9}  {'Self %':>6}  {'Calls':>6}"]
    lines.append("-" * len(lines[0]))
    for row in shown:
        share = 100 * row.seconds / total if total else 0.0
        lines.append(
            f"{row.name:<{width}}  {1000 * row.seconds:>9.2f}  {share:>5.1f}%  "
            f"{row.count:>6}"
        )
    lines.append(f"Self time of all {len(rows)} ops: {1000 * total:.2f} ms")
    return "\n".join(lines)


def read_profiles(log_dir: Path) -> list[OpTime]:
    """The ops of every XSpace the profilers wrote under `log_dir`, merged."""
    pb2 = xplane_pb2()
    merged = pb2.XSpace()
    for path in sorted(log_dir.rglob("*.xplane.pb")):
        merged.MergeFromString(path.read_bytes())
    return op_times(merged)


@contextlib.contextmanager
def _profiler(backend: str, log_dir: str) -> Any:
    """TensorFlow's or JAX's profiler, writing into `log_dir` while open."""
    if backend == "tensorflow":
        import tensorflow as tf

        tf.profiler.experimental.start(log_dir)
        try:
            yield
        finally:
            tf.profiler.experimental.stop()
    elif backend == "jax":
        import jax

        options = jax.profiler.ProfileOptions()
        options.python_tracer_level = 0  # One event per Python call: not ops.
        with jax.profiler.trace(log_dir, profiler_options=options):
            yield
    else:
        raise ValueError(f"No XSpace profiler on backend {backend!r}.")


def profile(backend: str, run: Callable[[], Any]) -> list[OpTime] | None:
    """The ops (`op_times`) `run` runs, profiled on `backend` ("tensorflow" or
    "jax"), or None if the trace holds no op or TensorFlow, whose message
    classes read it, is not installed (a JAX-only machine)."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    with tempfile.TemporaryDirectory() as log_dir:
        with _profiler(backend, log_dir):
            run()
        rows = read_profiles(Path(log_dir))
    return rows or None
