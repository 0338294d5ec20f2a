"""Live audio through the device's loop, one chunk at a time.

``kwslab.detect.detect_stream`` runs the host twin of the firmware over a whole recording.
Live audio (a microphone in a browser, a socket) arrives in chunks, and the micro frontend
is stateful (window overlap, noise estimate, PCAN), so the stream needs the frontend's state
kept between chunks, as the firmware keeps it between its audio callbacks:

    chunk (int16) --MicroFrontend.process (state kept)--> new frames (uint16, n x F)
        --frontend.to_int8--> int8 frames --last T-1 frames + new--> detect.stream_scores
        (TFLite Micro) --> int8 scores per 20 ms --RecognizeCommands (state kept)--> commands

:class:`MicroFrontend` calls the micro frontend C library's own API
(``FrontendPopulateState``, ``FrontendProcessSamples``, ``FrontendFreeStateContents``: the
functions the firmware calls) inside the library TensorFlow ships for its
``audio_microfrontend`` op, through ctypes, so there is no second frontend: it is the same
compiled C code that ``kwslab.frontend.compute_raw`` runs. Fed any chunking of a recording,
:class:`StreamingDetector` gives exactly ``detect_stream``'s features, scores and commands
(``tests/test_streaming.py``).

References:
  1) TensorFlow ``tensorflow/lite/experimental/microfrontend/lib/frontend.h`` and
     ``frontend_util.h`` (structs and API), ``ops/audio_microfrontend_op.cc`` (how the op
     fills the config and loops over ``FrontendProcessSamples``).
  2) tflite-micro micro_speech ``feature_provider.cc`` / ``main_functions.cc``: the device
     loop (new slices of features, one inference, RecognizeCommands).
"""
from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Config, FrontendConfig
from .detect import Detection, RecognizeCommands, stream_scores

log = logging.getLogger(__name__)


class _WindowConfig(ctypes.Structure):
    _fields_ = [("size_ms", ctypes.c_size_t), ("step_size_ms", ctypes.c_size_t)]


class _FilterbankConfig(ctypes.Structure):
    _fields_ = [("num_channels", ctypes.c_int), ("upper_band_limit", ctypes.c_float),
                ("lower_band_limit", ctypes.c_float), ("output_scale_shift", ctypes.c_int)]


class _NoiseReductionConfig(ctypes.Structure):
    _fields_ = [("smoothing_bits", ctypes.c_int), ("even_smoothing", ctypes.c_float),
                ("odd_smoothing", ctypes.c_float), ("min_signal_remaining", ctypes.c_float)]


class _PcanGainControlConfig(ctypes.Structure):
    _fields_ = [("enable_pcan", ctypes.c_int), ("strength", ctypes.c_float),
                ("offset", ctypes.c_float), ("gain_bits", ctypes.c_int)]


class _LogScaleConfig(ctypes.Structure):
    _fields_ = [("enable_log", ctypes.c_int), ("scale_shift", ctypes.c_int)]


class _FrontendConfig(ctypes.Structure):
    _fields_ = [("window", _WindowConfig), ("filterbank", _FilterbankConfig),
                ("noise_reduction", _NoiseReductionConfig),
                ("pcan_gain_control", _PcanGainControlConfig), ("log_scale", _LogScaleConfig)]


class _FrontendOutput(ctypes.Structure):
    _fields_ = [("values", ctypes.POINTER(ctypes.c_uint16)), ("size", ctypes.c_size_t)]


_STATE_BYTES = 4096
"""Room for ``struct FrontendState`` (about 250 bytes on 64-bit: six sub-states of sizes and
pointers); the C library allocates its buffers itself and frees them in
``FrontendFreeStateContents``."""

_DEFAULTS = {  # FrontendFillConfigWithDefaults in frontend_util.c and the *_util.c files
    ("window", "size_ms"): 25, ("window", "step_size_ms"): 10,
    ("filterbank", "num_channels"): 32, ("filterbank", "upper_band_limit"): 7500.0,
    ("filterbank", "lower_band_limit"): 125.0, ("noise_reduction", "smoothing_bits"): 10,
    ("pcan_gain_control", "gain_bits"): 21, ("pcan_gain_control", "offset"): 80.0,
    ("log_scale", "enable_log"): 1, ("log_scale", "scale_shift"): 6,
}

_LIB = None


