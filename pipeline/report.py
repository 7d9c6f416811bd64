"""Stage `report@<backend>`: notebooks/results.ipynb executed under that backend.

Writes reports/<backend>.ipynb and reports/<backend>.html. A failing cell fails the
stage; the executed notebook stays, its error shown at the top, for debugging.
"""

import sys
from pathlib import Path

import papermill

from pipeline import params
from pipeline.backend import BACKENDS, selected_backend
from pipeline.render import render

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


def main(notebook=NOTEBOOK):
    try:
        backend = selected_backend()
        config = params.load("report", SCHEMA)
    except ValueError as error:
        sys.exit(str(error))
    parameters = {"backends": config["backends"], "inference_batch": config["inference_batch"]}
    try:
        render(notebook, REPORTS / backend, parameters, backend)
    except papermill.PapermillExecutionError as error:
        sys.exit(
            f"{notebook} failed under {backend} ({error.ename}: {error.evalue}); "
            f"the failed notebook is {REPORTS / backend}.ipynb."
        )


if __name__ == "__main__":
    main()
