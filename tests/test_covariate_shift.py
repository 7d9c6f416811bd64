"""Stage covariate_shift (Santurkar et al., 2018): the noise layer, the probes against
NumPy, and the stage and its report end to end on tiny settings and small data."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from conftest import tiny_params, to_numpy
from stages import experiment_params, run_in, run_stage, stage_path

import bnk
from pipeline.core import params
from pipeline.core.backends import BACKEND_NAMES
from pipeline.experiments.covariate_shift import analysis as covariate_shift_findings
from pipeline.experiments.covariate_shift import run as cs
from pipeline.experiments.covariate_shift.params import Noise
from pipeline.reporting.spread import with_spread

ROOT = Path(__file__).resolve().parents[1]
TINY = tiny_params()
NOISE = Noise(mean=1.0, max_scale=3.0)


def noise_affine(layer, channels=3):
    """The (scale, shift) per channel of one training call of `layer`, read off
    its outputs for inputs 0 and 1 in one batch of two examples."""
    x = np.stack([np.zeros((2, channels)), np.ones((2, channels))]).astype("float32")
    out = to_numpy(layer(x, training=True))
    shift, scale = out[0], out[1] - out[0]
    # One draw per channel for the whole batch: every example and position agrees.
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-6)
    np.testing.assert_allclose(scale, np.broadcast_to(scale[0], scale.shape), atol=1e-5)
    return scale[0], shift[0]


def test_noise_is_a_new_random_affine_map_per_channel_at_every_step():
    layer = cs.DistributionNoise(mean=0.5, max_scale=2.0, seed=4)
    draws = [noise_affine(layer, channels=64) for _ in range(3)]
    for scale, shift in draws:
        assert np.all((scale >= 1) & (scale <= 2)) and np.all(np.abs(shift) <= 0.5)
        # Non-unit scale and non-zero shift, different per channel.
        assert scale.std() > 0.1 and np.abs(shift).mean() > 0.1
    # Time-varying: every call draws anew.
    assert not np.allclose(draws[0][0], draws[1][0])
    assert not np.allclose(draws[1][1], draws[2][1])
    # Seeded: the same seed replays the same draws, another seed does not.
    again = cs.DistributionNoise(mean=0.5, max_scale=2.0, seed=4)
    np.testing.assert_allclose(noise_affine(again, 64)[0], draws[0][0], rtol=1e-6)
    other = cs.DistributionNoise(mean=0.5, max_scale=2.0, seed=5)
    assert not np.allclose(noise_affine(other, 64)[0], draws[0][0])


def test_noise_in_inference_is_its_expectation(rng):
    layer = cs.DistributionNoise(mean=1.0, max_scale=3.0, seed=0)
    x = rng.normal(size=(4, 5, 5, 2)).astype("float32")
    np.testing.assert_allclose(to_numpy(layer(x, training=False)), 2.0 * x, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(layer(x)), 2.0 * x, rtol=1e-6)


def test_noise_config_round_trips_and_rejects_bad_arguments():
    layer = cs.DistributionNoise(mean=0.3, max_scale=1.5, seed=9, name="n")
    copy = cs.DistributionNoise.from_config(layer.get_config())
    assert (copy.mean, copy.max_scale, copy.seed, copy.name) == (0.3, 1.5, 9, "n")
    with pytest.raises(ValueError, match="max_scale >= 1, got mean=0.0, max_scale=0.5"):
        cs.DistributionNoise(mean=0.0, max_scale=0.5)
    with pytest.raises(ValueError, match="mean=-1"):
        cs.DistributionNoise(mean=-1, max_scale=2)


def test_the_variants_start_from_the_same_weights():
    models = {v: cs.build_cnn(v, NOISE, seed=2) for v in cs.VARIANTS}
    kernels = {
        v: to_numpy(m.blocks[0][0].kernel) for v, m in models.items()
    }
    np.testing.assert_array_equal(kernels["plain"], kernels["bn"])
    np.testing.assert_array_equal(kernels["bn"], kernels["noisy_bn"])
    assert [type(layer).__name__ for layer in models["plain"].blocks[0]] == [
        "Conv2D", "ReLU", "MaxPooling2D"
    ]
    assert isinstance(models["bn"].blocks[0][1], bnk.BatchNorm)
    noisy = models["noisy_bn"].blocks[0][1]
    assert [type(layer) for layer in noisy.layers] == [
        bnk.BatchNorm, cs.DistributionNoise
    ]
    assert models["noisy_bn"].dropout.rate == 0.0
    # Each block's noise has a seed of its own.
    seeds = [block[1].layers[1].seed for block in models["noisy_bn"].blocks]
    assert len(set(seeds)) == 2


def softmax_regression_landscape(w, x, y, step_sizes):
    """The landscape probe by hand for logits x @ w and mean cross-entropy."""

    def loss_and_gradient(w):
        logits = x @ w
        logits = logits - logits.max(1, keepdims=True)
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(len(y)), y]))
        p[np.arange(len(y)), y] -= 1
        return loss, x.T @ p / len(y)

    loss, g = loss_and_gradient(w)
    moved = [loss_and_gradient(w - eta * g) for eta in step_sizes]
    return {
        "loss": loss,
        "gradient_norm": np.linalg.norm(g),
        "losses": [m[0] for m in moved],
        "gradient_changes": [np.linalg.norm(m[1] - g) for m in moved],
    }


def test_landscape_probe_matches_softmax_regression_by_hand(rng):
    x = rng.normal(size=(16, 5)).astype("float32")
    y = rng.integers(0, 3, 16).astype("int32")
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(3, use_bias=False)]
    )
    w = rng.normal(size=(5, 3)).astype("float32")
    model.layers[0].kernel.assign(w)
    step_sizes = [0.1, 0.5, 2.0]
    probe = cs.landscape(
        cs.loss_and_gradients(model),
        [v.value for v in model.trainable_variables],
        [],
        x,
        y,
        step_sizes,
    )
    expected = softmax_regression_landscape(w.astype("float64"), x, y, step_sizes)
    assert probe["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert probe["gradient_norm"] == pytest.approx(expected["gradient_norm"], rel=1e-4)
    np.testing.assert_allclose(probe["losses"], expected["losses"], rtol=1e-4)
    np.testing.assert_allclose(
        probe["gradient_changes"], expected["gradient_changes"], rtol=1e-3
    )
    # The probe changed nothing: the kernel is where it was.
    np.testing.assert_array_equal(to_numpy(model.layers[0].kernel), w)


def test_layer_input_probe_is_the_layers_input_and_changes_nothing(rng):
    model = cs.build_cnn("noisy_bn", NOISE, seed=1)
    x = rng.uniform(size=(6, 28, 28, 1)).astype("float32")
    state = [to_numpy(v) for v in model.variables]
    probe = cs.layer_input(model, "conv2")
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    first = probe(trainable, non_trainable, x)
    assert first.shape == (6, 14, 14, 32)
    # The same state replays the same noise; nothing of the model moved.
    np.testing.assert_array_equal(probe(trainable, non_trainable, x), first)
    for before, variable in zip(state, model.variables, strict=True):
        np.testing.assert_array_equal(before, to_numpy(variable))
    # It is the first block's output in training mode, noise included.
    by_hand = x
    for layer in model.blocks[0]:
        by_hand = layer(by_hand, training=True)
    np.testing.assert_allclose(first, to_numpy(by_hand), rtol=1e-4, atol=1e-5)


def test_channel_moments():
    values = np.arange(24, dtype=float).reshape(2, 3, 4)
    mean, std = cs.channel_moments(values)
    flat = values.reshape(-1, 4)
    np.testing.assert_allclose(mean, flat.mean(0))
    np.testing.assert_allclose(std, flat.std(0))


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory):
    """The stage's main() once, in a scratch project: (root, results, metrics)."""
    root = tmp_path_factory.mktemp("covariate_shift")
    write_project(root)
    return root, *run_in(root, "covariate_shift")


