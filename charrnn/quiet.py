"""Starting TensorFlow without its start-up noise, for notebooks and the CLI.

A newcomer takes these lines for errors, and in a notebook they land in a cell's stderr:
absl's "All log messages before absl::InitializeLog() is called are written to STDERR" and
"Could not find cuda drivers" (printed from C++ while TensorFlow loads, before any log
setting is read), oneDNN, CPU-feature and XLA lines (C++ logs that TF_CPP_MIN_LOG_LEVEL
filters), "failed call to cuInit" (printed when the devices are first listed) and the
`INFO:tensorflow:` lines TensorFlow's Python logger prints in an interactive kernel.
A user's explicit TF_CPP_MIN_LOG_LEVEL=0 shows them all.
"""

from __future__ import annotations

import contextlib
import os
import sys

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LOG_LEVEL = "2"  # C++ INFO and WARNING lines hidden; later C++ errors still show


def start_tensorflow() -> None:
    """Import TensorFlow and list its devices quietly; does nothing once TensorFlow is imported.

    Descriptor 2 points at /dev/null only meanwhile: Python errors raised during the import
    are printed after it is restored.
    """
    if "tensorflow" in sys.modules:
        return
    if os.environ.setdefault(LOG_LEVEL_VARIABLE, DEFAULT_LOG_LEVEL) == "0":
        return
    with _stderr_to_devnull():
        import tensorflow as tf

        tf.config.list_physical_devices()  # cuInit's error on a machine without a GPU comes here
    tf.get_logger().setLevel("WARNING")  # in a kernel TensorFlow sets INFO (MirroredStrategy's devices)


@contextlib.contextmanager
def _stderr_to_devnull():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
