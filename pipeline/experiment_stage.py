"""The `main` of an experiment stage (`bn_experiment`, `batch_sizes`, `non_iid`,
`covariate_shift`): what they share, so that each stage names only its experiment and
what its outputs hold.

Each reads its section of params.yaml and the MNIST file, runs its experiment on the
backend KERAS_BACKEND names, timed, and writes its results (the environment, the
section's params with the seed, what the experiment measured, the time) and the files
made from them, all together and atomically (pipeline.atomic): a failed run leaves
the previous ones.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pipeline import params
from pipeline.atomic import atomic_paths, json_text
from pipeline.backends import selected_backend
from pipeline.cli import stage_paths
from pipeline.environment import describe

#: An experiment: (its params section, the seed, the MNIST file) -> what it measured.
Experiment = Callable[[Any, int, Path], dict[str, Any]]
#: The text of one output, made from the stage's results.
Writer = Callable[[dict[str, Any]], str]


def run_experiment_stage(
    doc: str | None,
    argv: Sequence[str] | None,
    section: str,
    experiment: Experiment,
    writers: Mapping[str, Writer],
) -> None:
    """Run `experiment` on params.yaml's `section` and the `--mnist` file; write its
    results to `--results` and `writers[name](results)` to `--<name>` for each name.

    `doc` and `argv` are the stage's docstring and command line (pipeline.cli).
    """
    paths = stage_paths(doc, argv, "mnist", "results", *writers)
    selected_backend()
    config = params.load()
    settings: BaseModel = getattr(config, section)
    start = time.perf_counter()
    measured = experiment(settings, config.seed, paths.mnist)
    seconds = round(time.perf_counter() - start, 2)
    results = {
        **describe(),
        "params": {"seed": config.seed, **settings.model_dump()},
        **measured,
        "wall_seconds": seconds,
    }
    outputs = [paths.results, *(getattr(paths, name) for name in writers)]
    with atomic_paths(*outputs) as (results_file, *files):
        results_file.write_text(json_text(results))
        for file, write in zip(files, writers.values(), strict=True):
            file.write_text(write(results))
    print(f"wrote {', '.join(map(str, outputs))} ({seconds:.0f} s)")
