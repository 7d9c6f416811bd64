"""The results notebook, executed by papermill in a real Jupyter kernel."""

import json
import tempfile
from pathlib import Path

import keras
import nbformat
import numpy as np
import pytest
import yaml
from conftest import BACKENDS, TINY
from nbformat.v4 import new_code_cell, new_notebook
from stages import run_stage, stage_path

from pipeline.core.backends import BACKEND_NAMES
from pipeline.reporting import comparison

ROOT = Path(__file__).resolve().parents[1]
RESULTS_NOTEBOOK = ROOT / "notebooks/results.ipynb"
INDEX_NOTEBOOK = ROOT / "notebooks/index.ipynb"


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
    # The heading names the backend; every seed of its compare runs is listed.
    assert f"# bnk on MNIST: results under {BACKEND_NAMES[backend]}" in outputs
    own = json.loads(stage_path("compare", "output").read_text())
    assert [run["seed"] for run in own["runs"]] == TINY["compare"]["seeds"]
    for run in own["runs"]:
        assert f"| {run['seed']} | {run['test_accuracy']:.4f} |" in outputs
    assert shown("| mean ± std |") in outputs
    # its own run's loss, the main model's curves, confusion, image grid, BN
    assert outputs.count("image/png") == 5
    assert '"name": "stderr"' not in outputs
    html = report.with_suffix(".html").read_text()
    assert ("This backend&#39;s own training run" in html
            or "This backend's own training run" in html)
    assert f"<title>bnk results under {BACKEND_NAMES[backend]}</title>" in html
    assert "load_model(" not in html  # code hidden: it reads as a report


def shown(text):
    """`text` as it appears in the JSON of a notebook's outputs."""
    return json.dumps(text)[1:-1]


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


def compare_result(backend, seeds, accuracies, steps=150):
    """A hand-made `compare@<backend>` results file: the first seed's run at the top
    level, every seed's in `runs`."""
    runs = []
    for index, (seed, accuracy) in enumerate(zip(seeds, accuracies, strict=True)):
        curve = np.linspace(2.3, 0.1, steps) * (1 + 0.01 * index)
        curve[10:] *= 1 + 0.002 * (BACKENDS.index(backend) + 1)
        runs.append({"seed": seed, "losses": curve.tolist(), "test_accuracy": accuracy,
                     "test_loss": 0.05 + 0.01 * index, "wall_seconds": 10.0 + index})
    first = runs[0]
    bias = [0.0, 1e-3 * BACKENDS.index(backend)]
    return {
        "backend": backend, "backend_version": "1.0", "code_version": "test",
        "device": "cpu", "keras_version": "3", "python_version": "3.11",
        "epochs": 1, "batch_size": 16, "learning_rate": 0.001, "training_images": 40,
        **first, "steps": steps, "test_images": 100, "images_per_second": 100.0,
        "batch_mean_error": {"keras.ops.mean": 1e-6, "bnk.functional.moments": 1e-8},
        "weights_after_first_step": {"cnn/conv1/bias": bias, "cnn/bn1/gamma": [1.0]},
        "runs": runs,
    }


#: Per backend, one test accuracy per seed (TINY's compare seeds); per recipe, one
#: per seed of `seeds`.
BACKEND_ACCURACIES = {"tensorflow": [0.9795, 0.9790], "jax": [0.9797, 0.9803],
                      "torch": [0.9801, 0.9796]}
RECIPE_ACCURACIES = {"moving_0_9": [0.9900, 0.9910], "moving_0_99": [0.9915, 0.9917],
                     "recomputed": [0.9921, 0.9925]}


