"""What BN adds to a training step: the op profiles of the same `fit` of
`bnk.CNN` with and without BN (`benchmarks.worker.op_rows`), compared by op
kind.

Op names do not match one to one between the two models, so ops are compared
by a kind derived from the name (`op_kind`):

- torch: the name as torch.profiler gives it (`aten::mul`,
  `aten::native_batch_norm_backward`): an aten op is the same op in any model.
  Under torch.compile, a compiled graph's call (`## Call CompiledFxGraph <hash>
  ##`) and a compiled region (`Torch-Compiled Region: 38/0`) lose their hash or
  number, which name one program of one model: `## Call CompiledFxGraph ##`.
- TensorFlow's executor ops (graph mode), named `scope/node:OpType`: the op
  type (`_MklNativeFusedConv2D`, `Sum`, `Mul`), since node names are numbered
  per graph (`Sum_3`) and scopes name the model. An op inside a BN layer's
  scope (`.../bn1/...`, `.../bn2_1/...`: `bnk.CNN` names its BN layers `bn1`,
  `bn2`; its gradient under `gradient_tape/.../bn1/...`) is marked as the BN
  layer's: `Mul (BN layer)`. The closed-form gradient's ops run outside any
  layer's scope (`StatefulPartitionedCall/mul_9:Mul`), so they count under
  their bare type, as do the optimizer's updates of BN's `gamma` and `beta`.
- XLA (JAX, and TensorFlow's xla mode): the HLO instruction without its
  per-program `.N` suffix (`ynn_fusion`, `wrapped_reduce-window`,
  `broadcast_subtract_fusion`); a fusion's name lists the kinds of op it fuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import NamedTuple

from benchmarks.xplane import OpTime

# A BN layer's scope in a TensorFlow op name: `bnk.CNN`'s `bn1`, `bn2`, with
# the `_1` Keras appends to a scope it has used before.
BN_SCOPE = re.compile(r"(^|/)bn\d+(_\d+)?/")
XLA_NUMBER = re.compile(r"\.\d+$")
# torch.compile's per-program names: a compiled graph's hash, a region's number.
TORCH_PROGRAM = re.compile(r"(CompiledFxGraph) \w+|(Torch-Compiled Region): [\d/]+")


def op_kind(backend: str, name: str) -> str:
    """The kind of the op `name` profiled on `backend`, as the module's
    docstring defines it per backend."""
    if backend == "torch":
        return TORCH_PROGRAM.sub(lambda match: match.group(1) or match.group(2), name)
    scope, colon, op_type = name.rpartition(":")
    if colon:  # A TensorFlow executor op.
        return f"{op_type} (BN layer)" if BN_SCOPE.search(scope) else op_type
    return XLA_NUMBER.sub("", name)


class AddedOp(NamedTuple):
    """An op kind's growth per training step: self seconds and runs."""

    kind: str
    seconds: float
    calls: float


class AddedByBn(NamedTuple):
    """What BN adds to one training step: `ops`, the kinds whose time or runs
    grew, most added time first; and the step's op runs and op self seconds
    in all, each `(with BN, without BN)`."""

    ops: list[AddedOp]
    runs: tuple[float, float]
    seconds: tuple[float, float]


def _by_kind(
    rows: Iterable[OpTime], kind: Callable[[str], str]
) -> dict[str, tuple[float, int]]:
    """`rows` merged by `kind` of their names: summed seconds and runs."""
    merged: dict[str, tuple[float, int]] = {}
    for row in rows:
        key = kind(row.name)
        seconds, count = merged.get(key, (0.0, 0))
        merged[key] = (seconds + row.seconds, count + row.count)
    return merged


def added_by_bn(
    with_bn: list[OpTime],
    without: list[OpTime],
    kind: Callable[[str], str],
    steps: int,
) -> AddedByBn:
    """The op kinds (`kind` of an op's name, e.g. `functools.partial(op_kind,
    backend)`) whose self time or runs grew from `without` to `with_bn`, two
    profiles of `steps` training steps each, per step, most added time first
    (ties by kind); and both profiles' totals per step."""
    before, after = _by_kind(without, kind), _by_kind(with_bn, kind)
    ops = []
    for name, (seconds, count) in after.items():
        old_seconds, old_count = before.get(name, (0.0, 0))
        if seconds > old_seconds or count > old_count:
            extra_seconds, extra_calls = seconds - old_seconds, count - old_count
            ops.append(AddedOp(name, extra_seconds / steps, extra_calls / steps))
    ops.sort(key=lambda op: (-op.seconds, op.kind))

    def per_step(rows: list[OpTime]) -> tuple[float, float]:
        return (
            sum(row.count for row in rows) / steps,
            sum(row.seconds for row in rows) / steps,
        )

    (runs_with, seconds_with), (runs_without, seconds_without) = (
        per_step(with_bn),
        per_step(without),
    )
    return AddedByBn(ops, (runs_with, runs_without), (seconds_with, seconds_without))
