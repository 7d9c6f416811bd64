"""Stage `experiment@<name>`: run one registered experiment on the backend params.yaml
names.

`--name` is a key of params.yaml's `experiments.registry`, whose folder
`pipeline/experiments/<name>/` holds `params.py` (its section's class, `Params`) and
`run.py` (`run(params, seed, mnist_path) -> dict`). The stage checks the section,
runs the experiment once per seed of `experiments.seeds`, timed, on
`experiments.backend` (dvc.yaml sets KERAS_BACKEND to it), and writes `--results`:
the environment, the section's params, the seeds, and `by_seed`, what each seed's
run measured (with its seed and time), in the order of the seeds. The results are
committed to git (`persist: true`): they are written whole (pipeline.core.atomic),
and a failed or killed run leaves the previous ones.
"""

import importlib
import time
from collections.abc import Sequence

from pipeline.core import params
from pipeline.core.atomic import atomic_path, json_text
from pipeline.core.backends import selected_backend
from pipeline.core.cli import stage_paths
from pipeline.core.environment import describe
from pipeline.core.errors import PipelineError, one_line_errors
from pipeline.core.outputs import stops_with_parent


def registered(config: params.Params, name: str) -> None:
    """PipelineError unless `name` is in `experiments.registry`."""
    if name not in config.experiments.registry:
        raise PipelineError(
            f"no experiment {name!r} in params.yaml's `experiments.registry` "
            f"(registered: {', '.join(config.experiments.registry) or 'none'})."
        )


def on_the_experiments_backend(config: params.Params) -> str:
    """The backend this process runs; PipelineError unless it is
    `experiments.backend`, the one every experiment's results come from."""
    backend = selected_backend()
    if backend != config.experiments.backend:
        raise PipelineError(
            f"experiments run on `experiments.backend`={config.experiments.backend} "
            f"(params.yaml), but KERAS_BACKEND is {backend}: run it through "
            "`dvc repro`, or set KERAS_BACKEND to match."
        )
    return backend


@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(__doc__, argv, "mnist", "results", words=("name",))
    config = params.load()
    registered(config, paths.name)
    on_the_experiments_backend(config)
    package = f"pipeline.experiments.{paths.name}"
    section_class = importlib.import_module(f"{package}.params").Params
    settings = params.experiment_section(config, paths.name, section_class)
    experiment = importlib.import_module(f"{package}.run")
    seeds = config.experiments.seeds
    with stops_with_parent():
        start = time.perf_counter()
        by_seed = []
        for seed in seeds:
            started = time.perf_counter()
            measured = experiment.run(settings, seed, paths.mnist)
            took = round(time.perf_counter() - started, 2)
            by_seed.append({"seed": seed, **measured, "wall_seconds": took})
            print(f"{paths.name}: seed {seed} done ({took:.0f} s)", flush=True)
        seconds = round(time.perf_counter() - start, 2)
        results = {
            **describe(),
            "params": settings.model_dump(),
            "seeds": list(seeds),
            "by_seed": by_seed,
            "wall_seconds": seconds,
        }
        with atomic_path(paths.results) as results_file:
            results_file.write_text(json_text(results))
    print(f"wrote {paths.results} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
