"""Stage bn_experiment on tiny settings and small synthetic MNIST."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from conftest import tiny_params
from stages import experiment_params, run_in, run_stage, stage_path
from synthetic_project import synthetic_mnist, write_project

from pipeline.core import params, runs
from pipeline.experiments.bn_experiment import analysis as findings
from pipeline.experiments.bn_experiment import run as figure1
from pipeline.experiments.bn_experiment.params import Mlp
from pipeline.reporting.spread import with_spread

ROOT = Path(__file__).resolve().parents[1]

TINY = tiny_params()
TINY["seed"] = 5
TINY["bn_experiment"] = {
    "mlp": {
        "steps": 20, "eval_every": 10, "batch_size": 12, "learning_rate": 0.5,
        "init_stddev": 0.1, "unit": 3, "limit": None,
    },
    "cnn": {
        "steps": 4, "eval_every": 2, "batch_size": 8, "learning_rates": [0.001],
        "validation": 16, "limit": None,
    },
}


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory):
    """The stage's main() once, in a scratch project: (root, metrics)."""
    root = tmp_path_factory.mktemp("bn_experiment")
    write_project(root, TINY)
    keras.utils.set_random_seed(0)
    return root, *run_in(root, "bn_experiment")


def test_results_file_has_its_shape(stage_run):
    _, results, _ = stage_run
    assert results["backend"] == keras.backend.backend()
    assert results["wall_seconds"] > 0
    assert results["params"] == TINY["bn_experiment"]
    assert results["seeds"] == TINY["experiments"]["seeds"] == [3, 4]
    assert [run["seed"] for run in results["by_seed"]] == [3, 4]
    for run in results["by_seed"]:
        assert run["wall_seconds"] > 0
        check_one_seed(run["mlp"], run["cnn"])
    # Each seed draws its own kernels and batches.
    first, second = results["by_seed"]
    assert first["mlp"]["percentiles"] != second["mlp"]["percentiles"]
    assert first["cnn"]["runs"][0]["loss"] != second["cnn"]["runs"][0]["loss"]


def check_one_seed(mlp, cnn):
    assert mlp["steps"] == [0, 10, 20]
    assert (
        mlp["unit"] == 3 and mlp["training_images"] == 240 and mlp["test_images"] == 50
    )
    for name in ("bn", "plain"):
        assert len(mlp[name]) == 3 and all(0 <= a <= 1 for a in mlp[name])
        assert len(mlp["loss"][name]) == 3
        assert set(mlp["percentiles"][name]) == {"15", "50", "85"}
        low, mid, high = (
            np.array(mlp["percentiles"][name][q]) for q in ("15", "50", "85")
        )
        assert low.shape == (3,) and np.all(low <= mid) and np.all(mid <= high)
        assert mlp["wall_seconds"][name] > 0
    assert len(mlp["bn_gamma"]) == len(mlp["bn_beta"]) == 3
    assert mlp["bn_gamma"][0] == 1.0 and mlp["bn_beta"][0] == 0.0  # initial values
    # Different networks: the two variants' records differ.
    assert mlp["percentiles"]["bn"] != mlp["percentiles"]["plain"]
    assert cnn["steps"] == [2, 4]
    assert cnn["training_images"] == 224 and cnn["validation_images"] == 16
    assert cnn["test_images"] == 50
    assert [(r["learning_rate"], r["batch_norm"]) for r in cnn["runs"]] == [
        (0.001, True), (0.001, False)
    ]
    for run in cnn["runs"]:
        for key in ("val_accuracy", "val_loss", "loss", "accuracy"):
            assert len(run[key]) == 2
        assert all(0 <= a <= 1 for a in run["val_accuracy"])
        assert all(loss > 0 for loss in run["val_loss"])
        # on the 50 test images: a multiple of 1/50
        assert 0 <= run["test_accuracy"] <= 1
        hits = 50 * run["test_accuracy"]
        assert hits == pytest.approx(round(hits))


def test_metrics_file_holds_the_headline_over_the_seeds(stage_run):
    _, results, headline = stage_run

    def over_seeds(pick):
        values = [pick(run) for run in results["by_seed"]]
        return pytest.approx(np.mean(values)), pytest.approx(np.std(values, ddof=1))

    def final(index):
        return over_seeds(lambda run: run["cnn"]["runs"][index]["test_accuracy"])

    bn, plain = final(0), final(1)  # the only rate: 0.001, with and without BN
    assert headline == {
        "seeds": [3, 4],
        "baseline_accuracy": bn[0], "baseline_accuracy_std": bn[1],
        "figure1_bn": over_seeds(lambda run: run["mlp"]["bn"][-1])[0],
        "figure1_plain": over_seeds(lambda run: run["mlp"]["plain"][-1])[0],
        "cnn_bn_final": bn[0], "cnn_plain_final": plain[0],
    }


