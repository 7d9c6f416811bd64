"""The batch-size and non-i.i.d. experiments: their batches, normalizations and
evaluation helpers, their params, and both stages end to end on tiny settings."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from conftest import tiny_params
from stages import experiment_params, run_in, run_stage, stage_path
from synthetic_project import write_project

import bnk
from pipeline.core import normalizations, params
from pipeline.core.batches import FewClassBatches
from pipeline.core.runs import statistics_batches
from pipeline.experiments.batch_sizes import analysis as batch_sizes_analysis
from pipeline.experiments.batch_sizes import run as batch_sizes
from pipeline.experiments.non_iid import analysis as non_iid_analysis
from pipeline.reporting.spread import with_spread

ROOT = Path(__file__).resolve().parents[1]
TINY = tiny_params()
NORMALIZERS = experiment_params(ROOT / "params.yaml", "batch_sizes").normalizers


# FewClassBatches


@pytest.mark.parametrize("classes_per_batch", [2, 3])
def test_few_class_batches_hold_that_many_classes_in_equal_shares(classes_per_batch):
    labels = np.random.default_rng(0).integers(0, 10, 1000)
    batches = FewClassBatches(
        np.arange(1000), labels, 6 * classes_per_batch, classes_per_batch, seed=3
    )
    for batch in range(2 * batches.batches_per_pass):
        x, y = batches[batch]
        np.testing.assert_array_equal(labels[x], y)
        _, counts = np.unique(y, return_counts=True)
        assert counts.tolist() == [6] * classes_per_batch


def test_few_class_batches_cover_the_data_once_per_pass():
    labels = np.random.default_rng(1).integers(0, 10, 1000)
    batches = FewClassBatches(np.arange(1000), labels, 16, 2, seed=3)
    per_pass = batches.batches_per_pass
    passes = [
        np.concatenate([batches[b][0] for b in range(p * per_pass, (p + 1) * per_pass)])
        for p in range(2)
    ]
    for seen in passes:
        assert len(set(seen)) == len(seen)  # nothing twice in a pass
        # Left out: each class's remainder short of a share, and one share at most
        # to make the shares a multiple of the classes per batch.
        assert len(seen) > 1000 - 10 * 8 - 8
    assert not np.array_equal(passes[0], passes[1])  # a fresh order every pass
    again = FewClassBatches(np.arange(1000), labels, 16, 2, seed=3)
    np.testing.assert_array_equal(again[5][0], batches[5][0])


def test_a_class_short_of_a_share_is_left_out():
    labels = np.repeat([0, 1, 2, 3], [8, 8, 8, 3])  # class 3 fills no share of 4
    batches = FewClassBatches(np.arange(27), labels, 8, 2, seed=0)
    assert batches.batches_per_pass == 3
    seen = np.concatenate([batches[b][0] for b in range(3)])
    assert sorted(seen) == list(range(24))


def test_few_class_batches_refuse_what_they_cannot_make():
    x, y = np.arange(100), np.repeat([0, 1, 2], [80, 10, 10])
    with pytest.raises(ValueError, match="one class fills 40 of the 50 shares"):
        FewClassBatches(x, y, 4, 2, seed=0)
    with pytest.raises(ValueError, match="batch_size=5 must be a multiple of"):
        FewClassBatches(x, np.arange(100) % 10, 5, 2, seed=0)


# Normalizations and evaluation


@pytest.mark.parametrize("name", normalizations.NORMALIZATIONS)
def test_each_normalization_builds_and_runs_in_the_cnn(name, rng):
    factory = normalizations.normalization_layer(name, NORMALIZERS, batch_size=8)
    model = bnk.CNN(normalization=factory)
    x = rng.random((8, 28, 28, 1)).astype("float32")
    for training in (True, False):
        assert tuple(model(x, training=training).shape) == (8, 10)
    layers = [layer for block in model.blocks for layer in block]
    found = [layer for layer in layers if layer.name in ("bn1", "bn2")]
    expected = {
        "batch_norm": bnk.BatchNorm,
        "ghost_batch_norm": bnk.BatchNorm,
        "batch_renorm": bnk.BatchNorm,
        "group_norm": keras.layers.GroupNormalization,
        "layer_norm": keras.layers.LayerNormalization,
    }
    if name == "none":
        assert found == []
        return
    assert [type(layer) for layer in found] == [expected[name]] * 2
    config = found[0].get_config()
    if name == "ghost_batch_norm":
        assert config["virtual_batch_size"] == NORMALIZERS.ghost_batch_size
    if name == "batch_renorm":
        assert config["renorm"] is True
        assert config["renorm_clipping"] == NORMALIZERS.renorm_clipping.model_dump()
    if name == "group_norm":
        assert config["groups"] == NORMALIZERS.groups
    if name == "layer_norm":
        assert sorted(config["axis"]) == [-3, -2, -1]  # height, width, channels


def test_ghost_batches_are_no_larger_than_the_batch():
    factory = normalizations.normalization_layer("ghost_batch_norm", NORMALIZERS, 2)
    assert factory(name="bn1").virtual_batch_size == 2


def test_batch_statistics_model_is_training_mode_without_dropout(rng):
    x = rng.random((8, 28, 28, 1)).astype("float32")
    no_dropout = bnk.CNN(dropout=0.0)
    wrapped = normalizations.BatchStatisticsCNN(no_dropout)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(wrapped(x)),
        keras.ops.convert_to_numpy(no_dropout(x, training=True)),
        rtol=1e-5, atol=1e-6,
    )
    # With dropout the wrapper still leaves it off: the same logits twice.
    wrapped = normalizations.BatchStatisticsCNN(bnk.CNN(dropout=0.5))
    first = keras.ops.convert_to_numpy(wrapped(x))
    np.testing.assert_array_equal(first, keras.ops.convert_to_numpy(wrapped(x)))


def test_accuracy_with_batch_statistics_puts_the_moving_statistics_back(rng):
    model = bnk.CNN()
    x = rng.random((16, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, 16)
    model(x)
    before = [w.copy() for w in model.get_weights()]
    normalizations.BatchStatisticsCNN(model)(x)  # a call moves them...
    moved = model.blocks[0][1]
    assert not np.allclose(keras.ops.convert_to_numpy(moved.moving_mean), before[2])
    model.set_weights(before)
    accuracy = normalizations.accuracy_with_batch_statistics(model, x, y, 4)
    assert 0 <= accuracy <= 1
    for kept, weight in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, weight)  # ... this puts them back


def test_statistics_batches_are_of_the_training_size_and_one_pass_at_most():
    x, y = np.arange(40)[:, None], np.arange(40)
    batches = statistics_batches(x, y, 8, 100, seed=0)
    assert len(batches) == 5 and all(len(bx) == 8 for bx, _ in batches)
    seen = np.concatenate([bx[:, 0] for bx, _ in batches])
    assert sorted(seen) == list(range(40))
    assert len(statistics_batches(x, y, 8, 2, seed=0)) == 2


def test_population_accuracy_uses_recomputed_statistics(rng):
    model = bnk.CNN()
    x = rng.random((16, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, 16)
    model(x)
    population = statistics_batches(x, y, 4, 4, seed=0)
    measured = batch_sizes.accuracies(model, "batch_norm", 4, (x, y), population)
    # The moving statistics now are the recomputed ones, no longer the initial 0 and 1.
    layer = model.blocks[0][1]
    assert not np.allclose(keras.ops.convert_to_numpy(layer.moving_mean), 0.0)
    assert measured["population_accuracy"] == normalizations.accuracy(
        model, x, y, 8
    )
    plain = batch_sizes.accuracies(bnk.CNN(normalization=None), "none", 4, (x, y),
                                   population)
    assert plain["batch_statistics_accuracy"] is plain["population_accuracy"] is None


def test_whole_batches_and_the_learning_rate_rule():
    x, y = np.arange(50), np.arange(50)
    kept, _ = normalizations.whole_batches(x, y, 8, limit=30)
    assert kept.tolist() == list(range(24))
    config = experiment_params(ROOT / "params.yaml", "batch_sizes")
    rate = batch_sizes.scaled_learning_rate(config, 4 * config.reference_batch_size)
    assert rate == pytest.approx(2 * config.learning_rate)


# Params


@pytest.mark.parametrize(
    "section, change, message",
    [
        ("batch_sizes", {"batch_sizes": []},
         "`batch_sizes.batch_sizes` must be a non-empty list of distinct"),
        ("batch_sizes", {"normalizations": ["batch_nrom"]},
         "`batch_sizes.normalizations` must be a non-empty list of distinct names"),
        ("batch_sizes", {"test_images": 3},
         r"`batch_sizes.test_images`=3 must be between the largest batch size \(4\)"),
        ("batch_sizes", {"limit": 2},
         r"`batch_sizes.limit`=2 must be between the largest batch size \(4\)"),
        ("non_iid", {"batch_size": 5},
         "`non_iid.batch_size`=5 must be a multiple of `non_iid.classes_per_batch`=2"),
        ("non_iid", {"classes_per_batch": 1},
         "`non_iid.classes_per_batch` must be an integer from 2 to 5, got 1"),
    ],
)
def test_bad_params_name_the_key_and_value(tmp_path, section, change, message):
    config = json.loads(json.dumps(TINY))
    config[section].update(change)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(params.ParamsError, match=message):
        experiment_params(tmp_path / "params.yaml", section)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"groups": 5}, "`normalizers.groups`=5 must divide the CNN's 32 and 64"),
        ({"renorm_clipping": {"rmax": 3.0, "rmin": 2.0, "dmax": 5.0}},
         "`renorm_clipping` needs rmin <= 1 <= rmax, got rmin=2.0"),
        ({"renorm_momentum": 1.0},
         r"`non_iid.normalizers.renorm_momentum` must be in \[0, 1\), got 1.0"),
    ],
)
def test_bad_normalizer_settings_name_the_key(tmp_path, change, message):
    config = json.loads(json.dumps(TINY))
    config["non_iid"]["normalizers"].update(change)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(params.ParamsError, match=message):
        experiment_params(tmp_path / "params.yaml", "non_iid")


# The stages


def stage_run(tmp_path_factory, stage):
    root = tmp_path_factory.mktemp(stage)
    write_project(root, TINY)
    return root, *run_in(root, stage)


@pytest.fixture(scope="module")
def batch_sizes_run(tmp_path_factory):
    return stage_run(tmp_path_factory, "batch_sizes")


@pytest.fixture(scope="module")
def non_iid_run(tmp_path_factory):
    return stage_run(tmp_path_factory, "non_iid")


def test_batch_sizes_stage_writes_every_run_of_every_seed(batch_sizes_run):
    root, results, metrics = batch_sizes_run
    tiny = TINY["batch_sizes"]
    assert results["backend"] == keras.backend.backend()
    assert results["params"] == tiny
    assert results["seeds"] == [3, 4]
    assert [seed["seed"] for seed in results["by_seed"]] == [3, 4]
    for seed in results["by_seed"]:
        assert seed["training_images"] == 16 and seed["test_images"] == 16
        assert seed["momentum"] == batch_sizes.MOMENTUM
        runs = {(r["normalization"], r["batch_size"], r["budget"]): r
                for r in seed["runs"]}
        # At the largest batch size both budgets are one run, recorded once.
        assert set(runs) == {("batch_norm", 2, "epochs"), ("batch_norm", 2, "steps"),
                             ("batch_norm", 4, "epochs")}
        for (name, size, budget), run in runs.items():
            assert run["steps"] == 16 // (size if budget == "epochs" else 4)
            assert run["epochs"] == run["steps"] * size / 16
            assert 0 <= run["test_accuracy"] <= 1
            has_batch_statistics = name in normalizations.BATCH_STATISTICS
            assert (run["batch_statistics_accuracy"] is not None) == (
                has_batch_statistics)
            assert (run["population_accuracy"] is not None) == has_batch_statistics
            assert run["statistics_batches"] == min(2, 16 // size)
    assert metrics == batch_sizes_analysis.metrics(results)

    def accuracy(size, budget="epochs"):
        return [batch_sizes_analysis.find_run(seed, "batch_norm", size, budget)[
            "test_accuracy"] for seed in results["by_seed"]]

    assert metrics["seeds"] == [3, 4]
    # reference_batch_size 32 did not run: the baseline is at the closest, 4.
    assert metrics["baseline_accuracy"] == pytest.approx(np.mean(accuracy(4)))
    assert metrics["baseline_accuracy_std"] == pytest.approx(
        np.std(accuracy(4), ddof=1))
    assert metrics["bn_smallest"] == pytest.approx(np.mean(accuracy(2)))
    # The plots file: a row per batch size, a column per normalization.
    table = batch_sizes_analysis.plots(results).splitlines()
    assert table[0].split(",")[:7] == ["batch_size", *normalizations.NORMALIZATIONS]
    for line, size in zip(table[1:], (2, 4), strict=True):
        cells = dict(zip(table[0].split(","), line.split(","), strict=True))
        assert int(cells["batch_size"]) == size and cells["group_norm"] == ""
        assert float(cells["batch_norm"]) == pytest.approx(
            np.mean(accuracy(size)), abs=1e-6)
        assert float(cells["batch_norm_equal_steps"]) == pytest.approx(
            np.mean(accuracy(size, "steps")), abs=1e-6)


def test_non_iid_stage_trains_on_both_kinds_of_batches(non_iid_run):
    _, results, metrics = non_iid_run
    tiny = TINY["non_iid"]
    assert results["params"] == tiny
    assert results["seeds"] == [3, 4]
    for seed in results["by_seed"]:
        assert [(r["normalization"], r["sampling"]) for r in seed["runs"]] == [
            (n, s) for n in tiny["normalizations"] for s in ("iid", "non_iid")
        ]
        assert seed["training_images"] == 64 and seed["test_images"] == 32
        assert 0 < seed["few_class_test_images"] <= 32
        assert seed["steps"] > 0
    assert metrics == non_iid_analysis.metrics(results)
    iid = [non_iid_analysis.run_of(seed, "batch_norm", "iid")["test_accuracy"]
           for seed in results["by_seed"]]
    skewed = [non_iid_analysis.run_of(seed, "batch_norm", "non_iid")["test_accuracy"]
              for seed in results["by_seed"]]
    assert metrics["seeds"] == [3, 4]
    assert metrics["baseline_accuracy"] == pytest.approx(np.mean(iid))
    assert metrics["bn_non_iid"] == pytest.approx(np.mean(skewed))
    assert metrics["bn_non_iid_std"] == pytest.approx(np.std(skewed, ddof=1))


def every_normalization_results():
    """Results with every normalization at two batch sizes (both budgets) and both
    samplings, over two seeds."""
    by_seed = [
        {"seed": seed, "runs": [
            {"normalization": n, "batch_size": b, "budget": budget, "sampling": s,
             "test_accuracy": 0.87939453125}
            for n in normalizations.NORMALIZATIONS
            for b in (2, 256)
            for budget in ("epochs", "steps")
            for s in ("iid", "non_iid")
        ]}
        for seed in (3, 4)
    ]
    params = {"normalizations": list(normalizations.NORMALIZATIONS),
              "reference_batch_size": 32}
    return {"params": params, "seeds": [3, 4], "by_seed": by_seed}


def test_headlines_fit_dvc_metrics_show():
    results = every_normalization_results()
    for analysis in (batch_sizes_analysis, non_iid_analysis):
        written = analysis.metrics(results)
        assert written.pop("seeds") == [3, 4]
        assert len(written) == 6 and {"baseline_accuracy",
                                      "baseline_accuracy_std"} <= set(written)


def render(stage_result, monkeypatch, stage, name):
    root, results, _ = stage_result
    monkeypatch.chdir(root)
    # render() sets these for its kernel; monkeypatch puts them back afterwards.
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    run_stage(stage, notebook=ROOT / f"notebooks/{name}.ipynb")
    report = stage_path(stage, "output")
    executed = json.loads(report.with_suffix(".ipynb").read_text())
    outputs = [o for cell in executed["cells"] for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    return results, len(images), report.with_suffix(".html").read_text()


def test_batch_sizes_report_renders_its_numbers(batch_sizes_run, monkeypatch):
    results, images, html = render(
        batch_sizes_run, monkeypatch, "experiment_report@batch_sizes", "batch_sizes"
    )
    assert images == 2  # the error curves at both budgets, and the BN family's gap
    assert "What Wu &amp; He found." in html and "Caveats: 2 seed(s) (3, 4)" in html
    assert "At equal steps" in html and "The baseline is BN at batch 4" in html
    smallest = batch_sizes_analysis.values(results, "batch_norm", 2)
    assert f"BN {with_spread(smallest)} at batch 2" in html
    for absent in ("Batch Renorm", "GroupNorm uses", "ghost BN", "LayerNorm"):
        assert absent not in html


def test_non_iid_report_renders_its_numbers(non_iid_run, monkeypatch):
    results, images, html = render(
        non_iid_run, monkeypatch, "experiment_report@non_iid", "non_iid"
    )
    assert images == 2  # i.i.d. vs not, and the BN family by its statistics
    assert "What Ioffe found." in html and "Caveats: 2 seed(s) (3, 4)" in html
    skewed = non_iid_analysis.values(results, "batch_norm", "non_iid")
    assert f"{with_spread(skewed)} after non-i.i.d." in html
    assert "clips r" not in html and "GroupNorm uses" not in html


@pytest.mark.parametrize(
    "stage", ["experiment_report@batch_sizes", "experiment_report@non_iid"]
)
def test_reports_need_the_results(tmp_path, monkeypatch, stage):
    monkeypatch.chdir(tmp_path)
    results = stage_path(stage, "results")
    with pytest.raises(SystemExit, match=f"{results} is missing"):
        run_stage(stage)


def test_non_iid_fails_clearly_when_the_classes_cannot_fill_batches(
    tmp_path, monkeypatch
):
    config = json.loads(json.dumps(TINY))
    config["non_iid"].update(batch_size=32, classes_per_batch=2, test_images=32)
    write_project(tmp_path, config)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="non_iid: 64 training images make no batch"):
        run_stage("experiment@non_iid")
    assert not stage_path("experiment@non_iid", "results").exists()
