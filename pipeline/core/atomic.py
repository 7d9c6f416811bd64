"""Writing outputs so that a crash never leaves a half-written file.

A full disk (or an exceeded quota) while an output is written is an OutputError that
names the output, not its temporary file, in one line: `one_line_errors` prints it.
"""

import contextlib
import errno
import io
import json
import os
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

SPACE_ERRORS = (errno.ENOSPC, errno.EDQUOT)


class OutputError(OSError):
    """An output cannot be written (the message names the output, not a temp file)."""


def cannot_write(paths: Sequence[Path], error: OSError) -> OutputError:
    """OutputError naming `paths` (one of them failed) and why."""
    named = str(paths[0]) if len(paths) == 1 else "one of " + ", ".join(map(str, paths))
    advice = "; free some space and run again" if error.errno in SPACE_ERRORS else ""
    return OutputError(f"cannot write {named}: {error.strerror or error}{advice}.")


@contextlib.contextmanager
def temporary_beside(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` only on success."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix
        )
    except OSError as error:
        raise cannot_write([path], error) from error
    os.close(fd)
    # mkstemp makes the file private; give it the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def space_error(error: BaseException) -> OSError | None:
    """`error`, or the exception it was raised from or while handling, that says the
    disk or the quota is full; None if none does."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in SPACE_ERRORS:
            return current
        current = current.__cause__ or current.__context__
    return None


def failed_writes(error: BaseException, outputs: dict[str, Path]) -> list[Path]:
    """Which of `outputs` ({absolute temporary path: output}) `error` arose writing.

    The OS names the file when opening or renaming it failed. A failed write() names
    none: then the innermost frame of the traceback (or of the exceptions it was
    raised from or while handling) that holds exactly one of the temporary files, as
    a path or an open file, is where it was being written (Keras's `model.save` holds
    its path, `Path.write_text` is a method of it). Frames of this module hold their
    own temporary file and are skipped. If no frame tells, all of `outputs`.
    """

    def output_of(value: Any) -> Path | None:
        if isinstance(value, io.IOBase):
            value = getattr(value, "name", None)
        if not isinstance(value, str | bytes | os.PathLike):
            return None
        with contextlib.suppress(TypeError, ValueError):
            name = os.fsdecode(value)
            if len(name) < 4096:  # not some long text that merely is a str
                return outputs.get(os.path.abspath(name))
        return None

    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for each in chain:
        named = output_of(each.filename) if isinstance(each, OSError) else None
        if named is not None:
            return [named]
    for each in chain:
        for frame, _ in reversed(list(traceback.walk_tb(each.__traceback__))):
            if frame.f_globals.get("__name__") == __name__:
                continue
            held = {output_of(value) for value in frame.f_locals.values()} - {None}
            if len(held) == 1:
                return list(held)
    return list(dict.fromkeys(outputs.values()))


@contextlib.contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """Yield a temporary path beside each of `paths`; each is moved into place only
    after every one has been written, so a failure part-way leaves all of them as
    they were. A full disk is an OutputError naming the output being written."""
    outputs: dict[str, Path] = {}
    try:
        with contextlib.ExitStack() as stack:
            temporaries = []
            for path in map(Path, paths):
                tmp = stack.enter_context(temporary_beside(path))
                outputs[os.path.abspath(tmp)] = path
                temporaries.append(tmp)
            yield temporaries
    except OutputError:
        raise
    except Exception as error:
        full = space_error(error)
        if full is None:
            raise
        raise cannot_write(failed_writes(error, outputs), full) from error


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """atomic_paths for one output."""
    with atomic_paths(path) as (tmp,):
        yield tmp


def json_text(data: Any) -> str:
    """Strict JSON: a NaN or infinity is an error here, not a bare `NaN` in the file."""
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(data))