def _library():
    """The micro frontend C library inside TensorFlow's op, with its API declared.

    Raises:
        RuntimeError: if the library's config struct does not have the layout declared here
            (checked against ``FrontendFillConfigWithDefaults``).
    """
    global _LIB
    if _LIB is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from tensorflow.lite.experimental.microfrontend.python.ops import (
            audio_microfrontend_op as op,  # loads the library and TensorFlow's framework
        )
        path = Path(op.__file__).with_name("_audio_microfrontend_op.so")
        try:
            lib = ctypes.CDLL(str(path))
            lib.FrontendProcessSamples  # noqa: B018 (the C API must be exported)
        except (OSError, AttributeError) as e:
            raise RuntimeError(f"{path}: cannot reach the micro frontend's C API ({e}); this "
                               "TensorFlow build does not export it") from e
        lib.FrontendFillConfigWithDefaults.argtypes = [ctypes.POINTER(_FrontendConfig)]
        lib.FrontendFillConfigWithDefaults.restype = None
        lib.FrontendPopulateState.argtypes = [ctypes.POINTER(_FrontendConfig), ctypes.c_void_p,
                                              ctypes.c_int]
        lib.FrontendPopulateState.restype = ctypes.c_int
        lib.FrontendProcessSamples.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                               ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
        lib.FrontendProcessSamples.restype = _FrontendOutput
        lib.FrontendFreeStateContents.argtypes = [ctypes.c_void_p]
        lib.FrontendFreeStateContents.restype = None
        lib.FrontendReset.argtypes = [ctypes.c_void_p]
        lib.FrontendReset.restype = None
        defaults = _FrontendConfig()
        lib.FrontendFillConfigWithDefaults(ctypes.byref(defaults))
        got = {(s, f): getattr(getattr(defaults, s), f) for s, f in _DEFAULTS}
        if got != _DEFAULTS:
            raise RuntimeError(f"{path}: FrontendConfig layout differs from the one declared in "
                               f"kwslab.streaming (defaults read back as {got})")
        _LIB = lib
    return _LIB


class MicroFrontend:
    """The micro frontend with its state kept across calls, as on the device.

    ``process`` accepts chunks of any length (0 included) and returns the frames completed
    by them; over a whole recording the frames equal ``frontend.compute_raw`` of it.
    Example (micro_speech): 16000 samples in chunks of 1000 give 0 frames for the first
    chunk (480 samples needed), then 3 or 4 per chunk, 49 in all.

    Args:
        cfg: frontend settings (micro_speech defaults).
    Raises:
        RuntimeError: if the C library cannot set up its state.
    Source: TensorFlow ``microfrontend/lib/frontend.h`` (``FrontendProcessSamples``).
    """

    def __init__(self, cfg: FrontendConfig = FrontendConfig()):
        self.cfg = cfg
        self._lib = _library()
        c = _FrontendConfig()
        self._lib.FrontendFillConfigWithDefaults(ctypes.byref(c))
        c.window.size_ms, c.window.step_size_ms = cfg.window_size_ms, cfg.window_stride_ms
        c.filterbank.num_channels = cfg.num_channels
        c.filterbank.upper_band_limit = cfg.upper_band_limit_hz
        c.filterbank.lower_band_limit = cfg.lower_band_limit_hz
        c.noise_reduction.smoothing_bits = cfg.smoothing_bits
        c.noise_reduction.even_smoothing = cfg.even_smoothing
        c.noise_reduction.odd_smoothing = cfg.odd_smoothing
        c.noise_reduction.min_signal_remaining = cfg.min_signal_remaining
        c.pcan_gain_control.enable_pcan = int(cfg.enable_pcan)
        c.pcan_gain_control.strength = cfg.pcan_strength
        c.pcan_gain_control.offset = cfg.pcan_offset
        c.pcan_gain_control.gain_bits = cfg.gain_bits
        c.log_scale.enable_log = int(cfg.enable_log)
        c.log_scale.scale_shift = cfg.scale_shift
        self._state = ctypes.create_string_buffer(_STATE_BYTES)
        if not self._lib.FrontendPopulateState(ctypes.byref(c), self._state, cfg.sample_rate_hz):
            raise RuntimeError("FrontendPopulateState failed (out of memory or bad settings "
                               f"{cfg})")
        self._open = True

    def process(self, audio_int16: np.ndarray) -> np.ndarray:
        """Feed samples; return the frames they complete.

        Args:
            audio_int16: int16 PCM at cfg.sample_rate_hz, shape (S,), S >= 0.
        Returns:
            uint16 array of shape (n, F), n >= 0: raw frontend output, as compute_raw.
        Raises:
            TypeError: if the audio is not int16.
            ValueError: if it is not 1-D, or the frontend was closed.
        """
        audio = np.asarray(audio_int16)
        if audio.dtype != np.int16:
            raise TypeError(f"audio must be int16 PCM, got {audio.dtype}")
        if audio.ndim != 1:
            raise ValueError(f"audio must be 1-D, got shape {audio.shape}")
        if not self._open:
            raise ValueError("this MicroFrontend is closed")
        audio = np.ascontiguousarray(audio)
        frames, done, read = [], 0, ctypes.c_size_t(0)
        base = audio.ctypes.data
        while done < len(audio):
            out = self._lib.FrontendProcessSamples(self._state, base + 2 * done,
                                                   len(audio) - done, ctypes.byref(read))
            done += read.value
            if out.values:  # valid until the next call: copy
                frames.append(np.ctypeslib.as_array(out.values, (out.size,)).copy())
        if not frames:
            return np.zeros((0, self.cfg.num_channels), np.uint16)
        return np.stack(frames)

    def reset(self) -> None:
        """Forget the stream (``FrontendReset``): the next sample starts a new one."""
        self._lib.FrontendReset(self._state)

    def close(self) -> None:
        """Free the C buffers (also done when the object is collected)."""
        if getattr(self, "_open", False):
            self._lib.FrontendFreeStateContents(self._state)
            self._open = False

    def __del__(self):
        self.close()


