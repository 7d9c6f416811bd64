"""End to end: the real `dvc repro` in a scratch copy of the project, tiny params.

Each backend's run of the suite trains on its own backend, then switches to the next
one (so the three runs together cover every backend and every switch), then back.
"""

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import keras
import psutil
import pytest
import yaml
from conftest import (
    BACKENDS,
    TINY_BATCH_SIZES,
    TINY_NON_IID,
    in_one_suite_run,
    tiny_params,
)
from dvc_project import dvc, run, scratch_project
from stages import stage_path

from pipeline.core.backends import BACKEND_NAMES


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    def tiny(config):
        config["train"].update(epochs=1, limit=512)
        config["compare"].update(limit=48, batch_size=16)
        config["bn_experiment"]["mlp"].update(steps=20, eval_every=10)
        config["bn_experiment"]["cnn"].update(
            steps=4, eval_every=2, batch_size=8, learning_rates=[0.001], limit=64
        )
        config["batch_sizes"].update(TINY_BATCH_SIZES)
        config["non_iid"].update(TINY_NON_IID)
        config["covariate_shift"] = tiny_params()["covariate_shift"]

    return scratch_project(tmp_path_factory.mktemp("project"), tiny)


def trained_on(project):
    return json.loads((project / stage_path("train", "run")).read_text())["backend"]


def test_backend_switch_reruns_and_switching_back_restores(project):
    first = keras.backend.backend()
    second = BACKENDS[(BACKENDS.index(first) + 1) % len(BACKENDS)]
    repro = dvc("repro", "evaluate")

    run(repro, project, first)
    assert trained_on(project) == first
    evaluated = json.loads((project / stage_path("evaluate", "run")).read_text())
    assert evaluated["backend"] == first and evaluated["test_images"] == 10_000
    assert run(repro, project, first).stdout.count("Running stage 'train'") == 0

    switched = run(repro, project, second).stdout
    assert (
        "Running stage 'train'" in switched and "Running stage 'fetch'" not in switched
    )
    assert trained_on(project) == second

    back = run(repro, project, first).stdout
    assert "Stage 'train' is cached - skipping run, checking out outputs" in back
    assert "Running stage 'train'" not in back
    assert trained_on(project) == first


def test_whole_pipeline_renders_the_report(project):
    backend = keras.backend.backend()
    run(dvc("repro"), project, backend)
    report = project / stage_path("report", "output")
    assert report.with_suffix(".html").stat().st_size > 0
    experiment = project / stage_path("experiment_report@bn_experiment", "output")
    assert experiment.with_suffix(".html").stat().st_size > 0
    compared = json.loads((project / stage_path("compare", "output")).read_text())
    assert compared["steps"] == 3
    index = (project / stage_path("index", "output")).with_suffix(".html").read_text()
    assert "<title>bnk: results on every backend</title>" in index
    # Stage `seeds` ran before it, and the index shows it.
    assert "The main model over seeds" in index
    assert (project / stage_path("seeds", "metrics")).exists()
    # Every page reads offline and leads back to the index.
    for page in (project / "reports").glob("*.html"):
        html = page.read_text()
        assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', html), page
        assert 'href="index.html"' in html and "Rendered from commit " in html, page
        # Every figure described for a reader who cannot see it.
        assert "<img" in html, page
        assert "No description has been provided" not in html, page
        assert 'alt=""' not in html, page
    assert f'href="{backend}.html"' in index and 'href="bn_experiment.html"' in index
    for stage in ("experiment_report@batch_sizes", "experiment_report@non_iid"):
        report = (project / stage_path(stage, "output")).with_suffix(".html")
        assert report.stat().st_size > 0 and f'href="{report.name}"' in index
    assert 'href="covariate_shift.html"' in index
    shift = project / stage_path("experiment_report@covariate_shift", "output")
    assert "Is it internal covariate shift?" in shift.with_suffix(".html").read_text()
    # Everything is up to date but the stage that by design always runs.
    status = run(dvc("status", "--json"), project, backend).stdout
    assert set(json.loads(status)) <= {"backend"}


