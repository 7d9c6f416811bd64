"""A stage that fails puts back the outputs DVC deleted, and dies with `dvc repro`.

DVC deletes a stage's outputs before running its command unless they are
`persist: true`, and persisted outputs turn off the run-cache. `train` and `evaluate`
need the run-cache (it restores their outputs when the backend is switched back), so
`check` stops bad parameters and data before
DVC reaches them, and `keeps_outputs` covers the rest: a crash, Ctrl-C, SIGTERM, or
`dvc repro` itself killed. Each output then missing is put back exactly as dvc.lock
records it, from DVC's cache, or else from git's HEAD, checked against dvc.lock's md5
and moved into place atomically: `dvc status` finds the stage unchanged, and a re-run
after fixing the cause needs no --force.

The cache holds the `cache: false` metrics and plots too: after a successful run of a
stage with a run-cache, DVC's StageCache.save commits them into it. Git is the
fallback for a clone that has dvc.lock and the committed metrics but not the cache;
there models/*.keras and *.npy (not in git) cannot be put back, and the stage says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn, ParamSpec, TypeVar

import yaml

from pipeline.core.atomic import atomic_path

LOCK_FILE = Path("dvc.lock")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
P = ParamSpec("P")
R = TypeVar("R")


def locked_outputs(stage: str, lock_file: Path = LOCK_FILE) -> dict[str, str]:
    """{path: md5} of `stage`'s file outputs in dvc.lock; {} before its first run."""
    if not lock_file.exists():
        return {}
    stages = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {})
    return {
        out["path"]: out["md5"]
        for out in stages.get(stage, {}).get("outs", [])
        # DVC 3 file entries: a directory's md5 ends in ".dir", and a DVC 2 entry
        # (no `hash`) is the md5 of the file with its line endings normalised.
        if out.get("hash") == "md5" and not out["md5"].endswith(".dir")
    }


def dvc_cache_files() -> Callable[[str], str] | None:
    """md5 -> where DVC's local cache keeps that file (<cache>/files/md5/ab/cdef...),
    found by DVC itself so that `cache.dir` in any of its config files counts; None
    outside a DVC repository."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        repo = Repo(".")
    except NotDvcRepoError:
        return None
    with repo:
        return repo.cache.local.oid_to_path


def committed_content(path: str) -> bytes | None:
    """`path` as committed at git's HEAD, or None."""
    try:
        shown = subprocess.run(
            ["git", "show", f"HEAD:./{path}"], capture_output=True, check=False
        )
    except FileNotFoundError:  # no git
        return None
    return shown.stdout if shown.returncode == 0 else None


def recorded_content(
    path: str, md5: str, cache_files: Callable[[str], str] | None
) -> bytes | None:
    """The bytes dvc.lock records for `path`, from DVC's cache or git's HEAD, or
    None."""

    def recorded(content: bytes | None) -> bool:
        return content is not None and hashlib.md5(content).hexdigest() == md5

    cached = Path(cache_files(md5)) if cache_files else None
    content = cached.read_bytes() if cached and cached.exists() else None
    if not recorded(content):
        content = committed_content(path)
    return content if recorded(content) else None


def restore_missing_outputs(
    stage: str, lock_file: Path = LOCK_FILE
) -> tuple[list[str], list[str]]:
    """Put back each output of `stage` missing from the workspace, as dvc.lock
    records it.
    Returns (restored, unrecoverable) paths."""
    missing = {
        path: md5
        for path, md5 in locked_outputs(stage, lock_file).items()
        if not Path(path).exists()
    }
    if not missing:
        return [], []
    cache_files = dvc_cache_files()
    restored, unrecoverable = [], []
    for path, md5 in missing.items():
        content = recorded_content(path, md5, cache_files)
        if content is None:
            unrecoverable.append(path)
            continue
        with atomic_path(path) as tmp:
            tmp.write_bytes(content)
        restored.append(path)
    return restored, unrecoverable


SIGTERM_REPEAT_SECONDS = 2.0


def exit_on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    repeat_sigterm()
    sys.exit("stopped by SIGTERM (killed, or `dvc repro` that ran it died)")