@dataclass
class StreamUpdate:
    """What one chunk of audio produced."""

    features: np.ndarray
    """int8 (n, F): the device features of the frames completed by the chunk."""
    times_ms: np.ndarray
    """int64 (k,): end time of each new 1 s window, ms from the stream start."""
    scores: np.ndarray
    """int8 (k, C): the model's output for each new window (TFLite Micro)."""
    detections: list[Detection] = field(default_factory=list)
    """RecognizeCommands' new commands among these windows."""
    audio_ms: int = 0
    """Audio received so far, ms."""


class StreamingDetector:
    """``detect_stream`` for audio that arrives in chunks: same features, scores, commands.

    Args:
        tflite_bytes: the int8 model.
        cfg: the config the model was trained with (frontend, labels).
        arena_bytes: TFLM arena bytes (None: ``stream_scores``' default).
        include_background: also report ``_silence_``/``_unknown_`` commands.
    RecognizeCommands' settings come from ``cfg.recognize``, as in ``detect_stream``.
    Example: pushing a 3 s recording in 100 ms chunks gives 150 frames and 102 windows
    (the first ending at 990 ms), exactly as ``detect_stream`` on the whole recording.
    Source: tflite-micro micro_speech ``main_functions.cc`` (the device loop).
    """

    def __init__(self, tflite_bytes: bytes, cfg: Config = Config(), *,
                 arena_bytes: int | None = None, include_background: bool = False):
        from . import frontend

        self._to_int8 = frontend.to_int8
        self.tflite_bytes = bytes(tflite_bytes)
        self.cfg = cfg
        self.labels = list(cfg.data.labels)
        self.arena_bytes = arena_bytes
        self.include_background = include_background
        self.frontend = MicroFrontend(cfg.frontend)
        self.recognizer = RecognizeCommands.from_config(len(self.labels), cfg.recognize)
        t, f = cfg.frontend.feature_shape
        self._context = np.zeros((0, f), np.int8)  # the last T - 1 frames
        self.num_frames = 0
        self.num_samples = 0

    def push(self, audio_int16: np.ndarray) -> StreamUpdate:
        """Feed a chunk of int16 audio; return its frames, window scores and new commands.

        Raises:
            TypeError: if the audio is not int16.
            ValueError: if it is not 1-D.
        """
        fcfg = self.cfg.frontend
        t = fcfg.num_frames
        feats = self._to_int8(self.frontend.process(audio_int16))  # (n, F) int8
        self.num_samples += len(audio_int16)
        first_new = self.num_frames
        self.num_frames += len(feats)
        window = np.concatenate([self._context, feats])  # frames first_new - len(context) ..
        self._context = window[-(t - 1):] if t > 1 else window[:0]
        update = StreamUpdate(feats, np.zeros(0, np.int64),
                              np.zeros((0, len(self.labels)), np.int8),
                              audio_ms=self.num_samples * 1000 // fcfg.sample_rate_hz)
        if len(window) < t:
            return update
        _, scores = stream_scores(window, self.tflite_bytes, fcfg, arena_bytes=self.arena_bytes)
        # Window ending at frame j ends at sample window + stride * j (detect.window_end_times_ms).
        last_frames = np.arange(self.num_frames - len(scores), self.num_frames)
        assert last_frames[0] >= max(first_new, t - 1)
        times = (fcfg.window_samples + fcfg.stride_samples * last_frames) * 1000 // fcfg.sample_rate_hz
        update.times_ms, update.scores = times.astype(np.int64), scores
        for time_ms, s in zip(update.times_ms, scores):
            r = self.recognizer.process_latest_results(s, int(time_ms))
            label = self.labels[r.label_index]
            if r.is_new_command and (self.include_background or not label.startswith("_")):
                update.detections.append(Detection(label, int(time_ms), r.score))
        return update

    def close(self) -> None:
        self.frontend.close()