def test_a_backend_switch_reruns_the_main_job_and_no_experiment(project):
    """The experiments run on `experiments.backend`, whatever KERAS_BACKEND says:
    after the whole pipeline has run (the test above), another backend re-runs train
    and what reads it, and no experiment or experiment report."""
    first = keras.backend.backend()
    second = BACKENDS[(BACKENDS.index(first) + 1) % len(BACKENDS)]
    switched = run(dvc("repro"), project, second).stdout
    # Trained again, or restored from the run-cache of the switch test above.
    assert "Stage 'train' didn't change" not in switched
    assert "Running stage 'index'" in switched
    assert "Running stage 'experiment" not in switched, switched
    back = run(dvc("repro"), project, first).stdout
    assert "Stage 'train' is cached - skipping run, checking out outputs" in back
    assert "Running stage 'experiment" not in back, back
    status = run(dvc("status", "--json"), project, first).stdout
    assert set(json.loads(status)) <= {"backend"}


def changed_stages(project):
    status = run(dvc("status", "--json"), project, keras.backend.backend()).stdout
    return set(json.loads(status)) - {"backend"}


# The first words of notebooks/non_iid.ipynb's heading.
HEADING = "# Batch normalization on non-i.i.d."


def test_editing_one_experiments_notebook_or_analysis_touches_only_its_report(
    project,
):
    """One sentence of one notebook, or one line of one analysis: only that
    experiment's report stage is out of date, not the experiment, the main job or
    another report."""
    notebook = project / "notebooks/non_iid.ipynb"
    analysis = project / "pipeline/experiments/non_iid/analysis.py"
    for path, edit in [
        (notebook, lambda text: text.replace(HEADING, f"{HEADING} (edited)", 1)),
        (analysis, lambda text: text + "\n# An edited comment.\n"),
    ]:
        original = path.read_text()
        edited = edit(original)
        assert edited != original, path
        path.write_text(edited)
        try:
            assert changed_stages(project) == {"experiment_report@non_iid"}, path
        finally:
            path.write_text(original)
    assert changed_stages(project) == set()


TOY_FILES = {
    "pipeline/experiments/toy/params.py": """\
from pipeline.core.params import PositiveInt, Section


class Params(Section):
    value: PositiveInt
""",
    "pipeline/experiments/toy/run.py": """\
def run(params, seed, mnist):
    return {"square": params.value**2 + seed}
""",
    "pipeline/experiments/toy/analysis.py": """\
def metrics(results):
    return {"squares": [run["square"] for run in results["by_seed"]]}


def plots(results):
    return "seed,square\\n" + "".join(
        f"{run['seed']},{run['square']}\\n" for run in results["by_seed"]
    )


def sentence(results):
    first = results["by_seed"][0]
    square = first["square"] - first["seed"]
    return f"The square of {results['params']['value']} is {square}."
""",
}


def toy_notebook():
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python"
    }
    parameters = nbformat.v4.new_code_cell("results_path = None")
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# A toy experiment"),
        parameters,
        nbformat.v4.new_code_cell(
            "import json\n"
            "from IPython.display import Markdown, display\n"
            "from pipeline.experiments.toy import analysis\n"
            "details = json.loads(open(results_path).read())\n"
            "display(Markdown(analysis.sentence(details)))"
        ),
    ]
    return nbformat.writes(notebook)