def test_mlp_variants_are_figure_1s_network():
    with_bn = figure1.build_mlp(True, 0.1, seed=7)
    plain = figure1.build_mlp(False, 0.1, seed=7)

    def kinds(model):
        return [type(layer).__name__ for layer in model.layers[1:]]

    assert kinds(with_bn) == ["Dense", "BatchNorm", "Activation"] * 3 + ["Dense"]
    assert kinds(plain) == ["Dense", "Activation"] * 3 + ["Dense"]
    for i in (1, 2, 3):
        assert with_bn.get_layer(f"dense{i}").units == 100
        assert not with_bn.get_layer(f"dense{i}").use_bias  # BN's beta replaces it
        assert plain.get_layer(f"dense{i}").use_bias
        assert with_bn.get_layer(f"sigmoid{i}").get_config()["activation"] == "sigmoid"
        # Both variants start from the same Gaussian kernels.
        kernel = with_bn.get_layer(f"dense{i}").kernel.numpy()
        np.testing.assert_array_equal(
            kernel, plain.get_layer(f"dense{i}").kernel.numpy()
        )
        assert abs(kernel.std() - 0.1) < 0.01 and abs(kernel.mean()) < 0.01
    assert with_bn.output.shape == (None, 10)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def last_sigmoid_input(model, x, batch_norm):
    """The last hidden layer's pre-sigmoid values, by hand from the weights
    (inference)."""
    h = x
    for i in (1, 2, 3):
        dense = model.get_layer(f"dense{i}")
        z = h @ keras.ops.convert_to_numpy(dense.kernel)
        if batch_norm:
            gamma, beta, mean, variance = model.get_layer(f"bn{i}").get_weights()
            z = gamma * (z - mean) / np.sqrt(variance + 1e-3) + beta
        else:
            z = z + keras.ops.convert_to_numpy(dense.bias)
        if i == 3:
            return z
        h = sigmoid(z)


@pytest.mark.parametrize("batch_norm", [True, False], ids=["bn", "plain"])
def test_percentiles_are_of_the_last_sigmoids_input(batch_norm, rng):
    data = synthetic_mnist(rng)
    x = data["x_train"].reshape(-1, 784).astype("float32") / 255
    x_test = data["x_test"].reshape(-1, 784).astype("float32") / 255
    y, y_test = data["y_train"].astype("int32"), data["y_test"].astype("int32")
    config = Mlp(**{**TINY["bn_experiment"]["mlp"], "unit": 7})
    model, recorder, _ = figure1.train_mlp(
        batch_norm, config, 3, (x, y), (x_test, y_test)
    )
    assert recorder.steps == [0, 10, 20]
    # Training ran: the kernels moved away from their seeded start.
    start = figure1.build_mlp(batch_norm, 0.1, 3)
    assert not np.allclose(start.get_layer("dense3").kernel.numpy(),
                           keras.ops.convert_to_numpy(model.get_layer("dense3").kernel))
    # The last record is the final model's state.
    z = last_sigmoid_input(model, x_test, batch_norm)
    for q in ("15", "50", "85"):
        expected = np.percentile(z[:, 7], float(q))
        np.testing.assert_allclose(
            recorder.percentiles[q][-1], expected, rtol=1e-4, atol=1e-5
        )
    if batch_norm:
        gamma, beta = model.get_layer("bn3").get_weights()[:2]
        recorded = (recorder.gamma[-1], recorder.beta[-1])
        assert recorded == pytest.approx((gamma[7], beta[7]))
    else:
        assert recorder.gamma == recorder.beta == []
    logits = sigmoid(z) @ keras.ops.convert_to_numpy(model.get_layer("logits").kernel)
    logits += keras.ops.convert_to_numpy(model.get_layer("logits").bias)
    assert recorder.accuracy[-1] == pytest.approx(np.mean(logits.argmax(1) == y_test))


def test_committed_params_are_valid():
    config = experiment_params(ROOT / "params.yaml", "bn_experiment")
    assert config.mlp.batch_size == 60 and config.mlp.steps == 50_000
    # the first rate is the reference setting: the seed's
    assert config.cnn.learning_rates[0] == 0.0005
    assert len(config.cnn.learning_rates) >= 2


@pytest.mark.parametrize(
    "part, key, value, message",
    [
        ("mlp", "steps", 25, "`bn_experiment.mlp.steps`=25 must be a multiple of"),
        ("mlp", "unit", 100,
         r"`bn_experiment.mlp.unit` must be an integer in \[0, 100\)"),
        ("mlp", "learning_rate", 0,
         "`bn_experiment.mlp.learning_rate` must be a positive number"),
        ("mlp", "stpes", 3, "unknown key `bn_experiment.mlp.stpes`"),
        ("cnn", "learning_rates", [],
         "`bn_experiment.cnn.learning_rates` must be a non-empty list"),
        ("cnn", "learning_rates", [0.1, -1],
         r"`bn_experiment.cnn.learning_rates\[1\]` must be a pos"),
        ("cnn", "limit", 60_000,
         "`bn_experiment.cnn.limit`=60000 is larger than the 59984"),
    ],
)
def test_bad_params_name_the_key(tmp_path, part, key, value, message):
    config = json.loads(json.dumps(TINY))
    config["bn_experiment"][part][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(params.ParamsError, match=message):
        experiment_params(tmp_path / "params.yaml", "bn_experiment")


def test_too_few_images_for_one_block_fails_clearly(tmp_path, monkeypatch):
    config = json.loads(json.dumps(TINY))
    config["bn_experiment"]["mlp"]["batch_size"] = 30  # 30 * 10 > 240 images
    write_project(tmp_path, config)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        SystemExit, match="240 training images are fewer than one block"
    ):
        run_stage("experiment@bn_experiment")
    assert not stage_path("experiment@bn_experiment", "results").exists()


