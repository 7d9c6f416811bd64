"""A scratch copy of the project, for the tests that run the real DVC."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import yaml
from fake_mnist import fake_mnist

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["bnk", "pipeline", "notebooks", "dvc.yaml", "params.yaml",
                 ".dvc/config", ".dvc/.gitignore", ".dvcignore", ".gitignore",
                 "results/.gitignore", "state/.gitignore", "models/.gitignore"]


def scratch_project(root, configure):
    """A committed git repository at `root` holding a copy of the project, a local
    made-up MNIST and params.yaml edited by `configure(config)` to tiny sizes."""
    caches = shutil.ignore_patterns("__pycache__")
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=caches)
        elif source.exists():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
    mnist_file = root.parent / "mnist.npz"
    np.savez(mnist_file, **fake_mnist())
    config = yaml.safe_load((ROOT / "params.yaml").read_text())
    config["fetch"]["sources"] = ["file"]
    config["fetch"]["file"] = {
        "path": str(mnist_file),
        "sha256": hashlib.sha256(mnist_file.read_bytes()).hexdigest(),
    }
    config["report"]["backends"] = [keras.backend.backend()]
    config["experiments"]["backend"] = keras.backend.backend()
    configure(config)
    (root / "params.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for command in (["git", "init", "-q"],
                    # `dvc exp run` commits experiments, under this identity.
                    ["git", "config", "user.name", "bnk tests"],
                    ["git", "config", "user.email", "tests@bnk.invalid"],
                    ["git", "add", "-A"], ["git", "commit", "-qm", "baseline"]):
        subprocess.run(command, cwd=root, check=True)
    return root


def dvc(*arguments):
    return [str(Path(sys.executable).parent / "dvc"), *arguments]


def run(command, cwd, backend, check=True):
    """`command` in `cwd` under `backend`, with this interpreter as the stages'
    python."""
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed:\n{result.stdout}\n{result.stderr}")
    return result
