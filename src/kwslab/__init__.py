"""kwslab: a keyword-spotting TinyML lab."""
import os as _os

# Before anything imports TensorFlow: no C++ INFO/WARNING/ERROR log lines (see kwslab._tf).
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
