"""pipeline.core.outputs: a failed stage puts back its outputs from DVC's cache or
git, and a stage dies with the `dvc repro` that runs it. Real files, a real DVC
repository layout and real processes; the whole of it under DVC is in
test_dvc_pipeline.py."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from pipeline.core.outputs import (
    keeps_outputs,
    report_restore,
    restore_missing_outputs,
)

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = {
    "models/cnn.keras": b"model bytes",
    "metrics/train.json": b'{"accuracy": 1}\n',
}


def md5(content):
    return hashlib.md5(content).hexdigest()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A DVC repository (no git) whose dvc.yaml has a stage `train` with OUTPUTS (the
    metrics `cache: false`, as in the project), recorded in dvc.lock, and in DVC's
    cache (a run commits metrics there too); the workspace holds none of them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".dvc").mkdir()
    # dvc init --no-scm
    (tmp_path / ".dvc/config").write_text("[core]\n    no_scm = true\n")
    stage = {"cmd": "python -m pipeline.train"}
    dvc_yaml = {
        **stage,
        "outs": ["models/cnn.keras"],
        "metrics": [{"metrics/train.json": {"cache": False}}],
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": dvc_yaml}}))
    outs = [
        {"path": path, "hash": "md5", "md5": md5(content), "size": len(content)}
        for path, content in OUTPUTS.items()
    ]
    lock = {"schema": "2.0", "stages": {"train": {**stage, "outs": outs}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    for content in OUTPUTS.values():
        cached_object(tmp_path, content).parent.mkdir(parents=True, exist_ok=True)
        cached_object(tmp_path, content).write_bytes(content)
    return tmp_path


def cached_object(repo, content):
    """Where DVC 3 keeps `content` in `repo`'s cache."""
    return repo / ".dvc/cache/files/md5" / md5(content)[:2] / md5(content)[2:]


def test_missing_outputs_come_back_from_the_cache_and_present_ones_stay(repo):
    (repo / "metrics").mkdir()
    (repo / "metrics/train.json").write_bytes(b"newer")
    assert restore_missing_outputs("train") == (["models/cnn.keras"], [])
    assert (repo / "models/cnn.keras").read_bytes() == OUTPUTS["models/cnn.keras"]
    assert (repo / "metrics/train.json").read_bytes() == b"newer"

    # The other way round: the `cache: false` metrics, which DVC does not check out.
    (repo / "models/cnn.keras").write_bytes(b"newer model")
    (repo / "metrics/train.json").unlink()
    assert restore_missing_outputs("train") == (["metrics/train.json"], [])
    assert (repo / "metrics/train.json").read_bytes() == OUTPUTS["metrics/train.json"]
    assert (repo / "models/cnn.keras").read_bytes() == b"newer model"


def test_dvc_itself_checks_out_a_cached_output(repo):
    """As its config says: a hardlink to the cache object here, not a copy."""
    with (repo / ".dvc/config").open("a") as config:
        config.write("[cache]\n    type = hardlink\n")
    assert restore_missing_outputs("train")[0] == sorted(OUTPUTS)
    model = repo / "models/cnn.keras"
    assert model.samefile(cached_object(repo, OUTPUTS["models/cnn.keras"]))


def test_dvc_says_nothing_while_it_puts_outputs_back(repo, capsys, monkeypatch):
    monkeypatch.setenv("DVC_IGNORE_ISATTY", "true")  # its progress bars, off a tty
    report_restore("train")
    put_back = "train: put back metrics/train.json, models/cnn.keras"
    assert capsys.readouterr() == ("", f"{put_back} as dvc.lock records them\n")


def test_nothing_is_written_without_a_dvc_lock_entry(repo):
    assert restore_missing_outputs("evaluate") == ([], [])  # not in dvc.yaml
    (repo / "dvc.lock").unlink()
    assert restore_missing_outputs("train") == ([], [])
    assert not (repo / "models").exists() and not (repo / "metrics").exists()


def test_nothing_is_written_outside_a_dvc_repository(repo):
    (repo / ".dvc").rename(repo / "elsewhere")  # its cache with it
    assert restore_missing_outputs("train") == ([], [])
    assert not (repo / "models").exists() and not (repo / "metrics").exists()


