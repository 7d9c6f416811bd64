"""What every stage shares: params.yaml's core sections, MNIST, training helpers,
outputs written whole and kept on failure, one-line errors, backends, environment.

Importing it sets up what must be in the environment before anything imports Keras,
and so TensorFlow: oneDNN's setting (pipeline.core.environment), which the stages'
notebook kernels and restarted processes inherit.
"""

import os
import sys

from pipeline.core.environment import OneDnnError, choose_onednn

try:
    choose_onednn(os.environ)
except OneDnnError as error:  # before any stage's `one_line_errors` can report it
    sys.exit(str(error))
