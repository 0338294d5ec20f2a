"""Helpers for notebook 4 (conversion): the feature mapping, a user's clip, trials, streaming.

* ``feature_mapping`` tabulates, for raw micro frontend outputs, the device's int8 feature
  ``((raw * 256) + 333) // 666 - 128`` (clamped), the training feature ``raw * 10 / 256``
  and that feature quantized with the model's input ``scale`` / ``zero_point``;
  ``plot_feature_mapping`` draws them.
* ``classify_audio`` runs what the board runs on one recording: the loudest 1 s window,
  micro frontend, int8 features, the int8 model in the TFLite Micro interpreter.
* ``label_clips`` / ``stream_clips`` pick test-split clips (a stand-in for a microphone in CI,
  and the material of a stitched streaming recording); ``trial_table`` summarises
  "say each word N times" trials; ``plot_timeline`` draws a streaming run (waveform with
  the true keyword spans, averaged scores, the detection threshold and the detections).

References:
  1) tflite-micro micro_speech ``micro_features_generator.cc`` (the 256 / 666 mapping) and
     ``recognize_commands.cc`` (averaged scores, threshold 200).
  2) TFLite 8-bit quantization spec: ``real = (q - zero_point) * scale``.
  3) TensorFlow ``speech_commands/test_streaming_accuracy.cc`` (streaming test recording).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from . import frontend


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


def feature_mapping(raw: np.ndarray, scale: float = frontend.INPUT_SCALE,
                    zero_point: int = frontend.INPUT_ZERO_POINT) -> dict:
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
    return {"raw": raw, "device_int8": frontend.to_int8(raw), "float": f,
            "quantized_float": quantize_features(f, scale, zero_point)}


def plot_feature_mapping(raw_max: int = 700, scale: float = frontend.INPUT_SCALE,
                         zero_point: int = frontend.INPUT_ZERO_POINT, axes=None):
    """Two panels: device int8 vs raw, and int8 vs the training feature with the affine line.

    Returns:
        The array of two matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4))
    m = feature_mapping(np.arange(raw_max + 1), scale, zero_point)
    ax = axes[0]
    ax.step(m["raw"], m["device_int8"], where="post", lw=1, label="((raw*256)+333)//666 - 128")
    ax.axhline(127, color="gray", ls=":", lw=0.8)
    ax.set(title="Device int8 feature vs raw frontend output", xlabel="raw frontend output (uint16 units)",
           ylabel="int8 feature (steps)")
    ax.legend(loc="lower right")
    ax = axes[1]
    ax.plot(m["float"], m["device_int8"], ".", ms=2, label="device int8")
    f = np.linspace(0, m["float"].max(), 200)
    ax.plot(f, np.clip(f / scale + zero_point, -128, 127), lw=0.8, color="C1",
            label=f"f / {scale:.5f} + ({zero_point})")
    ax.set(title="int8 = round(f / scale) + zero_point", xlabel="training feature f = raw*10/256 (unitless)",
           ylabel="int8 feature (steps)")
    ax.legend(loc="lower right")
    return axes


def classify_audio(audio: np.ndarray, tflite_bytes: bytes, cfg, arena_size: int = 200_000) -> dict:
    """Classify one recording as the board would: 1 s window, features, int8 model in TFLM.

    Args:
        audio: float mono audio in [-1, 1] at cfg.frontend.sample_rate_hz, shape (S,), any
            length (the loudest clip-long window is kept, shorter audio is zero-padded).
        tflite_bytes: the int8 model (int8 input (1, T, F, 1), int8 output (1, C)).
        cfg: the Config the model was trained with (frontend, labels).
        arena_size: TFLM arena bytes.
    Returns:
        dict with "label" (str), "index" (int), "scores_int8" (int8 (C,)),
        "probabilities" (float (C,), the output dequantized with its scale / zero point)
        and "features" (int8 (T, F)).
    Raises:
        ValueError: if audio is not 1-D.
    """
    from . import export
    from .colab import fit_clip

    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono 1-D, got shape {audio.shape}")
    clip = fit_clip(audio, cfg.frontend.clip_samples)
    feats = frontend.compute_features(clip, cfg.frontend)  # (T, F) int8
    scores = export.run_tflm(tflite_bytes, feats[None], arena_size=arena_size)[0].astype(np.int8)
    out = export.io_quantization(tflite_bytes)["output"]
    probs = (scores.astype(np.float64) - out["zero_point"]) * out["scale"] if out["scale"] else scores.astype(np.float64)
    index = int(np.argmax(scores))
    return {"label": cfg.data.labels[index], "index": index, "scores_int8": scores,
            "probabilities": probs, "features": feats}


def label_clips(data, data_dir: str | Path, label: str, n: int | None = None) -> list[np.ndarray]:
    """The first n test-split clips of one label (float audio, 1 s), in test-split order.

    Args:
        data: kwslab.train.FeatureData (its test_names and test_y).
        data_dir: the Speech Commands folder the names are relative to.
        label: a word or ``_unknown_`` (``_silence_`` clips have no file).
        n: how many (None: all).
    Raises:
        ValueError: if the label is not one of data.labels or is ``_silence_``.
    """
    from . import dataset

    if label not in data.labels or label == "_silence_":
        raise ValueError(f"label {label!r} must be one of {[l for l in data.labels if l != '_silence_']}")
    idx = [i for i, y in enumerate(data.test_y) if data.labels[y] == label]
    return [dataset.read_wav(Path(data_dir) / data.test_names[i]) for i in idx[:n]]



