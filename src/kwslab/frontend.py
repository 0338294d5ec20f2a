"""micro_speech features: the device's own micro frontend, batched, with an on-disk cache.

The firmware computes features with TFLite Micro's micro frontend C library
(``tensorflow/lite/experimental/microfrontend/lib``: windowing, FFT, mel-like filterbank,
noise reduction, PCAN gain control, log scale). TensorFlow ships the same C code as the
``audio_microfrontend`` op, so training features here come from the code the device runs:

    audio (int16, 16 kHz) --micro frontend--> raw (uint16, T x F = 49 x 40)
        --to_int8: clamp(((raw * 256) + 333) // 666 - 128, -128, 127)--> device int8 features
        --to_float: (q + 128) * INPUT_SCALE--> training features (float32, 0 .. 25.9)

Training on the dequantized device int8 features (rather than raw * 10 / 256 as TensorFlow's
speech_commands does) means the int8 model's input quantization (scale INPUT_SCALE, zero
point -128) reproduces the device features bit for bit: the model never sees a feature the
board cannot produce. ``tests/test_frontend.py`` checks the int8 features against
TFLite Micro's golden device features (``../shared/golden``), all 4,000 values.

References:
  1) tflite-micro ``tensorflow/lite/micro/examples/micro_speech`` (micro_features_generator,
     audio_preprocessor.py ``FeatureParams``) -- parameters and the int8 formula.
  2) TensorFlow ``tensorflow/lite/experimental/microfrontend/python/ops/
     audio_microfrontend_op.py`` and ``examples/speech_commands/input_data.py``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .config import BACKGROUND_NOISE_DIR, SILENCE_LABEL, Config, FrontendConfig

log = logging.getLogger(__name__)

FEATURE_CHUNK = 2048
"""Clips read and featurized at once by prepare_features (bounds its audio memory: 2,048
clips are 131 MB of float32 audio)."""

INPUT_SCALE = 666 * 10 / 65536
"""Step of the training features per int8 step: (q + 128) * 0.10162... (10 / 256 per raw
unit, 666 / 256 raw units per int8 step). The exported model's input scale equals it."""
INPUT_ZERO_POINT = -128
"""int8 value that stands for feature 0."""
FEATURE_MAX = 255 * INPUT_SCALE
"""Largest training feature value, 25.914 (int8 127)."""


