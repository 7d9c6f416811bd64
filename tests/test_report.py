"""The results notebook, executed by papermill in a real Jupyter kernel."""

import json
import tempfile
from pathlib import Path

import keras
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from pipeline import compare, evaluate, report, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def kernel_env(monkeypatch):
    """The kernel runs in the scratch project; `pipeline` comes from this checkout."""
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def test_results_notebook_renders_on_tiny_data(workdir, kernel_env):
    train.main()
    evaluate.main()
    compare.main()
    report.main(notebook=ROOT / report.NOTEBOOK)
    backend = keras.backend.backend()
    executed = nbformat.read(workdir / f"reports/{backend}.ipynb", as_version=4)
    outputs = json.dumps([cell.get("outputs", []) for cell in executed.cells])
    assert "largest probability difference" in outputs
    assert f"backend executing this page | {backend}" in outputs
    # its own run's loss, the main model's curves, confusion, image grid, BN
    assert outputs.count("image/png") == 5
    assert '"name": "stderr"' not in outputs
    html = (workdir / f"reports/{backend}.html").read_text()
    assert "This backend&#39;s own training run" in html or "This backend's own training run" in html
    assert f"<title>bnk results under {report.BACKEND_NAMES[backend]}</title>" in html
    assert "load_model(" not in html  # code hidden: it reads as a report


def one_cell_notebook(path, source):
    nbformat.write(
        new_notebook(
            cells=[new_code_cell(source)],
            metadata={"kernelspec": {"name": "python3", "language": "python",
                                     "display_name": "Python 3"}},
        ),
        path,
    )
    return path


def test_failing_notebook_keeps_the_previous_report_and_leaves_no_temp(
    workdir, kernel_env, tmp_path, monkeypatch
):
    train.main()  # the stage checks the model before running the notebook
    backend = keras.backend.backend()
    previous = {suffix: workdir / f"reports/{backend}{suffix}" for suffix in (".ipynb", ".html")}
    for path in previous.values():
        path.parent.mkdir(exist_ok=True)
        path.write_text("last good report")
    temp = tmp_path / "system-temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    broken = one_cell_notebook(workdir / "broken.ipynb", "raise ValueError('bad cell ran')")
    with pytest.raises(SystemExit, match="ValueError: bad cell ran"):
        report.main(notebook=broken)
    kept = (workdir / f"reports/{backend}.failed.ipynb").read_text()
    assert "bad cell ran" in kept and "An Exception was encountered" in kept
    assert all(path.read_text() == "last good report" for path in previous.values())
    assert not list(temp.iterdir())  # the kernelspec folder is removed


def test_a_cell_writing_to_stderr_fails_the_report(workdir, kernel_env):
    """A library's log line would otherwise end up in the page a reader opens."""
    train.main()  # the stage checks the model before running the notebook
    noisy = one_cell_notebook(
        workdir / "noisy.ipynb", "import sys; print('a library log line', file=sys.stderr)"
    )
    with pytest.raises(SystemExit, match=r"cell \d+ wrote to stderr.*a library log line"):
        report.main(notebook=noisy)
    assert not (workdir / f"reports/{keras.backend.backend()}.html").exists()