def stream_clips(data, data_dir: str | Path, num_keywords: int = 8, num_unknown: int = 2,
                 seed: int = 0) -> list[tuple[np.ndarray, str]]:
    """(audio, label) pairs for a stitched recording: keywords (round robin) and unknown words.

    Keywords cycle through the wanted words (test split, each clip used once) until
    num_keywords are taken or clips run out; num_unknown ``_unknown_`` clips are added and
    the order is shuffled with seed.
    """
    words = [l for l in data.labels if not l.startswith("_")]
    pools = {w: label_clips(data, data_dir, w) for w in words}
    picked, k = [], 0
    while len(picked) < num_keywords and any(k < len(p) for p in pools.values()):
        for w in words:
            if len(picked) < num_keywords and k < len(pools[w]):
                picked.append((pools[w][k], w))
        k += 1
    if num_unknown:
        picked += [(a, "_unknown_") for a in label_clips(data, data_dir, "_unknown_", num_unknown)]
    order = np.random.default_rng(seed).permutation(len(picked))
    return [picked[i] for i in order]


def trial_table(trials, labels) -> list[dict]:
    """One row per said word: trials, correct, accuracy and what it was heard as.

    Args:
        trials: sequence of (said, heard) label pairs.
        labels: class names (rows follow this order; labels never said are left out).
    Returns:
        list of dicts with said, trials, correct, accuracy and heard_as (a label -> count
        dict, most frequent first).
    Example: [("yes", "yes"), ("yes", "no"), ("no", "no")] -> yes: 2 trials, 1 correct,
    0.5, {"yes": 1, "no": 1}; no: 1, 1, 1.0, {"no": 1}.
    """
    rows = []
    for said in labels:
        heard = [h for s, h in trials if s == said]
        if not heard:
            continue
        correct = sum(h == said for h in heard)
        rows.append({"said": said, "trials": len(heard), "correct": correct,
                     "accuracy": correct / len(heard), "heard_as": dict(Counter(heard).most_common())})
    return rows


def plot_timeline(audio_int16: np.ndarray, times_ms, scores, labels, truth, detections, *,
                  sample_rate_hz: int = 16_000, threshold: int = 200, average_window_ms: int = 1000,
                  axes=None):
    """Waveform with true keyword spans, averaged scores per class, threshold and detections.

    The score panel shows each class's (score + 128) averaged over the last
    average_window_ms (what RecognizeCommands compares with the threshold; its minimum-count
    rule is ignored here).

    Args:
        audio_int16: the recording, int16 (S,).
        times_ms, scores: ``detect.stream_scores`` output: (K,) window end times, int8 (K, C).
        labels: the C class names.
        truth: detect.Keyword items; detections: detect.Detection items.
    Returns:
        The array of two matplotlib Axes (shared time axis in s).
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(13, 5.5), sharex=True)
    times_ms = np.asarray(times_ms)
    shifted = np.asarray(scores).astype(np.int64) + 128  # 0..255
    avg = np.empty(shifted.shape, np.float64)
    for k, t in enumerate(times_ms):
        keep = (times_ms[:k + 1] >= t - average_window_ms)
        avg[k] = shifted[:k + 1][keep].mean(axis=0)
    colors = {lab: f"C{i}" for i, lab in enumerate(labels)}
    ax = axes[0]
    audio = np.asarray(audio_int16, np.float32) / 32768.0
    ax.plot(np.arange(len(audio)) / sample_rate_hz, audio, lw=0.4, color="gray")
    for kw in truth:
        ax.axvspan(kw.start_ms / 1000, kw.end_ms / 1000, color=colors.get(kw.label, "k"), alpha=0.2)
        ax.text(kw.start_ms / 1000, 0.9, kw.label, fontsize=8, va="top")
    ax.set(title="Stitched recording: true keyword spans (shaded)", ylabel="amplitude (full scale)",
           ylim=(-1, 1))
    ax = axes[1]
    for c, lab in enumerate(labels):
        ax.plot(times_ms / 1000, avg[:, c], lw=1, color=colors[lab], label=lab.strip("_"))  # "_x" hides a legend entry
    ax.axhline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold}")
    for d in detections:
        ax.plot(d.time_ms / 1000, d.score, "v", ms=9, color=colors.get(d.label, "k"), mec="k")
        ax.text(d.time_ms / 1000, d.score + 6, d.label, fontsize=8, ha="center")
    ax.set(title=f"Scores averaged over {average_window_ms} ms (triangles: detections)",
           xlabel="time (s)", ylabel="score + 128 (0..255)", ylim=(0, 275))
    ax.legend(loc="upper right", ncol=len(labels) + 1, fontsize=8)
    return axes
