"""One module per dvc.yaml stage, each run as `python -m pipeline.stages.<stage>`.

A stage reads its section of params.yaml (pipeline.params) and the paths dvc.yaml
gives it on its command line (pipeline.cli), and writes only its declared outputs.
No stage imports another: what two stages share lives in the modules of `pipeline`.

Importing this package sets up what must be in the environment before a stage
imports Keras, and so TensorFlow: oneDNN's setting (pipeline.environment), which the
stage's notebook kernels and restarted processes inherit.
"""

import os
import sys

from pipeline.environment import OneDnnError, choose_onednn

try:
    choose_onednn(os.environ)
except OneDnnError as error:  # before any stage's `one_line_errors` can report it
    sys.exit(str(error))
