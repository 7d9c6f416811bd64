"""Stage `covariate_shift`: is it internal covariate shift? (Santurkar et al., 2018)

On the backend KERAS_BACKEND names: bnk.CNN without normalization, with bnk.BatchNorm,
and with "noisy BN" (pipeline.experiments.covariate_shift), probed as training goes:
validation accuracy, how much a layer's input distribution moves, and the loss
landscape along the gradient. Writes every series and the settings, which the report
reads, a metrics file with the headline numbers a reader compares across runs, and a
plots file with a row per probe (`dvc plots show`, `dvc plots diff`).
"""

import time
from collections.abc import Sequence

from pipeline import params
from pipeline.atomic import atomic_paths, json_text
from pipeline.backends import selected_backend
from pipeline.cli import stage_paths
from pipeline.environment import describe
from pipeline.errors import one_line_errors
from pipeline.experiments import covariate_shift, covariate_shift_findings
from pipeline.outputs import keeps_outputs


@keeps_outputs("covariate_shift")
@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(__doc__, argv, "mnist", "results", "metrics", "plots")
    selected_backend()
    config = params.load()
    start = time.perf_counter()
    series = covariate_shift.run(config.covariate_shift, config.seed, paths.mnist)
    seconds = round(time.perf_counter() - start, 2)
    results = {
        **describe(),
        "params": {"seed": config.seed, **config.covariate_shift.model_dump()},
        **series,
        "wall_seconds": seconds,
    }
    outputs = (paths.results, paths.metrics, paths.plots)
    with atomic_paths(*outputs) as (results_file, metrics, plots):
        results_file.write_text(json_text(results))
        metrics.write_text(json_text(covariate_shift_findings.headline(results)))
        plots.write_text(covariate_shift_findings.probes_csv(results))
    print(f"wrote {', '.join(map(str, outputs))} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
