"""The committed metrics files hold headline numbers only, so that each one's row of
`dvc metrics show` fits on a screen; the details live in results/ and the reports.

Together they no longer fit: DVC's table has a column for every key of every file,
and each experiment adds its own. `dvc metrics show FILE` reads one."""

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from stages import stage_path

from pipeline.core import params
from pipeline.core.normalizations import NORMALIZATIONS

ROOT = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).parent / "dvc")
EXPERIMENT_METRICS = [
    stage_path(f"experiment_report@{name}", "metrics")
    for name in params.load(ROOT / "params.yaml").experiments.registry
]
METRICS = [
    *(stage_path(stage, "metrics") for stage in ("train", "evaluate", "seeds")),
    *EXPERIMENT_METRICS,
]
# A terminal beside an editor, or a laptop's full-width one.
SCREEN_COLUMNS = 160


def test_metrics_files_hold_only_numbers_and_the_seeds():
    """At most six numbers a file; the runs over seeds name their seeds (not a
    column of DVC's table), and each experiment its baseline."""
    for path in METRICS:
        values = json.loads((ROOT / path).read_text())
        numbers = {key: value for key, value in values.items() if key != "seeds"}
        assert 0 < len(numbers) <= 6, path
        assert all(isinstance(v, int | float) for v in numbers.values()), path
        if "seeds" in values:
            assert all(isinstance(seed, int) for seed in values["seeds"]), path
    for path in [stage_path("seeds", "metrics"), *EXPERIMENT_METRICS]:
        assert "seeds" in json.loads((ROOT / path).read_text()), path
    for path in EXPERIMENT_METRICS:
        assert "baseline_accuracy" in json.loads((ROOT / path).read_text()), path


def make_project(root, written=None):
    """A git repository in `root` holding the project's dvc.yaml, params and metrics
    files, those of `written` ({path: values}) written instead of copied."""
    written = written or {}
    for name in ["dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config", *METRICS]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if name in written:
            (root / name).write_text(json.dumps(written[name]))
        else:
            shutil.copy(ROOT / name, root / name)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


@pytest.fixture(scope="module")
def metrics_project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("metrics"))


def dvc_metrics_show(project, *targets):
    return subprocess.run(
        [DVC, "metrics", "show", *targets], cwd=project, capture_output=True,
        text=True, check=True,
    ).stdout.splitlines()


def test_dvc_metrics_show_lists_every_file(metrics_project):
    rows = [line for line in dvc_metrics_show(metrics_project)
            if line.startswith("metrics/")]
    assert sorted(row.split()[0] for row in rows) == sorted(map(str, METRICS))


@pytest.mark.parametrize("path", METRICS, ids=str)
def test_each_files_row_of_dvc_metrics_show_fits_on_a_screen(metrics_project, path):
    shown = dvc_metrics_show(metrics_project, str(path))
    assert max(map(len, shown)) <= SCREEN_COLUMNS, "\n".join(shown)


@pytest.mark.parametrize("experiment", ["batch_sizes", "non_iid"])
def test_batch_metrics_the_code_writes_fit_on_a_screen(tmp_path, experiment):
    """The keys the stage writes now, for every normalization that has them (the
    committed file is the last full run's), each value with more digits than DVC
    shows; the list of seeds is not a column of DVC's table."""
    by_seed = [
        {"seed": seed, "runs": [
            {"normalization": name, "batch_size": size, "budget": budget,
             "sampling": sampling, "test_accuracy": 0.87939453125 + seed / 1000}
            for name in NORMALIZATIONS
            for size in (2, 256)
            for budget in ("epochs", "steps")
            for sampling in ("iid", "non_iid")
        ]}
        for seed in (0, 1, 2)
    ]
    results = {"params": {"normalizations": list(NORMALIZATIONS),
                          "reference_batch_size": 32},
               "seeds": [0, 1, 2], "by_seed": by_seed}
    analysis = importlib.import_module(f"pipeline.experiments.{experiment}.analysis")
    written = analysis.metrics(results)
    assert written["seeds"] == [0, 1, 2]
    numbers = {key: value for key, value in written.items() if key != "seeds"}
    assert len(numbers) == 6
    path = stage_path(f"experiment_report@{experiment}", "metrics")
    shown = dvc_metrics_show(make_project(tmp_path, {path: written}), str(path))
    assert shown[0].split() == ["Path", *sorted(numbers)], shown
    assert max(map(len, shown)) <= SCREEN_COLUMNS, "\n".join(shown)
