"""A stage that fails puts back the outputs DVC deleted, and dies with `dvc repro`.

DVC deletes a stage's outputs before running its command unless they are
`persist: true`, and persisted outputs turn off the run-cache. `train` and `evaluate`
need the run-cache (it restores their outputs when the backend is switched back), so
`check` stops bad parameters and data before DVC reaches them, and `keeps_outputs`
covers the rest: a crash, Ctrl-C, SIGTERM, or `dvc repro` itself killed. Each output
then missing is put back as dvc.lock records it, so that `dvc status` finds the stage
unchanged and a re-run after fixing the cause needs no --force.

DVC checks out the cached ones, but copies a damaged cache object as it is, and checks
out no `cache: false` output though its cache holds those too (StageCache.save puts
them there after each successful run). So each is checked against dvc.lock's md5; one
missing or wrong is read from DVC's cache or else git's HEAD and moved into place
atomically. Without the cache, models/*.keras and *.npy (not in git) cannot come back:
the stage says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
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
from typing import TYPE_CHECKING, NoReturn, ParamSpec, TypeVar

from pipeline.core.atomic import atomic_path

if TYPE_CHECKING:
    from dvc.output import Output
    from dvc.repo import Repo

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
P = ParamSpec("P")
R = TypeVar("R")


def committed_content(path: str) -> bytes | None:
    """`path` as committed at git's HEAD, or None."""
    try:
        shown = subprocess.run(
            ["git", "show", f"HEAD:./{path}"], capture_output=True, check=False
        )
    except FileNotFoundError:  # no git
        return None
    return shown.stdout if shown.returncode == 0 else None


def recorded(md5: str, *sources: Callable[[], bytes | None]) -> bytes | None:
    """The first content read from `sources` whose md5 is `md5`, or None."""
    for source in sources:
        with contextlib.suppress(OSError):
            content = source()
            if content is not None and hashlib.md5(content).hexdigest() == md5:
                return content
    return None


def put_back(repo: Repo, out: Output) -> bool:
    """Put `out`, missing, back as dvc.lock records it; False where nothing holds it."""
    from dvc.exceptions import DvcException

    md5 = out.hash_info.value
    if out.use_cache:
        with contextlib.suppress(DvcException):  # say, its lock held: read below
            repo.checkout(targets=[out.def_path], allow_missing=True)
    if recorded(md5, Path(out.fs_path).read_bytes) is not None:
        return True
    content = recorded(
        md5,
        Path(out.cache.oid_to_path(md5)).read_bytes,
        functools.partial(committed_content, out.def_path),
    )
    if content is None:
        Path(out.fs_path).unlink(missing_ok=True)  # a damaged cache object's copy
        return False
    with atomic_path(out.fs_path) as tmp:
        tmp.write_bytes(content)
    return True


def restore_missing_outputs(stage: str) -> tuple[list[str], list[str]]:
    """Put back each file output of `stage` missing from the workspace, as dvc.lock
    records it. Returns (restored, unrecoverable) paths."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.logger import set_loggers_level
    from dvc.repo import Repo
    from dvc.stage.exceptions import StageFileDoesNotExistError, StageNotFound

    restored, unrecoverable = [], []
    try:  # DVC's progress bars follow its loggers' level: none, and no log lines
        with set_loggers_level(logging.CRITICAL), Repo(".") as repo:
            for out in repo.stage.load_one(name=stage).outs:
                # A file as DVC 3 records it (DVC 2 normalised line endings first).
                recorded_file = out.hash_name == "md5" and not out.hash_info.isdir
                if out.hash_info.value and recorded_file and not out.exists:
                    done = put_back(repo, out)
                    (restored if done else unrecoverable).append(out.def_path)
    except (NotDvcRepoError, StageFileDoesNotExistError, StageNotFound):
        return [], []  # not a DVC repository, or no such stage in dvc.yaml
    return sorted(restored), sorted(unrecoverable)  # as dvc.lock lists them


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
