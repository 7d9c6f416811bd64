"""The aten op runs BN adds to one training step on torch eager: bnk's BatchNorm
(closed form and autodiff) against Keras's BatchNormalization, in `bnk.CNN` (the
seed's two-block network), Adam, batch 64.

Each aten op run pays torch's dispatch, whatever its size: on a GPU, where eager
torch waits on kernel launches, and on small CPU batches, the count sets BN's
cost. torch.profiler counts the runs (`benchmarks.worker.op_rows`) in the same
`fit` with each normalization and with none; the difference, per step, is what
BN adds. Counts, unlike times, do not depend on the machine's load.

    KERAS_BACKEND=torch python -m benchmarks.op_count [--out benchmarks]

writes op_count.json and op_count.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from benchmarks.analysis import CLOSED_FORM, KERAS_BN, NO_BN

HERE = Path(__file__).resolve().parent
#: bnk's closed form adds at most this fraction of the runs Keras's layer adds.
GOAL = 0.8
BATCH = 64
# Two epochs of this many steps: ops that run once per epoch or per `fit` are
# shared among the steps, and cancel out between a model and its twin without BN.
STEPS = 5


def aten_runs_per_step(
    normalization: Callable | None, batch: int = BATCH, steps: int = STEPS
) -> float:
    """The aten op runs per training step of `bnk.CNN(normalization=...)` in a
    `fit` of two epochs of `steps` steps of `batch` images, after one that
    builds and warms up."""
    import keras

    import bnk
    from benchmarks.worker import op_rows
    from bnk.cnn import INPUT_SHAPE
    from pipeline.core.models import compile_classifier

    keras.utils.set_random_seed(0)
    model = bnk.CNN(normalization=normalization)
    model.build((None, *INPUT_SHAPE))
    compile_classifier(model, keras.optimizers.Adam(1e-3), jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps, *INPUT_SHAPE), dtype=np.float32)
    y = rng.integers(0, 10, len(x))

    def fit() -> None:
        model.fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0)

    fit()
    rows = op_rows("torch", fit) or []
    return sum(row.count for row in rows if row.name.startswith("aten::")) / (2 * steps)


def added_by_bn(batch: int = BATCH, steps: int = STEPS) -> dict[str, float]:
    """Each normalization of `benchmarks.worker.normalizations` (by label) ->
    the aten op runs per training step it adds to the network without BN."""
    from benchmarks.worker import normalizations

    variants = normalizations()
    without = aten_runs_per_step(variants.pop(NO_BN), batch, steps)
    return {
        label: aten_runs_per_step(normalization, batch, steps) - without
        for label, normalization in variants.items()
    }


def verdict(added: Mapping[str, float]) -> str:
    """Whether bnk's closed form adds at most GOAL of what Keras's layer adds."""
    ours, theirs = added[CLOSED_FORM], added[KERAS_BN]
    ratio = ours / theirs
    outcome = "PASS" if ratio <= GOAL else "MISS"
    return (
        f"{outcome}: bnk's BatchNorm (closed form) adds {ours:.0f} aten op runs to "
        f"a training step, {ratio:.2f} of the {theirs:.0f} that Keras's "
        f"BatchNormalization adds (goal: at most {GOAL:g})."
    )


def markdown(added: Mapping[str, float], versions: Mapping[str, str]) -> str:
    """op_count.md: the counts, the verdict, and what produced them."""
    rows = [
        f"| {label} | {runs:.0f} | {runs / added[KERAS_BN]:.2f} |"
        for label, runs in added.items()
    ]
    return "\n".join(
        [
            "# Aten op runs BN adds to a training step on torch eager",
            "",
            f"`python -m benchmarks.op_count` (KERAS_BACKEND=torch): `bnk.CNN`, Adam, "
            f"batch {BATCH}, torch.profiler over a `fit` of two epochs of {STEPS} "
            "steps with each normalization and with none; "
            + ", ".join(f"{name} {version}" for name, version in versions.items())
            + ". Counts do not depend on the machine's load.",
            "",
            "| BN | aten op runs added per step | / Keras's |",
            "| --- | ---: | ---: |",
            *rows,
            "",
            verdict(added),
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where the files go")
    args = parser.parse_args(argv)
    backend = os.environ.get("KERAS_BACKEND")
    if backend != "torch":
        parser.error(f"KERAS_BACKEND is {backend!r}: counting aten ops needs 'torch'")
    import keras
    import torch

    added = added_by_bn()
    versions = {"keras": keras.__version__, "torch": torch.__version__}
    (args.out / "op_count.json").write_text(
        json.dumps(
            {"added_per_step": added, "goal": GOAL, "versions": versions}, indent=2
        )
        + "\n"
    )
    (args.out / "op_count.md").write_text(markdown(added, versions))
    print(verdict(added))
    return 0


if __name__ == "__main__":
    sys.exit(main())
