"""Stage `covariate_shift`: is it internal covariate shift? (Santurkar et al., 2018)

On the backend KERAS_BACKEND names: bnk.CNN without normalization, with bnk.BatchNorm,
and with "noisy BN" (pipeline.experiments.covariate_shift), probed as training goes:
validation accuracy, how much a layer's input distribution moves, and the loss
landscape along the gradient. Writes every series and the settings, which the report
reads, a metrics file with the headline numbers a reader compares across runs, and a
plots file with a row per probe (`dvc plots show`, `dvc plots diff`).
"""

from collections.abc import Sequence
from typing import Any

from pipeline.atomic import json_text
from pipeline.errors import one_line_errors
from pipeline.experiment_stage import run_experiment_stage
from pipeline.experiments import covariate_shift, covariate_shift_findings
from pipeline.outputs import keeps_outputs


@keeps_outputs("covariate_shift")
@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    def metrics(results: dict[str, Any]) -> str:
        return json_text(covariate_shift_findings.headline(results))

    run_experiment_stage(
        __doc__,
        argv,
        "covariate_shift",
        covariate_shift.run,
        {"metrics": metrics, "plots": covariate_shift_findings.probes_csv},
    )


if __name__ == "__main__":
    main()
