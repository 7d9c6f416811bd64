"""Execute a notebook with papermill under a given backend, and render it to HTML.

Shared by the report stages. The kernel is the project's own interpreter, through a
kernelspec made for the run (so no kernelspec in the user's home can shadow it), and
it inherits KERAS_BACKEND from this process.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import nbconvert
import nbformat
import papermill

from pipeline.atomic import atomic_path

KERNEL_NAME = "bnk-project-python"


def _kernelspec_dir():
    """A JUPYTER_PATH entry holding one kernelspec: this interpreter."""
    root = Path(tempfile.mkdtemp(prefix="bnk-kernel-"))
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "bnk (project)", "language": "python"})
    )
    return root


def to_html(notebook_path, html_path):
    """Render without code cells, so the page reads as a report."""
    exporter = nbconvert.HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                                      exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook_path, as_version=4))
    with atomic_path(html_path) as tmp:
        tmp.write_text(body)


def render(notebook, output_stem, parameters, backend):
    """Run `notebook` under `backend` into `<output_stem>.ipynb` and `.html`.

    On a failing cell papermill still writes the executed notebook (error cell at the
    top) and raises; the HTML is then not written, and the caller exits non-zero.
    """
    output_stem = Path(output_stem)
    output_stem.parent.mkdir(parents=True, exist_ok=True)
    executed = output_stem.with_suffix(".ipynb")
    os.environ["KERAS_BACKEND"] = backend
    # TensorFlow's C++ start-up log would otherwise land in the report.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        filter(None, [str(_kernelspec_dir()), os.environ.get("JUPYTER_PATH")])
    )
    papermill.execute_notebook(
        str(notebook),
        str(executed),
        parameters=parameters,
        kernel_name=KERNEL_NAME,
        cwd=os.getcwd(),
        progress_bar=True,
        log_output=False,
    )
    to_html(executed, output_stem.with_suffix(".html"))
