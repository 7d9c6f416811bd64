"""The stages' logic on small synthetic data, in a scratch working directory."""

import json
import subprocess

import keras
import pytest
import yaml
from conftest import TINY

from pipeline import backend, evaluate, params, train
from pipeline.atomic import atomic_path


def write_params(path, **changes):
    config = json.loads(json.dumps(TINY))
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        config[section][key] = value
    (path / "params.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"train__epochs": 0}, "`train.epochs` must be a positive integer, got 0"),
        ({"train__batch_size": -64}, "`train.batch_size` must be a positive integer, got -64"),
        ({"train__learning_rate": 0}, "`train.learning_rate` must be a positive number, got 0"),
        ({"train__limit": 60_000}, "`train.limit`=60000 is larger than the 59936"),
        ({"train__epoch": 3}, "unknown key `train.epoch`"),
    ],
)
def test_invalid_train_params_name_the_key(workdir, change, message):
    write_params(workdir, **change)
    with pytest.raises(params.ParamsError, match=message):
        train.load_params()


def test_unknown_top_level_key(workdir):
    (workdir / "params.yaml").write_text(yaml.safe_dump({**TINY, "trian": {}}))
    with pytest.raises(params.ParamsError, match="unknown top-level key `trian`"):
        train.load_params()


def test_unknown_backend_is_named(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "mxnet")
    with pytest.raises(SystemExit, match="Unknown KERAS_BACKEND='mxnet'"):
        backend.main()


def test_backend_stage_records_this_backend(workdir, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    backend.main()
    assert (workdir / "state/backend.txt").read_text().strip() == keras.backend.backend()


def test_train_then_evaluate(workdir, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    train.main()
    metrics = json.loads((workdir / "metrics/train.json").read_text())
    assert metrics["backend"] == keras.backend.backend()
    assert metrics["training_images"] == 256 - 64
    assert metrics["images_per_second"] > 0 and metrics["epochs_run_by_this_process"] == 2
    history = (workdir / "metrics/train_history.csv").read_text().splitlines()
    assert history[0].split(",")[0] == "epoch" and len(history) == 3
    assert not list((workdir / "checkpoints").iterdir())  # backup removed when done

    evaluate.main()
    result = json.loads((workdir / "metrics/eval.json").read_text())
    assert set(result["per_class_accuracy"]) == {str(c) for c in range(10)}
    assert 0 <= result["accuracy"] <= 1 and result["test_images"] == 100
    predictions = (workdir / "metrics/test_predictions.csv").read_text().splitlines()
    assert predictions[0] == "actual,predicted" and len(predictions) == 101


def test_interrupted_training_resumes_from_last_epoch(workdir, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())

    def crash_after_first_epoch(self, epoch, logs=None):
        raise RuntimeError("simulated crash")

    with monkeypatch.context() as patch:
        patch.setattr(train.EpochCounter, "on_epoch_end", crash_after_first_epoch)
        with pytest.raises(RuntimeError, match="simulated crash"):
            train.main()
    assert not (workdir / "models/cnn.keras").exists()
    train.main()
    metrics = json.loads((workdir / "metrics/train.json").read_text())
    assert metrics["epochs_run_by_this_process"] == 1
    assert len((workdir / "metrics/train_history.csv").read_text().splitlines()) == 3


def test_evaluate_without_model_says_what_to_do(workdir, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    with pytest.raises(SystemExit, match="No trained model at models/cnn.keras"):
        evaluate.main()
    assert not (workdir / "metrics").exists()


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_compare_records_every_step_and_the_probes(workdir, monkeypatch):
    from pipeline import compare

    compare.main()
    result = json.loads((workdir / f"metrics/compare/{keras.backend.backend()}.json").read_text())
    assert result["backend"] == keras.backend.backend()
    assert result["steps"] == len(result["losses"]) == 3  # 40 images in batches of 16
    assert all(loss > 0 for loss in result["losses"])
    assert result["test_images"] == 100 and 0 <= result["test_accuracy"] <= 1
    assert set(result["batch_mean_error"]) == {"keras.ops.mean", "bnk.functional.moments"}
    assert result["batch_mean_error"]["bnk.functional.moments"] < 1e-5
    gamma = [name for name in result["weights_after_first_step"] if name.endswith("gamma")]
    assert len(gamma) == 2 and len(result["weights_after_first_step"][gamma[0]]) == 32


def test_code_version_names_the_commit_and_marks_changes(workdir):
    from pipeline.environment import code_version

    assert code_version() == "not a git checkout"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "add", "params.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "t"], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    assert code_version() == commit
    (workdir / "params.yaml").write_text("seed: 4\n")
    assert code_version() == f"{commit} plus uncommitted changes"