def test_git_head_stands_in_for_a_missing_or_damaged_cache(repo):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    (repo / "metrics").mkdir()
    (repo / "metrics/train.json").write_bytes(OUTPUTS["metrics/train.json"])
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "metrics/train.json"], check=True)
    subprocess.run([*git, "commit", "-qm", "metrics"], check=True)
    (repo / "metrics/train.json").unlink()
    for content in OUTPUTS.values():
        cached_object(repo, content).write_bytes(b"rot")
    assert restore_missing_outputs("train") == (
        ["metrics/train.json"],
        ["models/cnn.keras"],
    )
    assert (repo / "metrics/train.json").read_bytes() == OUTPUTS["metrics/train.json"]
    assert not (repo / "models/cnn.keras").exists()


def test_a_failing_stage_puts_back_its_outputs_and_still_fails(repo, capsys):
    callers_handler = signal.getsignal(signal.SIGTERM)  # another test may have set one
    @keeps_outputs("train")
    def crashes():
        raise RuntimeError("crash inside the stage")

    @keeps_outputs("train")
    def exits_with_its_error():
        sys.exit("params.yaml: `train.epochs` must be a positive integer, got -1.")

    with pytest.raises(RuntimeError, match="crash inside the stage"):
        crashes()
    assert {path: (repo / path).read_bytes() for path in OUTPUTS} == OUTPUTS
    assert (
        "train: put back metrics/train.json, models/cnn.keras"
        in capsys.readouterr().err
    )

    (repo / "models/cnn.keras").unlink()
    with pytest.raises(SystemExit, match="`train.epochs` must be a positive integer"):
        exits_with_its_error()
    assert (repo / "models/cnn.keras").read_bytes() == OUTPUTS["models/cnn.keras"]
    assert signal.getsignal(signal.SIGTERM) is callers_handler  # the caller's, back


def test_a_succeeding_stage_is_left_alone(repo):
    @keeps_outputs("train")
    def succeeds():
        return "done"

    assert succeeds() == "done"
    assert not (repo / "models").exists()


STAGE = """\
import os, sys, time
from pipeline.core.outputs import stops_with_parent
with stops_with_parent():
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(60)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's"
)
@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_a_stage_dies_with_the_dvc_that_runs_it(tmp_path, shell):
    """Run as DVC runs a command (`$SHELL -c CMD`, DVC_STAGE set), then kill -9 the
    parent: bash execs the stage, /bin/sh (dash) forks it and outlives the parent."""
    if not Path(shell).exists():
        pytest.skip(f"no {shell}")
    (tmp_path / "stage.py").write_text(STAGE)
    pid_file = tmp_path / "stage.pid"
    command = f"KERAS_BACKEND=jax {sys.executable} {tmp_path / 'stage.py'} {pid_file}"
    dvc_like = f"import subprocess; subprocess.run([{shell!r}, '-c', {command!r}])"
    env = {**os.environ, "DVC_STAGE": "train", "SHELL": shell, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", dvc_like], env=env)
    stage = None
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        stage = psutil.Process(int(pid_file.read_text()))
        parent.kill()
        parent.wait()
        stage.wait(timeout=5)
    finally:
        parent.kill()
        parent.wait()
        if stage is not None and stage.is_running():
            stage.kill()


LOSES_ITS_FIRST_SIGTERM = """\
import sys, time
from pathlib import Path
from pipeline.core.outputs import stops_with_parent


class SlowToCollect:
    def __del__(self):
        Path(sys.argv[1]).write_text("in __del__")
        time.sleep(5)


with stops_with_parent():
    SlowToCollect()
    while True:
        time.sleep(0.05)
"""


def test_a_sigterm_lost_in_a_finalizer_is_sent_again(tmp_path):
    """A SIGTERM whose SystemExit is raised inside a `__del__` is dropped by Python
    ("Exception ignored in"); the stage must still stop, not run on."""
    (tmp_path / "stage.py").write_text(LOSES_ITS_FIRST_SIGTERM)
    marker = tmp_path / "in_del"
    stage = subprocess.Popen(
        [sys.executable, str(tmp_path / "stage.py"), str(marker)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        stage.send_signal(signal.SIGTERM)
        _, stderr = stage.communicate(timeout=30)
    finally:
        stage.kill()
    assert "Exception ignored in" in stderr and "SystemExit" in stderr, stderr
    assert stage.returncode == 1
    assert stderr.rstrip().endswith("stopped by SIGTERM (killed, or `dvc repro` that "
                                    "ran it died)"), stderr