@in_one_suite_run("torch")
def test_a_toy_experiment_registered_the_documented_way_runs(tmp_path):
    """Its folder, its notebook, its params.yaml section and its registry line:
    `dvc repro` runs it on the experiments' backend and renders its report, metrics
    and plots file, and runs nothing it does not need."""
    backend = keras.backend.backend()
    project = tmp_path / "project"
    project.mkdir()
    scratch_project(project, lambda config: None)
    committed = (project / "params.yaml").read_text()
    for name, text in TOY_FILES.items():
        (project / name).parent.mkdir(exist_ok=True)
        (project / name).write_text(text)
    (project / "notebooks/toy.ipynb").write_text(toy_notebook())
    config = yaml.safe_load(committed)
    config["toy"] = {"value": 7}
    config["experiments"]["registry"]["toy"] = "a toy experiment"
    (project / "params.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    output = run(dvc("repro", "experiment_report@toy"), project, backend).stdout
    assert "Running stage 'experiment@toy'" in output
    assert "Running stage 'experiment_report@toy'" in output
    assert "Running stage 'train'" not in output
    results = json.loads((project / "results/toy.json").read_text())
    seeds = config["experiments"]["seeds"]
    assert results["seeds"] == seeds
    assert [run["seed"] for run in results["by_seed"]] == seeds
    assert results["backend"] == backend and results["params"]["value"] == 7
    squares = [49 + seed for seed in seeds]
    metrics = json.loads((project / "metrics/toy.json").read_text())
    assert metrics == {"squares": squares}
    assert (project / "metrics/toy.csv").read_text() == "seed,square\n" + "".join(
        f"{seed},{square}\n" for seed, square in zip(seeds, squares, strict=True)
    )
    page = (project / "reports/toy.html").read_text()
    assert f"<title>bnk: a toy experiment ({BACKEND_NAMES[backend]})</title>" in page
    assert "The square of 7 is 49." in page
    # The page stands alone: nothing from the network, a way back to the index and
    # on to the other experiments, the commit it was rendered from.
    assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', page)
    assert 'href="index.html"' in page and 'href="non_iid.html"' in page
    assert 'href="../benchmarks/results.md"' in page
    commit = run(["git", "rev-parse", "--short=10", "HEAD"], project, backend).stdout
    # ... marked: the toy's own files are not committed.
    assert f"Rendered from commit {commit.strip()} plus uncommitted changes" in page
    status = run(dvc("status", "--json", "experiment_report@toy"), project, backend)
    assert json.loads(status.stdout) == {}


def test_unknown_backend_fails_at_once_naming_it(project):
    result = run(dvc("repro"), project, "theano", check=False)
    assert result.returncode != 0
    assert "Unknown KERAS_BACKEND='theano'" in result.stdout + result.stderr


@in_one_suite_run("tensorflow")
def test_failed_stages_keep_their_outputs_and_a_fixed_rerun_recovers(project):
    """Each breakage fails `dvc repro` with one line and changes no output; undoing it
    brings the pipeline back to up to date without --force. Runs after the whole
    pipeline has run (the test above), so every output exists."""
    backend = keras.backend.backend()
    report = stage_path("report", "output")
    outputs = [
        *(stage_path("fetch", name) for name in ("mnist", "provenance")),
        stage_path("check", "output"),
        *(stage_path("train", name) for name in TRAIN_OUTPUTS),
        *(stage_path("evaluate", name)
          for name in ("probabilities", "predictions", "metrics", "run")),
        report.with_suffix(".ipynb"), report.with_suffix(".html"),
        stage_path("experiment@non_iid", "results"),
        *(stage_path("experiment_report@non_iid", name)
          for name in ("metrics", "plots")),
    ]
    before = {name: (project / name).read_bytes() for name in outputs}
    committed = {name: (project / name).read_bytes()
                 for name in ("params.yaml", "notebooks/results.ipynb")}

    def set_params(change):
        config = yaml.safe_load(committed["params.yaml"])
        change(config)
        (project / "params.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    breakages = [
        (lambda c: c["train"].update(epochs=-1),
         "params.yaml: `train.epochs` must be a positive integer, got -1."),
        (lambda c: c["fetch"].update(sources=["nosuch"]),
         "params.yaml: `fetch.sources` has unknown source 'nosuch'"),
        (lambda c: c.pop("evaluate"), "'evaluate' are missing from 'params.yaml'"),
        (lambda c: c["report"].update(backends=["theano"]),
         "params.yaml: `report.backends` must be a non-empty list of"),
        (lambda c: c["non_iid"].update(batch_size=5),
         "params.yaml: `non_iid.batch_size`=5 must be a multiple of"),
    ]
    for change, message in breakages:
        set_params(change)
        result = run(dvc("repro"), project, backend, check=False)
        assert (
            result.returncode != 0 and message in result.stdout + result.stderr
        ), message
        after = {name: (project / name).read_bytes() for name in outputs}
        assert after == before, message
    (project / "params.yaml").write_bytes(committed["params.yaml"])

    notebook = json.loads(committed["notebooks/results.ipynb"])
    notebook["cells"].insert(0, {"cell_type": "code", "metadata": {}, "outputs": [],
                                 "execution_count": None,
                                 "source": "raise ValueError('broken cell')"})
    (project / "notebooks/results.ipynb").write_text(json.dumps(notebook))
    result = run(dvc("repro"), project, backend, check=False)
    assert result.returncode != 0 and "ValueError: broken cell" in result.stderr
    assert "broken cell" in (project / report.with_suffix(".failed.ipynb")).read_text()
    assert {name: (project / name).read_bytes() for name in outputs} == before
    (project / "notebooks/results.ipynb").write_bytes(
        committed["notebooks/results.ipynb"]
    )

    recovered = run(dvc("repro"), project, backend).stdout
    assert "Running stage 'train'" not in recovered
    assert {name: (project / name).read_bytes() for name in outputs} == before
    status = run(dvc("status", "--json"), project, backend).stdout
    assert set(json.loads(status)) <= {"backend"}


def interrupt_training(project, tmp_path, shell, interrupt):
    """Start `dvc repro` of `train` alone with a training too long to finish,
    `interrupt` the DVC process or the trainer once the trainer holds its checkpoint
    lock (it is fitting: DVC has deleted the outputs), and wait for every process DVC
    started to end. Returns DVC's exit status and output. params.yaml is put back
    afterwards: the 'fix' that lets the stage go back to up to date."""
    committed = (project / "params.yaml").read_bytes()
    config = yaml.safe_load(committed)
    config["train"]["epochs"] = 1000
    (project / "params.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    log = tmp_path / "repro.log"
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend(), "SHELL": shell,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with log.open("w") as output:
        repro = subprocess.Popen(dvc("repro", "--single-item", "train"), cwd=project,
                                 env=env, stdout=output, stderr=subprocess.STDOUT)
    started = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and repro.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):  # a short-lived child
                started = psutil.Process(repro.pid).children(recursive=True)
                trainer = next(
                    (p for p in started if "pipeline.stages.train" in p.cmdline()),
                    None,
                )
                if trainer and any(
                    Path(f.path).name == "lock" for f in trainer.open_files()
                ):
                    break
            time.sleep(0.2)
        else:
            raise AssertionError(f"train never started fitting:\n{log.read_text()}")
        interrupt(repro, trainer)
        repro.wait(timeout=60)
        _, alive = psutil.wait_procs(started, timeout=20)
        assert not alive, f"left running after `dvc repro` ended: {alive}"
    finally:
        (project / "params.yaml").write_bytes(committed)
        repro.kill()
        repro.wait()
        for process in started:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
    return repro.returncode, log.read_text()


TRAIN_OUTPUTS = ("model", "metrics", "history", "run")


def train_outputs(project):
    return {name: (project / stage_path("train", name)).read_bytes()
            for name in TRAIN_OUTPUTS}


@in_one_suite_run("jax")
def test_a_trainer_killed_mid_training_puts_back_its_outputs(project, tmp_path):
    """DVC deletes train's outputs before running it; SIGTERM in the middle of fitting
    fails the stage with one line and leaves the outputs as dvc.lock records them."""
    before = train_outputs(project)
    shell = os.environ.get("SHELL", "/bin/sh")
    status, output = interrupt_training(
        project, tmp_path, shell, lambda repro, trainer: trainer.terminate()
    )
    assert status != 0 and "stopped by SIGTERM" in output, output
    put_back = sorted(str(stage_path("train", name)) for name in TRAIN_OUTPUTS)
    assert f"train: put back {', '.join(put_back)}" in output
    assert train_outputs(project) == before
    assert "train" not in json.loads(run(dvc("status", "--json"), project,
                                         keras.backend.backend()).stdout)


@pytest.mark.parametrize(
    "shell",
    [
        pytest.param("/bin/sh", marks=in_one_suite_run("torch")),
        pytest.param("/bin/bash", marks=in_one_suite_run("tensorflow")),
    ],
)
def test_kill_9_of_dvc_repro_takes_the_trainer_with_it(project, tmp_path, shell):
    """bash execs the stage's command, so DVC is the trainer's parent; /bin/sh (dash)
    forks it, and the shell outlives DVC. Either way the trainer gets SIGTERM, puts back
    its outputs and ends, and the next `dvc repro` finds train up to date."""
    if not Path(shell).exists():
        pytest.skip(f"no {shell}")
    before = train_outputs(project)
    interrupt_training(project, tmp_path, shell, lambda repro, trainer: repro.kill())
    assert train_outputs(project) == before
    again = run(dvc("repro", "train"), project, keras.backend.backend()).stdout
    assert "Running stage 'train'" not in again
    assert train_outputs(project) == before
