"""A full disk stops a stage in one line that names the output being written, leaves
no temporary or partial file, and keeps the previous outputs.

On a real full filesystem: a 256 KiB tmpfs mounted for each test (this needs root, as
the tests and CI run; elsewhere the tests skip), either filled to its last byte
before the write or filled by the write itself (a trained model is megabytes).
"""

import errno
import os
import subprocess

import pytest
from stages import run_stage

from pipeline.core.atomic import OutputError, atomic_path, atomic_paths

SIZE = 256 * 1024
NO_SPACE = "No space left on device; free some space and run again."


@pytest.fixture
def disk(tmp_path):
    """An empty tmpfs of SIZE bytes, mounted for the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def fill(disk):
    """Fill `disk` to its last byte with a file `filler`."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0


def write_previous(outputs):
    """Give each of `outputs` a previous version; {path: its bytes}."""
    previous = {path: f"previous {path.name}\n".encode() for path in outputs}
    for path, content in previous.items():
        path.write_bytes(content)
    return previous


def assert_kept(disk, previous):
    """`disk` holds the previous outputs, unchanged, and nothing else but `filler`."""
    assert {path.name for path in disk.iterdir()} - {"filler"} == {
        path.name for path in previous
    }
    for path, content in previous.items():
        assert path.read_bytes() == content


@pytest.mark.parametrize("full_before", [True, False], ids=["full", "fills"])
def test_train_stops_in_one_line_naming_the_model(workdir, disk, full_before):
    outputs = {
        "model": disk / "cnn.keras",
        "history": disk / "train_history.csv",
        "metrics": disk / "train.json",
        "run": disk / "train_run.json",
    }
    previous = write_previous(outputs.values())
    if full_before:
        fill(disk)
    with pytest.raises(SystemExit) as stopped:
        run_stage("train", **outputs)
    # What Python prints for the stage, and all it prints (no dvc.lock here, so
    # keeps_outputs has nothing to put back).
    assert stopped.value.code == f"cannot write {outputs['model']}: {NO_SPACE}"
    assert_kept(disk, previous)


@pytest.mark.parametrize("full_before", [True, False], ids=["full", "fills"])
def test_atomic_paths_names_the_output_that_did_not_fit(disk, full_before):
    first, second, third = disk / "a.txt", disk / "b.bin", disk / "c.json"
    previous = write_previous([first, second, third])
    if full_before:
        fill(disk)
    with pytest.raises(OutputError) as failed:
        with atomic_paths(first, second, third) as (a, b, c):
            a.write_text("" if full_before else "small enough")
            b.write_bytes(bytes(2 * SIZE))
            c.write_text("never reached")
    assert str(failed.value) == f"cannot write {second}: {NO_SPACE}"
    assert failed.value.__cause__.errno == errno.ENOSPC
    assert_kept(disk, previous)


def test_atomic_path_on_a_full_disk(disk):
    target = disk / "m.json"
    previous = write_previous([target])
    fill(disk)
    with pytest.raises(OutputError, match=f"^cannot write {target}: {NO_SPACE}$"):
        with atomic_path(target) as tmp:
            tmp.write_text("{}\n")
    assert_kept(disk, previous)


def test_a_write_no_frame_ties_to_one_output_names_them_all(disk):
    first, second = disk / "a.bin", disk / "b.bin"
    with pytest.raises(OutputError) as failed:
        with atomic_paths(first, second) as (a, b):
            # A bare descriptor: neither the error nor this frame tells which file.
            fd = os.open(b, os.O_WRONLY)
            try:
                while True:
                    os.write(fd, bytes(4096))
            finally:
                os.close(fd)
    assert str(failed.value) == f"cannot write one of {first}, {second}: {NO_SPACE}"
    assert not list(disk.iterdir())
