"""`synchronized=True`: batch statistics over the batch of every data-parallel replica.

Without replicas the layer is plain batch norm, checked under the suite's backend. The
equivalence checks run a helper, `tests/replicas_<backend>.py`, in a subprocess that
sets up its devices or processes before its backend starts and writes what it
computed to .npz files for the test to compare; each runs in one suite run, that of
the backend it exercises (`in_one_suite_run`).
"""

from pathlib import Path

import numpy as np
import pytest
from conftest import in_one_suite_run, random_bn_weights, to_numpy
from data_parallel import DEVICES, run_python

import bnk

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("mask", ["none", "partial", "all"])
@pytest.mark.parametrize("unbiased", [False, True])
def test_without_replicas_it_is_plain_batch_norm(rng, mask, unbiased):
    x = rng.normal(3.0, 2.0, (8, 5, 3)).astype("float32")
    masks = {
        "none": None,
        "partial": rng.random(x.shape[:-1]) > 0.3,
        "all": np.zeros(x.shape[:-1], bool),
    }
    weights = random_bn_weights(rng, 3)
    layers = [
        bnk.BatchNorm(synchronized=True, unbiased_moving_variance=unbiased),
        bnk.BatchNorm(unbiased_moving_variance=unbiased),
    ]
    outputs = []
    for layer in layers:
        layer.build(x.shape)
        layer.set_weights(weights)
        outputs.append(to_numpy(layer(x, training=True, mask=masks[mask])))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-6)
    for synchronized, plain in zip(
        layers[0].get_weights(), layers[1].get_weights(), strict=True
    ):
        np.testing.assert_allclose(synchronized, plain, rtol=1e-6, atol=1e-7)


def test_large_mean_without_replicas(rng):
    x = (rng.normal(0.0, 1.0, (4096, 3)) + 1e4).astype("float32")
    layer = bnk.BatchNorm(momentum=0.0, synchronized=True)
    y = to_numpy(layer(x, training=True))
    np.testing.assert_allclose(y.std(axis=0), 1.0, atol=1e-3)
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), x.astype("float64").var(axis=0), rtol=1e-3
    )


def test_cannot_be_combined_with_virtual_batch_size():
    with pytest.raises(ValueError, match="cannot be combined.*virtual_batch_size=4"):
        bnk.BatchNorm(synchronized=True, virtual_batch_size=4)


@in_one_suite_run("jax")
def test_jax_data_parallel_fit_step_equals_one_device(tmp_path):
    """On 4 devices, both with synchronized=True and without: Keras compiles one
    program over the sharded batch, whose statistics are global."""
    run_python([HERE / "replicas_jax.py", tmp_path / "jax.npz"], "jax",
               simulated_devices=DEVICES)
    results = np.load(tmp_path / "jax.npz")
    for i, name in enumerate(results["names"]):
        expected = results[f"one_device.{i}"]
        for run in ("synchronized", "unsynchronized"):
            np.testing.assert_allclose(
                results[f"{run}.{i}"], expected, rtol=0, atol=1e-5,
                err_msg=f"{name}, DataParallel, {run}",
            )
        if "moving" in name:  # the step moved them: not a check of untouched values
            assert np.abs(expected - results[f"initial.{i}"]).max() > 1e-2, name


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    path = tmp_path_factory.mktemp("tensorflow") / "tensorflow.npz"
    run_python([HERE / "replicas_tensorflow.py", path], "tensorflow")
    return dict(np.load(path))


@in_one_suite_run("tensorflow")
@pytest.mark.parametrize("setting", ["synchronized", "unsynchronized"])
def test_tensorflow_mirrored_strategy_on_two_cpus(mirrored, setting):
    """synchronized=True equals one device with the whole batch; False equals one
    device with ghost batches of half the batch: outputs, gradients (of the inputs and
    every weight), each replica's moving statistics, every weight after a fit step."""
    assert mirrored["replicas"] == 2
    one_device = {
        key.split(".", 2)[2]: value
        for key, value in mirrored.items()
        if key.startswith(f"{setting}.one_device.")
    }
    replicas = f"{setting}.mirrored."
    for key, expected in one_device.items():
        if key.startswith("moving_"):  # one copy per replica, all the same
            name = key.split(".")[0]
            copies = [mirrored[f"{replicas}{name}.{r}"] for r in range(2)]
            np.testing.assert_array_equal(copies[0], copies[1], err_msg=name)
        np.testing.assert_allclose(
            mirrored[replicas + key], expected, rtol=1e-5, atol=1e-5, err_msg=key
        )
    # The two settings' references differ: neither check could pass for the other.
    differences = np.abs(
        mirrored["synchronized.one_device.outputs"]
        - mirrored["unsynchronized.one_device.outputs"]
    )
    assert differences.max() > 0.1


# The means of the two shards of the batch, as the helper reads them.
SHARD_MEANS = ["0,0", "0,1e4", "1e4,1e4"]


@pytest.fixture(scope="module")
def gloo(tmp_path_factory):
    out = tmp_path_factory.mktemp("torch")
    run_python([HERE / "replicas_torch.py", out, *SHARD_MEANS], "torch")
    return out


@in_one_suite_run("torch")
@pytest.mark.parametrize("means", SHARD_MEANS)
def test_torch_gloo_process_group_equals_one_process(gloo, means):
    """Two processes, one shard each, against one process with the whole batch, and
    the statistics against float64 NumPy: at a large mean, in one shard or both, the
    variance keeps its precision (a sum of squares would lose every digit)."""
    one = np.load(gloo / means / "one_process.npz")
    ranks = [np.load(gloo / means / f"rank{rank}.npz") for rank in range(2)]
    # Within two units of float32's resolution at the inputs' magnitude.
    largest = max(float(mean) for mean in means.split(","))
    atol = 1e-5 + 2 * float(np.spacing(np.float32(largest)))
    for key in ("outputs", "input_gradient"):
        np.testing.assert_allclose(
            np.concatenate([r[key] for r in ranks]), one[key], rtol=1e-5, atol=atol,
            err_msg=key,
        )
    for key in ("gamma_gradient", "beta_gradient"):
        # Each process holds the part of the gradient from its shard.
        np.testing.assert_allclose(
            ranks[0][key] + ranks[1][key], one[key], rtol=1e-5, atol=atol, err_msg=key
        )
    x = one["inputs"].astype("float64").reshape(-1, 2)
    mean, variance = x.mean(axis=0), x.var(axis=0)
    for key in ("moving_mean", "moving_variance"):
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)
    for result in (one, *ranks):
        np.testing.assert_allclose(result["moving_mean"], mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(result["moving_variance"], variance, rtol=1e-5)
    x_hat = (one["inputs"] - mean) / np.sqrt(variance + 1e-3)
    np.testing.assert_allclose(
        one["outputs"], one["gamma"] * x_hat + one["beta"], rtol=1e-5, atol=atol
    )