def test_plots_file_is_the_probe_table(stage_run):
    _, results, _ = stage_run
    header, *rows = covariate_shift_findings.plots(results).splitlines()
    assert header.startswith("training_step,plain_val_accuracy,") and len(rows) == 3
    assert header.endswith(",bn_loss_spread_std")


def write_project(root, config=TINY):
    rng = np.random.default_rng(0)
    (root / "params.yaml").write_text(yaml.safe_dump(config))
    (root / "data").mkdir(exist_ok=True)
    np.savez(
        root / "data/mnist.npz",
        x_train=rng.integers(0, 256, (96, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 96).astype(np.uint8),
        x_test=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 10).astype(np.uint8),
    )
    (root / "state").mkdir(exist_ok=True)
    (root / "state/backend.txt").write_text(keras.backend.backend() + "\n")


def test_results_file_has_its_shape(stage_run):
    _, results, metrics = stage_run
    config = TINY["covariate_shift"]
    seeds = TINY["experiments"]["seeds"]
    assert results["backend"] == keras.backend.backend()
    assert results["params"] == config
    assert results["seeds"] == seeds
    assert [run["seed"] for run in results["by_seed"]] == seeds
    for run in results["by_seed"]:
        assert run["steps"] == [0, 2, 4]
        assert run["training_images"] == 64 and run["validation_images"] == 16
        assert run["test_images"] == 10 and run["probed_layer"] == "conv2"
        for variant in cs.VARIANTS:
            series = run[variant]
            assert len(series["val_accuracy"]) == 3
            assert all(0 <= a <= 1 for a in series["val_accuracy"])
            assert 0 <= series["test_accuracy"] <= 1
            assert series["train_loss"][0] is None and series["train_loss"][2] > 0
            assert np.array(series["input_mean"]).shape == (3, 32)
            assert np.all(np.array(series["input_std"]) >= 0)
            assert ("landscape" in series) == (variant in cs.LANDSCAPE_VARIANTS)
        for variant in cs.LANDSCAPE_VARIANTS:
            probes = run[variant]["landscape"]
            assert len(probes) == 3
            assert all(
                len(p["losses"]) == len(p["gradient_changes"]) == 2 for p in probes
            )
            assert all(p["gradient_norm"] > 0 for p in probes)
        # The variants differ: BN and noisy BN see different inputs at conv2.
        assert run["bn"]["input_mean"] != run["noisy_bn"]["input_mean"]
    # The seeds differ: another seed, other initial weights.
    first, second = results["by_seed"]
    assert first["plain"]["input_mean"] != second["plain"]["input_mean"]
    assert covariate_shift_findings.LANDSCAPE_VARIANTS == cs.LANDSCAPE_VARIANTS
    assert metrics == covariate_shift_findings.metrics(results)
    assert metrics["seeds"] == seeds
    bn = [run["bn"]["test_accuracy"] for run in results["by_seed"]]
    assert metrics["baseline_accuracy"] == pytest.approx(np.mean(bn))
    assert metrics["baseline_accuracy_std"] == pytest.approx(np.std(bn, ddof=1))
    numbers = {k: v for k, v in metrics.items() if k != "seeds"}
    assert all(isinstance(v, float | int) for v in numbers.values())
    assert metrics["bn_smoother_measures"] in (0, 1, 2, 3)


