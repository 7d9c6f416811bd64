"""The results notebook, executed by papermill in a real Jupyter kernel."""

import json
import tempfile
from pathlib import Path

import keras
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from stages import run_stage, stage_path

from pipeline.core.backends import BACKEND_NAMES

ROOT = Path(__file__).resolve().parents[1]
RESULTS_NOTEBOOK = ROOT / "notebooks/results.ipynb"


@pytest.fixture
def kernel_env(monkeypatch):
    """The kernel runs in the scratch project; `pipeline` comes from this checkout."""
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def test_results_notebook_renders_on_tiny_data(workdir, kernel_env):
    run_stage("train")
    run_stage("evaluate")
    run_stage("compare")
    run_stage("report", notebook=RESULTS_NOTEBOOK)
    backend = keras.backend.backend()
    report = stage_path("report", "output")
    executed = nbformat.read(report.with_suffix(".ipynb"), as_version=4)
    outputs = json.dumps([cell.get("outputs", []) for cell in executed.cells])
    assert "largest probability difference" in outputs
    assert f"backend executing this page | {backend}" in outputs
    # its own run's loss, the main model's curves, confusion, image grid, BN
    assert outputs.count("image/png") == 5
    assert '"name": "stderr"' not in outputs
    html = report.with_suffix(".html").read_text()
    assert ("This backend&#39;s own training run" in html
            or "This backend's own training run" in html)
    assert f"<title>bnk results under {BACKEND_NAMES[backend]}</title>" in html
    assert "load_model(" not in html  # code hidden: it reads as a report


def one_cell_notebook(path, source):
    """The results notebook's parameters cell, then one cell of `source`."""
    results = nbformat.read(RESULTS_NOTEBOOK, as_version=4)
    parameters = next(cell for cell in results.cells
                      if "parameters" in cell.metadata.get("tags", []))
    notebook = new_notebook(
        cells=[parameters, new_code_cell(source)], metadata=results.metadata
    )
    nbformat.write(notebook, path)
    return path


def test_failing_notebook_keeps_the_previous_report_and_leaves_no_temp(
    workdir, kernel_env, tmp_path, monkeypatch
):
    run_stage("train")  # the stage checks the model before running the notebook
    report = stage_path("report", "output")
    previous = {suffix: report.with_suffix(suffix) for suffix in (".ipynb", ".html")}
    for path in previous.values():
        path.parent.mkdir(exist_ok=True)
        path.write_text("last good report")
    temp = tmp_path / "system-temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    broken = one_cell_notebook(
        workdir / "broken.ipynb", "raise ValueError('bad cell ran')"
    )
    with pytest.raises(SystemExit, match="ValueError: bad cell ran"):
        run_stage("report", notebook=broken)
    kept = report.with_suffix(".failed.ipynb").read_text()
    assert "bad cell ran" in kept and "An Exception was encountered" in kept
    assert all(path.read_text() == "last good report" for path in previous.values())
    assert not list(temp.iterdir())  # the kernelspec folder is removed


def test_a_cell_writing_to_stderr_fails_the_report(workdir, kernel_env):
    """A library's log line would otherwise end up in the page a reader opens."""
    run_stage("train")  # the stage checks the model before running the notebook
    noisy = one_cell_notebook(
        workdir / "noisy.ipynb",
        "import sys; print('a library log line', file=sys.stderr)",
    )
    with pytest.raises(
        SystemExit, match=r"cell \d+ wrote to stderr.*a library log line"
    ):
        run_stage("report", notebook=noisy)
    assert not stage_path("report", "output").with_suffix(".html").exists()


def test_a_parameter_the_notebook_does_not_declare_fails_the_report(
    workdir, kernel_env
):
    """papermill would only log it, and the notebook would run on its defaults."""
    run_stage("train")
    bare = workdir / "bare.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("print('ran')")]), bare)
    with pytest.raises(
        SystemExit, match=r"has no parameter backends, compare_run_path"
    ):
        run_stage("report", notebook=bare)
    assert not stage_path("report", "output").with_suffix(".ipynb").exists()


@pytest.mark.parametrize(
    "experiment", ["bn_experiment", "batch_sizes", "non_iid", "covariate_shift"]
)
def test_an_experiment_report_without_results_names_the_stage_to_run(
    workdir, experiment
):
    report = f"experiment_report@{experiment}"
    with pytest.raises(
        SystemExit, match=rf"is missing: run `dvc repro experiment@{experiment}`"
    ):
        run_stage(report)
    assert not stage_path(report, "output").with_suffix(".html").exists()


def test_a_notebook_without_a_kernel_fails_in_one_line(workdir):
    """papermill cannot tell which kernel runs it: one line naming the notebook, and
    none of the report's outputs written."""
    results = stage_path("experiment_report@non_iid", "results")
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(
        '{"backend": "jax", "params": {"normalizations": []}, "seeds": [], '
        '"by_seed": []}'
    )
    kernelless = workdir / "kernelless.ipynb"
    parameters = new_code_cell("results_path = None", metadata={"tags": ["parameters"]})
    nbformat.write(new_notebook(cells=[parameters]), kernelless)
    with pytest.raises(
        SystemExit, match=rf"^{kernelless} cannot be run: No kernel name found"
    ):
        run_stage("experiment_report@non_iid", notebook=kernelless)
    for output in ("metrics", "plots"):
        assert not stage_path("experiment_report@non_iid", output).exists()


def test_a_figure_without_a_description_is_refused():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.reporting.figures import show

    figure, _ = plt.subplots()
    with pytest.raises(ValueError, match="a figure needs a description"):
        show(figure, " ")
    plt.close(figure)