def audio_to_int16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16 PCM: round(x * 32768), clamped to [-32768, 32767].

    Exact inverse of reading int16 PCM as x / 32768.
    """
    return np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def _op_kwargs(cfg: FrontendConfig) -> dict:
    return dict(
        sample_rate=cfg.sample_rate_hz, window_size=cfg.window_size_ms,
        window_step=cfg.window_stride_ms, num_channels=cfg.num_channels,
        upper_band_limit=cfg.upper_band_limit_hz, lower_band_limit=cfg.lower_band_limit_hz,
        smoothing_bits=cfg.smoothing_bits, even_smoothing=cfg.even_smoothing,
        odd_smoothing=cfg.odd_smoothing, min_signal_remaining=cfg.min_signal_remaining,
        enable_pcan=cfg.enable_pcan, pcan_strength=cfg.pcan_strength,
        pcan_offset=cfg.pcan_offset, gain_bits=cfg.gain_bits, enable_log=cfg.enable_log,
        scale_shift=cfg.scale_shift, out_scale=1,
    )


_GRAPHS: dict = {}


def _batched_op(cfg: FrontendConfig):
    """A tf.function running the op over a batch with tf.vectorized_map (one per config)."""
    key = cfg
    if key not in _GRAPHS:
        try:
            from ._tf import import_tensorflow

            tf = import_tensorflow()
            from tensorflow.lite.experimental.microfrontend.python.ops import (
                audio_microfrontend_op as op,
            )
        except ImportError as e:
            raise ImportError(
                "kwslab's features run TensorFlow's micro frontend op (the device's C code) and "
                "TensorFlow is not installed: pip install tensorflow-cpu (or `pip install -r "
                f"requirements.txt` for the tested versions); import failed with: {e}") from e
        kwargs = _op_kwargs(cfg)
        # vectorized_map falls back to a while loop for this op and logs a warning each trace
        logging.getLogger("tensorflow").setLevel(logging.ERROR)

        @tf.function
        def run(batch):  # (N, S) int16 -> (N, T, F) uint16
            num_frames = 1 + (tf.shape(batch)[1] - cfg.window_samples) // cfg.stride_samples

            def one(a):  # (S,) -> (T, F); the static shape lets the loop stack results
                out = op.audio_microfrontend(a, out_type=tf.uint16, **kwargs)
                return tf.reshape(out, [num_frames, cfg.num_channels])

            return tf.vectorized_map(one, batch)

        _GRAPHS[key] = run
    return _GRAPHS[key]


def compute_raw(audio_int16: np.ndarray, cfg: FrontendConfig = FrontendConfig(),
                batch_size: int = 512, progress: bool = False) -> np.ndarray:
    """Micro frontend output for one clip or a batch of equal-length clips.

    Args:
        audio_int16: int16 PCM at cfg.sample_rate_hz, shape (S,) or (N, S).
        cfg: frontend settings (micro_speech defaults).
        batch_size: clips per TensorFlow call.
        progress: show a tqdm bar over batches.
    Returns:
        uint16 array of shape (T, F) or (N, T, F), T = 1 + (S - window) // stride
        (49 for S = 16000), F = cfg.num_channels. Values are log-scaled filterbank energies
        (scale_shift 6), typically 0..~700.
    Raises:
        TypeError: if the audio is not int16 (convert float audio with audio_to_int16).
        ValueError: if a clip is shorter than one window.
    Source: tensorflow/lite/experimental/microfrontend (the firmware's C code).
    """
    audio_int16 = np.asarray(audio_int16)
    if audio_int16.dtype != np.int16:
        raise TypeError(f"audio must be int16 PCM, got {audio_int16.dtype}; use audio_to_int16()")
    single = audio_int16.ndim == 1
    batch = audio_int16[None] if single else audio_int16
    if batch.ndim != 2:
        raise ValueError(f"audio must have shape (S,) or (N, S), got {audio_int16.shape}")
    if batch.shape[1] < cfg.window_samples:
        raise ValueError(f"clips of {batch.shape[1]} samples are shorter than one "
                         f"{cfg.window_samples}-sample window")
    run = _batched_op(cfg)
    from tqdm.auto import tqdm

    num_frames = 1 + (batch.shape[1] - cfg.window_samples) // cfg.stride_samples
    out = np.empty((len(batch), num_frames, cfg.num_channels), np.uint16)
    starts = range(0, len(batch), batch_size)
    # Chunks are padded to batch_size, or to the next power of two for smaller inputs, so
    # at most log2(batch_size) + 1 graphs are ever traced (tracing takes seconds).
    size = batch_size if len(batch) >= batch_size else 1 << (len(batch) - 1).bit_length()
    for start in tqdm(starts, desc="features", leave=False, disable=not progress):
        chunk = batch[start:start + size]
        if len(chunk) < size:  # pad the last chunk: one traced graph per (size, S), no retracing
            chunk = np.concatenate([chunk, np.zeros((size - len(chunk), chunk.shape[1]), np.int16)])
        out[start:start + size] = run(chunk).numpy()[: len(batch) - start]
    return out[0] if single else out


def compute_raw_loop(audio_int16: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """The same op called once per clip (eager): the slow reference for the batched path."""
    import tensorflow as tf
    from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op as op

    kwargs = _op_kwargs(cfg)
    return np.stack([op.audio_microfrontend(tf.constant(a), out_type=tf.uint16, **kwargs).numpy()
                     for a in np.asarray(audio_int16)])


def to_int8(raw: np.ndarray) -> np.ndarray:
    """Device int8 features from the frontend's uint16 output, as the firmware computes them.

    q = clamp(((raw * 256) + 333) // 666 - 128, -128, 127), in integer arithmetic. Worked
    example: raw 0 -> 333 // 666 - 128 = -128; raw 333 -> 85581 // 666 - 128 = 0;
    raw 700 -> 179533 // 666 - 128 = 141 -> clamped to 127.

    Args:
        raw: uint16 (or any integer) array, any shape.
    Returns:
        int8 array, same shape.
    Source: tflite-micro micro_speech ``micro_features_generator.cc`` (value_scale 256,
    value_div 666 = 25.6 * 26.0).
    """
    v = np.asarray(raw).astype(np.int64)
    return np.clip((v * 256 + 333) // 666 - 128, -128, 127).astype(np.int8)


def to_float(q: np.ndarray) -> np.ndarray:
    """Training features from device int8 features: (q + 128) * INPUT_SCALE, float32.

    Range 0 .. 25.914; int8 -128 -> 0.0, 0 -> 13.008, 127 -> 25.914. Quantizing them with the
    model's input scale INPUT_SCALE and zero point -128 gives back q exactly.
    """
    return ((np.asarray(q).astype(np.float32) + 128.0) * np.float32(INPUT_SCALE)).astype(np.float32)


def compute_features(audio: np.ndarray, cfg: FrontendConfig = FrontendConfig(),
                     batch_size: int = 512, progress: bool = False) -> np.ndarray:
    """Device int8 features of float audio: to_int8(compute_raw(audio_to_int16(audio))).

    Args:
        audio: float audio in [-1, 1], shape (S,) or (N, S), at cfg.sample_rate_hz.
    Returns:
        int8 array of shape (T, F) or (N, T, F).
    """
    return to_int8(compute_raw(audio_to_int16(audio), cfg, batch_size, progress))


# ---------------------------------------------------------------- cache
def file_digest(path: str | os.PathLike) -> str:
    """SHA-1 of a file's bytes (cache keys change when a clip's content changes)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(**parts) -> str:
    """A stable hex key from JSON-able parts (configs as dicts, clip digests, seeds)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def cached(cache_dir: str | os.PathLike | None, name: str, key: str,
           compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load ``<cache_dir>/<name>-<key>.npz`` or compute, save (atomically) and return it.

    With cache_dir None nothing is read or written. A corrupt cache file is recomputed.
    """
    if cache_dir is None:
        return compute()
    path = Path(cache_dir) / f"{name}-{key}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except Exception as e:  # a truncated or foreign file: recompute, keep going
            log.warning("cache file %s unreadable (%s); recomputing", path, e)
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return arrays


# ----------------------------------------------------------------------------- float <-> int8 features


def quantize_features(features: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 of float features with the TFLite affine rule: clamp(round(f / scale) + zp).

    Rounding is half away from zero (as the TFLite quantize reference kernel); for the
    micro frontend's features no value falls on a half step (see ``feature_mapping``).

    Args:
        features: float array, any shape.
        scale: > 0. zero_point: int in -128..127.
    Returns:
        int8 array, same shape.
    Raises:
        ValueError: if scale <= 0.
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    r = np.asarray(features, np.float64) / scale
    q = np.sign(r) * np.floor(np.abs(r) + 0.5) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def feature_mapping(raw: np.ndarray, scale: float = INPUT_SCALE,
                    zero_point: int = INPUT_ZERO_POINT) -> dict:
    """Device int8, training float and re-quantized float features of raw frontend outputs.

    Why they agree: f / scale = (raw * 10 / 256) / (666 * 10 / 65536) = raw * 256 / 666, so
    round(f / scale) - 128 equals the device's (raw * 256 + 333) // 666 - 128 (round half
    up) unless raw * 256 / 666 lies exactly on a half step, raw * 256 = 333 * (2k + 1):
    impossible, the left side is even and the right side odd. Example: raw 333 ->
    f = 13.0078, f / scale = 128.0 -> q = 0 (device: 85581 // 666 - 128 = 0).

    Args:
        raw: integer array of uint16 frontend outputs, any shape.
        scale, zero_point: the model's input quantization.
    Returns:
        dict with "raw" (int64), "device_int8", "float" (float64, raw * 10 / 256) and
        "quantized_float" (int8), all of raw's shape.
    """
    raw = np.asarray(raw).astype(np.int64)
    f = raw * 10.0 / 256.0
    return {"raw": raw, "device_int8": to_int8(raw), "float": f,
            "quantized_float": quantize_features(f, scale, zero_point)}


# ----------------------------------------------------------------------------- the feature stage
# Training clips get an augmentation bank: ``num_augmented`` augmented copies of every clip
# (time shift, background noise) computed once, epoch e drawing one copy per clip. This
# replaces TensorFlow's augment-every-step loop, which spends most of its time in the
# frontend, with a cache that trains 200 tiny_conv epochs in seconds on a laptop CPU.


@dataclass
class FeatureData:
    """Device int8 features for the three splits.

    Attributes:
        labels: class names, _silence_, _unknown_, then the words (C of them).
        train_x: int8, shape (K, N, T, F): K augmented copies of N training clips.
        train_y: int64, shape (N,).
        val_x, test_x: int8, shapes (N_val, T, F), (N_test, T, F); no augmentation.
        val_y, test_y: int64 labels.
        test_names: "word/file.wav" (or "_silence_") for each test clip.
        stats: clips per split and label, speakers per split.
    """

    labels: tuple[str, ...]
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    test_names: list[str]
    stats: dict
    timings_s: dict = field(default_factory=dict)


def _example_names(examples, data_dir: Path) -> list[str]:
    return [SILENCE_LABEL if e.path is None else Path(e.path).relative_to(data_dir).as_posix()
            for e in examples]


def prepare_features(cfg: Config, data_dir=None, cache_dir: str | Path | None = ".cache/features",
                     num_augmented: int = 8, progress: bool = True) -> FeatureData:
    """Index the data, then load (or compute and cache) int8 features for every split.

    Args:
        cfg: the pipeline config (frontend, data and train.seed are used).
        data_dir: Speech Commands folder; None resolves it as ``dataset.find_data_dir``.
        cache_dir: where feature caches go; None disables caching. Keys cover the frontend
            and data configs, the seed, the clip list and every clip's content digest.
        num_augmented: augmented copies per training clip (K); with cfg.train.augment False
            the bank holds the clean clips once (K = 1).
        progress: tqdm bars.
    Returns:
        FeatureData.
    Raises:
        FileNotFoundError / dataset.DataError: missing data folder or bad clip (named).
    """
    import time

    from tqdm.auto import tqdm

    from . import dataset

    t0 = time.perf_counter()
    data_dir = dataset.find_data_dir(data_dir)
    seed = cfg.train.seed
    splits = dataset.index_splits(data_dir, cfg.data, seed=seed)
    background = dataset.load_background_noise(data_dir)
    t_index = time.perf_counter() - t0
    digests = {}

    def split_key(name, examples, augment, copies):
        for e in examples:
            if e.path is not None and e.path not in digests:
                digests[e.path] = file_digest(e.path)
        clips = [(n, e.label, digests.get(e.path)) for n, e in zip(_example_names(examples, data_dir), examples)]
        return cache_key(frontend=asdict(cfg.frontend), data=asdict(cfg.data), seed=seed,
                                  split=name, augment=augment, copies=copies, clips=clips,
                                  noise=[file_digest(p) for p in sorted(
                                      (data_dir / BACKGROUND_NOISE_DIR).glob("*.wav"))],
                                  version=1)

    def make(name, examples, augment, copies):
        def compute():
            rng = np.random.default_rng([seed, {"training": 0, "validation": 1, "testing": 2}[name]])
            # Audio is read and featurized FEATURE_CHUNK clips at a time into a preallocated
            # bank (one rng stream in clip order, so the chunking does not change the values):
            # the full data set's audio alone would be ~2.4 GB of float32 per copy.
            x = np.empty((copies, len(examples), *cfg.frontend.feature_shape), np.int8)
            for k in tqdm(range(copies), desc=f"{name} features", leave=False, disable=not progress or copies == 1):
                for i in range(0, len(examples), FEATURE_CHUNK):
                    audio = dataset.load_audio(examples[i:i + FEATURE_CHUNK], background, cfg.data,
                                               augment=augment, rng=rng,
                                               num_samples=cfg.frontend.clip_samples,
                                               sample_rate_hz=cfg.frontend.sample_rate_hz)
                    x[k, i:i + len(audio)] = compute_features(audio, cfg.frontend)
            return {"x": x, "y": np.array([e.label for e in examples], np.int64)}
        return cached(cache_dir, name, split_key(name, examples, augment, copies), compute)

    t1 = time.perf_counter()
    augment = cfg.train.augment
    copies = num_augmented if augment else 1
    train = make("training", splits["training"], augment, copies)
    val = make("validation", splits["validation"], False, 1)
    test = make("testing", splits["testing"], False, 1)
    t_features = time.perf_counter() - t1
    return FeatureData(
        labels=cfg.data.labels, train_x=train["x"], train_y=train["y"],
        val_x=val["x"][0], val_y=val["y"], test_x=test["x"][0], test_y=test["y"],
        test_names=_example_names(splits["testing"], data_dir),
        stats=dataset.split_stats(splits, cfg.data.labels),
        timings_s={"index": round(t_index, 3), "features": round(t_features, 3)},
    )