def write_index_inputs(root):
    """Every file the index reads, made by hand, and params.yaml with every backend."""
    from pipeline.stages import seeds

    config = {**TINY, "report": {**TINY["report"], "backends": list(BACKENDS)}}
    (root / "params.yaml").write_text(yaml.safe_dump(config))
    compare_seeds = TINY["compare"]["seeds"]
    seed_list = TINY["seeds"]["seeds"]
    environment = {"backend": "tensorflow", "backend_version": "1.0", "device": "cpu",
                   "code_version": "test"}
    runs = [
        {"seed": seed,
         "accuracy": {r: values[i] for r, values in RECIPE_ACCURACIES.items()},
         "loss": {r: 0.03 for r in RECIPE_ACCURACIES}, "wall_seconds": 1.0}
        for i, seed in enumerate(seed_list)
    ]
    files = {
        "train-run": {**environment, "epochs": 2, "training_images": 192,
                      "wall_seconds": 3.0, "images_per_second": 128.0},
        "eval-run": {**environment, "accuracy": 0.9923, "loss": 0.03},
        "experiment-results": {**environment, "seeds": [3, 4], "by_seed": [
            {"seed": 3, "mlp": {"bn": [0.5, 0.95], "plain": [0.3, 0.90]}},
            {"seed": 4, "mlp": {"bn": [0.5, 0.96], "plain": [0.3, 0.91]}},
        ]},
        "seeds-metrics": seeds.headline(runs, "recomputed"),
        "seeds-run": {**environment, "params": {}, "recipe": "recomputed",
                      "spread": {r: seeds.accuracy_spread(runs, r)
                                 for r in RECIPE_ACCURACIES},
                      "runs": runs},
    }
    for option, content in files.items():
        path = stage_path("index", option)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    folder = stage_path("index", "compare")
    folder.mkdir(parents=True, exist_ok=True)
    for backend, accuracies in BACKEND_ACCURACIES.items():
        result = compare_result(backend, compare_seeds, accuracies)
        (folder / f"{backend}.json").write_text(json.dumps(result))


def test_index_renders_the_seeds_and_the_backends_against_them(workdir, kernel_env):
    write_index_inputs(workdir)
    run_stage("index", notebook=INDEX_NOTEBOOK)
    page = stage_path("index", "output")
    executed = nbformat.read(page.with_suffix(".ipynb"), as_version=4)
    outputs = json.dumps([cell.get("outputs", []) for cell in executed.cells])
    # Each sentence is the verdict function's on the same numbers.
    for sentence in (
        comparison.between_backends(BACKEND_ACCURACIES, "test accuracy"),
        comparison.recipes(RECIPE_ACCURACIES, "recomputed"),
        comparison.one_run_among_seeds(0.9923, RECIPE_ACCURACIES["recomputed"]),
        comparison.bn_buys([0.95, 0.96], [0.90, 0.91]),
    ):
        assert shown(sentence) in outputs, sentence
    assert "the spread between backends is within the spread between seeds" in outputs
    assert "falls short of the goal of 99.20%" not in outputs
    # The default recipe over the seeds beside the one model the reports dissect.
    assert shown("| test accuracy (this model: one training run) | 0.9923 |") in outputs
    assert shown("seeds (stage `seeds`) | 0.9923 ± 0.0003 |") in outputs
    assert outputs.count("image/png") == 2  # the recipes, the backends' losses
    assert '"name": "stderr"' not in outputs
    html = page.with_suffix(".html").read_text()
    assert "<title>bnk: results on every backend</title>" in html
    assert "is not measured here" not in html


@pytest.mark.parametrize(
    ("option", "stage"),
    [("seeds-metrics", "seeds"), ("seeds-run", "seeds"), ("compare", "compare@jax")],
)
def test_index_without_an_input_names_it_in_one_line(workdir, option, stage):
    write_index_inputs(workdir)
    path = stage_path("index", option)
    if path.is_dir():
        path = path / "jax.json"
    path.unlink()
    with pytest.raises(SystemExit) as stopped:
        run_stage("index")
    assert str(stopped.value) == f"{path} is missing: run `dvc repro {stage}` first."
    assert not stage_path("index", "output").with_suffix(".html").exists()


def test_index_on_a_compare_file_from_before_the_seeds_says_so(workdir):
    write_index_inputs(workdir)
    path = stage_path("index", "compare") / "torch.json"
    old = json.loads(path.read_text())
    del old["runs"]
    path.write_text(json.dumps(old))
    with pytest.raises(
        SystemExit,
        match=r"results/compare/torch.json has no `runs`.*`dvc repro compare@torch`",
    ):
        run_stage("index")


def test_an_accuracy_axis_is_zoomed_to_the_values_and_their_error_bars():
    from pipeline.reporting.figures import accuracy_limits

    low, high = accuracy_limits(np.array([0.96, 0.985]), np.array([0.02, 0.004]))
    assert low == pytest.approx(0.935) and high == pytest.approx(0.994)
    assert accuracy_limits(np.array([0.999]), np.array([0.01])) == (
        pytest.approx(0.984), 1.0)
    assert accuracy_limits(np.array([np.nan]), np.array([np.nan])) == (0.0, 1.0)
