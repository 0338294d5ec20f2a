"""Import TensorFlow quietly and keep it off the GPU.

The lab uses TensorFlow for two things only: the micro frontend op (features) and the TFLite
converter. Both run on the CPU, and the GPU (in Colab) belongs to PyTorch: TensorFlow would
otherwise reserve most of its memory on first use. ``import kwslab`` sets
``TF_CPP_MIN_LOG_LEVEL=3`` (unless already set) before anything imports TensorFlow, which
silences its C++ log (oneDNN, CUDA factory registration, "Reading SavedModel", MLIR passes);
``quiet_converter`` hides what the converter still writes: the "fully_quantize: 0 ..." line
(printed straight to file descriptor 2) and its "Statistics for quantized inputs were
expected" warning, which is expected for a full-int8 model whose input range we pin. Anything
else the converter writes is shown again if the conversion fails.

References:
  1) TensorFlow ``tf.config.set_visible_devices`` ("Visible devices cannot be modified after
     being initialized").
  2) TensorFlow ``tensorflow/tsl/platform/default/logging.cc`` (``TF_CPP_MIN_LOG_LEVEL``).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings

log = logging.getLogger(__name__)
_configured = False


def import_tensorflow():
    """``import tensorflow`` with the C++ log quiet, GPUs hidden and its Python logger at ERROR.

    Returns:
        The tensorflow module.
    """
    global _configured
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if not _configured:
        _configured = True
        try:
            tf.config.set_visible_devices([], "GPU")
        except (RuntimeError, ValueError) as e:  # devices already initialised by the caller
            log.debug("TensorFlow GPUs stay visible: %s", e)
        tf.get_logger().setLevel(logging.ERROR)
    return tf


@contextlib.contextmanager
def quiet_converter():
    """Hide the TFLite converter's known chatter (stdout, fd 2, its statistics warning).

    If the body raises, what was written to fd 2 is logged at ERROR before the exception goes on.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings(), \
            contextlib.redirect_stdout(open(os.devnull, "w")) as null:  # noqa: SIM115
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text:
                log.error("TFLite converter output:\n%s", text)
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            null.close()