def repeat_sigterm() -> None:
    """SIGTERM this process again every SIGTERM_REPEAT_SECONDS for as long as
    `exit_on_sigterm` is still its handler.

    The handler runs in whatever Python code the main thread is in, and Python drops
    an exception raised inside a `__del__` method or a weakref or gc callback
    ("Exception ignored in ..."): one SIGTERM's SystemExit can be lost there and the
    stage would train on. The stage that has taken the exit swaps the handler out
    (`keeps_outputs`, `stops_with_parent`), which ends the repeats.
    """
    if any(thread.name == "repeat-sigterm" for thread in threading.enumerate()):
        return

    def repeat() -> None:
        while True:
            time.sleep(SIGTERM_REPEAT_SECONDS)
            if signal.getsignal(signal.SIGTERM) is not exit_on_sigterm:
                return
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=repeat, name="repeat-sigterm", daemon=True).start()


def watch_for_exit(pid: int) -> None:
    """SIGTERM this process when process `pid` exits (pidfd: Linux 5.3 or later)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:  # already gone
        os.kill(os.getpid(), signal.SIGTERM)
        return
    except OSError:  # an older kernel: only the parent-death signal guards the stage
        return

    def wait() -> None:
        select.select([pidfd], [], [])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait, name=f"watch-{pid}", daemon=True).start()


@contextlib.contextmanager
def stops_with_parent() -> Iterator[None]:
    """Within: SIGTERM is a SystemExit (so `finally` blocks and `keeps_outputs` run),
    and on Linux the kernel sends SIGTERM when `dvc repro` dies, even by `kill -9`.
    On leaving, the previous SIGTERM handler is back (for a test calling `main`).

    DVC runs a command as `$SHELL -c CMD` (else /bin/sh). bash execs a simple command,
    even one prefixed by `VAR=value`, so this process's parent is DVC; dash (Debian's
    /bin/sh, 0.5.12) forks instead, and the shell outlives a killed DVC. So when the
    parent is that shell, the shell's parent is watched as well. A DVC killed in the
    first moment, before this runs, is missed: that trainer still holds its lock.
    """
    previous_handler = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        # DVC_STAGE: set by DVC for every command it runs. Run by hand (say under
        # `nohup`), a stage outlives the shell that started it.
        if sys.platform.startswith("linux") and "DVC_STAGE" in os.environ:
            die_with_parent()
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


def die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    parent = os.getppid()
    shell = os.path.realpath(os.environ.get("SHELL") or "/bin/sh")
    with contextlib.suppress(OSError):  # the parent is gone or not ours to inspect
        if os.readlink(f"/proc/{parent}/exe") == shell:
            stat = Path(f"/proc/{parent}/stat").read_text()
            watch_for_exit(int(stat.rsplit(")", 1)[1].split()[1]))


def report_restore(stage: str) -> None:
    """restore_missing_outputs, saying what it did in a line each on stderr."""
    try:
        restored, unrecoverable = restore_missing_outputs(stage)
    except Exception as error:  # noqa: BLE001 - must not hide the stage's own failure
        print(f"{stage}: cannot put back its outputs: {error}", file=sys.stderr)
        return
    if restored:
        print(
            f"{stage}: put back {', '.join(restored)} as dvc.lock records them",
            file=sys.stderr,
        )
    if unrecoverable:
        print(
            f"{stage}: cannot put back {', '.join(unrecoverable)}: neither DVC's "
            "cache nor git's HEAD holds the version dvc.lock records",
            file=sys.stderr,
        )


def keeps_outputs(stage: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a stage's `main`: stops_with_parent, and on any failure put back the
    outputs DVC deleted (see the module's docstring), then fail as before."""

    def decorate(main: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(main)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            with stops_with_parent():
                try:
                    return main(*args, **kwargs)
                except BaseException as failure:
                    if isinstance(failure, SystemExit) and failure.code in (None, 0):
                        raise
                    # A second SIGTERM (parent death and a kill together, or a
                    # repeat) must not cut the restore short.
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                    report_restore(stage)
                    raise

        return wrapped

    return decorate