def test_report_needs_the_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = stage_path("experiment_report@bn_experiment", "results")
    with pytest.raises(SystemExit, match=f"{results} is missing"):
        run_stage("experiment_report@bn_experiment")


def test_notebook_executes_on_tiny_results(stage_run, monkeypatch):
    root, results, _ = stage_run
    monkeypatch.chdir(root)
    # render() sets these for its kernel; monkeypatch puts them back afterwards.
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    run_stage(
        "experiment_report@bn_experiment",
        notebook=ROOT / "notebooks/bn_experiment.ipynb",
    )
    report = stage_path("experiment_report@bn_experiment", "output")
    # Its metrics and plots files, from the experiment's analysis.
    metrics = json.loads(stage_path("experiment_report@bn_experiment", "metrics")
                         .read_text())
    assert metrics == findings.metrics(results)
    plots = stage_path("experiment_report@bn_experiment", "plots").read_text()
    assert plots == findings.plots(results)
    assert plots.splitlines()[0] == "step,bn,plain,bn_std,plain_std"
    executed = json.loads(report.with_suffix(".ipynb").read_text())
    outputs = [o for cell in executed["cells"] for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # Figure 1 (a, b, c) and the CNN comparison
    alts = [o.get("metadata", {}).get("alt", "") for o in images]
    assert "the mean over 2 seeds with a band of one standard deviation" in alts[0]
    assert "for seed 3 only" in alts[0]
    assert "the mean over 2 seeds with a band" in alts[1]
    assert not [o for o in outputs if o.get("name") == "stderr"]
    html = report.with_suffix(".html").read_text()
    assert "Figure 1a." in html and "The CNN." in html
    # The reading quotes the measured numbers over the seeds.
    bn, plain = ([run["mlp"][v][-1] for run in results["by_seed"]]
                 for v in ("bn", "plain"))
    assert f"at step 20: {with_spread(bn)} vs {with_spread(plain)}" in html
    baseline = with_spread(run["cnn"]["runs"][0]["test_accuracy"]
                           for run in results["by_seed"])
    assert f"the report&#39;s baseline, is {baseline}" in html or (
        f"the report's baseline, is {baseline}" in html
    )
    assert f"Backend <strong>{keras.backend.backend()}</strong>" in html


def test_figure_1_batches_are_not_periodic():
    """Every pass over the data is a new shuffle: no sawtooth of period one pass."""
    x, y = np.arange(600)[:, None], np.arange(600)
    batches = runs.training_batches(x, y, batch_size=60, seed=0)
    per_pass = batches.batches_per_pass
    first, second = ([batches[b][1] for b in range(p * per_pass, (p + 1) * per_pass)]
                     for p in range(2))
    everything = list(range(600))
    assert sorted(np.concatenate(first)) == sorted(np.concatenate(second)) == everything
    assert all(not np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_the_findings_read_the_stages_results_with_their_numbers(stage_run):
    _, results, _ = stage_run
    figure1 = findings.figure1_findings(results)
    cnn = findings.cnn_findings(results)
    for line in figure1 + cnn:
        assert isinstance(line, str) and line.strip()
    assert figure1[0].startswith("**Figure 1a.**")
    runs = results["by_seed"]
    bn = with_spread(run["mlp"]["bn"][-1] for run in runs)
    plain = with_spread(run["mlp"]["plain"][-1] for run in runs)
    assert f"at step 20: {bn} vs {plain}." in figure1[0]
    assert "over 2 seeds (3, 4)" in figure1[0]
    assert cnn[0].startswith("**The CNN.**")
    for rate in results["params"]["cnn"]["learning_rates"]:
        prefix = f"- Learning rate {rate:g}:"
        line = next(line for line in cnn if line.startswith(prefix))
        for batch_norm in (True, False):
            tests = [findings.cnn_run(run, rate, batch_norm)["test_accuracy"]
                     for run in runs]
            vals = [findings.cnn_run(run, rate, batch_norm)["val_accuracy"][-1]
                    for run in runs]
            assert with_spread(tests) in line and with_spread(vals) in line
    assert cnn[-1].startswith("Caveats: 2 seeds (3, 4)")
    first = runs[0]
    assert f"{first['cnn']['validation_images']:,} validation images" in cnn[-1]
    assert f"{first['mlp']['test_images']:,} test images" in cnn[-1]
    # Tables the page shows.
    assert len(findings.figure1_table(results).splitlines()) == 2 + 3  # 3 steps
    assert findings.cnn_table(results).count("| 0.001 |") == 2
