"""Stage `report@<backend>`: notebooks/results.ipynb executed under that backend.

Writes reports/<backend>.ipynb and reports/<backend>.html. The data and the model
the notebook reads are checked first. A failing cell fails the stage and leaves the
previous report as it was; the failed notebook, its error shown at the top, is
reports/<backend>.failed.ipynb.
"""

import sys
from pathlib import Path

import papermill

from pipeline import dataset, evaluate, params
from pipeline.backend import BACKENDS, selected_backend
from pipeline.errors import one_line_errors
from pipeline.render import failed_notebook, render

NOTEBOOK = Path("notebooks/results.ipynb")
REPORTS = Path("reports")


def backend_list(key, value):
    if not isinstance(value, list) or not value or not set(value) <= set(BACKENDS):
        raise params.ParamsError(
            f"params.yaml: `{key}` must be a non-empty list of {', '.join(BACKENDS)}, "
            f"got {value!r}."
        )
    return value


SCHEMA = {"backends": backend_list, "inference_batch": params.positive_int}


@one_line_errors
def main(notebook=NOTEBOOK):
    backend = selected_backend()
    config = params.load("report", SCHEMA)
    dataset.load_test()
    evaluate.load_model()
    parameters = {"backends": config["backends"], "inference_batch": config["inference_batch"]}
    try:
        render(notebook, REPORTS / backend, parameters, backend)
    except papermill.PapermillExecutionError as error:
        sys.exit(
            f"{notebook} failed under {backend} ({error.ename}: {error.evalue}); "
            f"the failed notebook is {failed_notebook(REPORTS / backend)}, and "
            f"the previous report is unchanged."
        )


if __name__ == "__main__":
    main()