def test_report_renders_the_three_figures_and_the_findings(stage_run, monkeypatch):
    root, results, _ = stage_run
    monkeypatch.chdir(root)
    # render() sets these for its kernel; monkeypatch puts them back afterwards.
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    run_stage(
        "experiment_report@covariate_shift",
        notebook=ROOT / "notebooks/covariate_shift.ipynb",
    )
    report = stage_path("experiment_report@covariate_shift", "output")
    executed = json.loads(report.with_suffix(".ipynb").read_text())
    outputs = [o for cell in executed["cells"] for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert not [o for o in outputs if o.get("output_type") == "stream"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # training, instability, landscape
    assert all("standard deviation over the seeds" in o["metadata"]["alt"]
               for o in images)
    html = report.with_suffix(".html").read_text()
    for opening in ("Training.", "Instability of the layer inputs.", "Loss landscape."):
        assert f"<strong>{opening}</strong>" in html
    seeds = TINY["experiments"]["seeds"]
    listed = ", ".join(map(str, seeds))
    assert f"Caveats: {len(seeds)} seeds ({listed})" in html
    # The reading quotes the measured numbers, with their spread over the seeds.
    final = with_spread(
        [run["noisy_bn"]["test_accuracy"] for run in results["by_seed"]]
    )
    assert f"{final} with noisy BN" in html
    assert f"Seeds {listed}: every number below" in html
    backend = BACKEND_NAMES[keras.backend.backend()]
    assert f"<title>bnk: is it internal covariate shift? ({backend})</title>" in html


def test_report_needs_the_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = stage_path("experiment_report@covariate_shift", "results")
    with pytest.raises(SystemExit, match=f"{results} is missing"):
        run_stage("experiment_report@covariate_shift")


def test_too_few_images_for_one_block_fails_clearly(tmp_path, monkeypatch):
    config = json.loads(json.dumps(TINY))
    config["covariate_shift"].update(batch_size=48, limit=None)  # 48 * 2 > 80 images
    write_project(tmp_path, config)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=(
        r"covariate_shift: 80 training images are fewer than one block of "
        r"batch_size \* probe_every = 96"
    )):
        run_stage("experiment@covariate_shift")
    assert not stage_path("experiment@covariate_shift", "results").exists()


def test_committed_params_are_valid():
    config = experiment_params(ROOT / "params.yaml", "covariate_shift")
    assert config.steps % config.probe_every == 0 and config.noise.max_scale > 1


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("steps", 5, "`covariate_shift.steps`=5 must be a multiple of"),
        ("momentum", 1, r"`covariate_shift.momentum` must be in \[0, 1\), got 1"),
        ("step_sizes", [], "`covariate_shift.step_sizes` must be a non-empty list"),
        ("step_sizes", [0.1, 0], r"`covariate_shift.step_sizes\[1\]` must be a pos"),
        ("noise", {"mean": 1, "max_scale": 0.5},
         "`covariate_shift.noise.max_scale` must be a number >= 1, got 0.5"),
        ("noise", {"mean": -1, "max_scale": 2},
         "`covariate_shift.noise.mean` must be a number >= 0, got -1"),
        ("limit", 60_000, "`covariate_shift.limit`=60000 is larger than the 59984"),
        ("stpes", 3, "unknown key `covariate_shift.stpes`"),
    ],
)
def test_bad_params_name_the_key(tmp_path, key, value, message):
    config = json.loads(json.dumps(TINY))
    config["covariate_shift"][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(params.ParamsError, match=message):
        experiment_params(tmp_path / "params.yaml", "covariate_shift")
