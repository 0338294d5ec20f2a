"""Streaming keyword detection on the host: the firmware's pipeline, step for step.

``detect_stream`` runs what the boards run on live audio: micro frontend features of the
whole stream, a 49-frame (1 s) int8 window advanced by one frame (20 ms), the int8 model in
the TFLite Micro interpreter, then :class:`RecognizeCommands`. The frontend is computed once
over the whole stream because it is stateful (window overlap, noise estimate, PCAN): the
device feeds it audio contiguously, so one pass over the stream is the faithful twin;
per-window recomputation would restart that state every second. By default the host runs
one inference per 20 ms frame; the boards are slower and score every n-th slice
(``KWS_INFERENCE_EVERY_SLICES``: Nano 3, PSoC 6 2), so RecognizeCommands averages fewer
results per window; ``every_slices=n`` reproduces a board's cadence exactly.

:class:`RecognizeCommands` is the Python twin of ``arduino/kws_nano33ble/src/kws/
recognize_commands.cpp`` (tests check equal decisions on the same score sequences).
``stitch_recording`` builds a long test recording from real clips and background noise
with known keyword times, ``score_detections`` scores detections against it and
``false_alarm_causes`` says what each false alarm was hearing.

References:
  1) tflite-micro micro_speech ``recognize_commands.h/.cc`` (2019-2023): average window,
     threshold, suppression, minimum count.
  2) TensorFlow ``speech_commands/test_streaming_accuracy.cc`` and
     ``generate_streaming_test_wav.py``: stitched recordings with ground truth, scored as
     matched, wrong and false detections within a time tolerance.
"""
from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kwslab.config import Config, FrontendConfig, RecognizeConfig

log = logging.getLogger(__name__)

MAX_RESULTS = 64
"""Results kept for averaging (the C++ ring's kMaxResults); when full the oldest is dropped."""


@dataclass(frozen=True)
class RecognizeResult:
    label_index: int
    """Top class of the averaged scores (the previous top if no decision was made)."""
    score: int
    """Its average of (score + 128), 0..255; 0 if no decision was made."""
    is_new_command: bool


@dataclass(frozen=True)
class Detection:
    label: str
    time_ms: int
    """Audio time at the end of the window that fired, ms from the stream start."""
    score: int
    """Averaged score, 0..255."""


@dataclass(frozen=True)
class Keyword:
    """A keyword placed in a stitched recording: the clip spans [start_ms, end_ms)."""

    label: str
    start_ms: int
    end_ms: int


class RecognizeCommands:
    """Decisions from a stream of int8 score vectors, as micro_speech's RecognizeCommands.

    Each call appends the latest scores, forgets results older than
    ``average_window_ms`` before the current time, and, if at least ``minimum_count``
    results spanning at least ``average_window_ms // 4`` remain, averages
    ``score + 128`` per class with integer division. The top class (first on ties, and
    class 0 if every average is 0) is a new command when its average exceeds
    ``detection_threshold``, unless it repeats the previous command (not class 0) within
    ``suppression_ms`` (``time - previous_time <= suppression_ms``).

    Example (2 classes, defaults): scores [[-128, 127]] at 0, 100, 200, 300 ms: the first
    three calls give no decision (fewer than 3 results, then a 200 ms span < 250 ms); at
    300 ms the average of class 1 is (127 + 128) = 255 > 200: a new command.

    Source: tflite-micro micro_speech ``recognize_commands.cc``; C++ twin
    ``arduino/kws_nano33ble/src/kws/recognize_commands.cpp``.
    """

    def __init__(self, category_count: int,
                 average_window_ms: int = RecognizeConfig.average_window_ms,
                 detection_threshold: int = RecognizeConfig.detection_threshold,
                 suppression_ms: int = RecognizeConfig.suppression_ms,
                 minimum_count: int = RecognizeConfig.minimum_count):
        if not 1 <= category_count <= 16:
            raise ValueError(f"category_count={category_count} must be in 1..16")
        self.category_count = category_count
        self.average_window_ms = average_window_ms
        self.detection_threshold = detection_threshold
        self.suppression_ms = suppression_ms
        self.minimum_count = minimum_count
        self._results: collections.deque = collections.deque(maxlen=MAX_RESULTS)
        self._previous_top_index = 0
        self._previous_top_time_ms = 0
        self._has_previous_top = False

    @classmethod
    def from_config(cls, category_count: int, settings: RecognizeConfig) -> "RecognizeCommands":
        """A RecognizeCommands with the settings the device header is generated from."""
        return cls(category_count, settings.average_window_ms, settings.detection_threshold,
                   settings.suppression_ms, settings.minimum_count)

    def process_latest_results(self, scores, time_ms: int) -> RecognizeResult:
        """Feed one inference's int8 scores (length category_count) ending at time_ms.

        Raises:
            ValueError: if time_ms is earlier than the previous call's, or the scores have
                the wrong length or lie outside -128..127.
        """
        s = np.asarray(scores).astype(np.int64).reshape(-1)
        if s.size != self.category_count:
            raise ValueError(f"got {s.size} scores, expected {self.category_count}")
        if s.min() < -128 or s.max() > 127:
            raise ValueError("scores must be int8 values in -128..127")
        time_ms = int(time_ms)
        if self._results and time_ms < self._results[-1][0]:
            raise ValueError(f"time_ms={time_ms} is earlier than the previous "
                             f"{self._results[-1][0]} ms")
        self._results.append((time_ms, s))
        while self._results and self._results[0][0] < time_ms - self.average_window_ms:
            self._results.popleft()
        span_ms = time_ms - self._results[0][0]
        if len(self._results) < self.minimum_count or span_ms < self.average_window_ms // 4:
            return RecognizeResult(self._previous_top_index, 0, False)
        total = np.sum([r[1] + 128 for r in self._results], axis=0)
        averages = total // len(self._results)
        top_index, top_score = 0, 0
        for c, avg in enumerate(averages):
            if avg > top_score:
                top_index, top_score = c, int(avg)
        suppressed = (self._has_previous_top and self._previous_top_index != 0
                      and top_index == self._previous_top_index
                      and time_ms - self._previous_top_time_ms <= self.suppression_ms)
        is_new = top_score > self.detection_threshold and not suppressed
        if is_new:
            self._previous_top_index = top_index
            self._previous_top_time_ms = time_ms
            self._has_previous_top = True
        return RecognizeResult(top_index, top_score, is_new)


def window_end_times_ms(num_frames: int, cfg: FrontendConfig) -> np.ndarray:
    """End time (ms) of each window of cfg.num_frames frames over num_frames frames.

    Window k covers frames k .. k + T - 1; its last frame ends at sample
    window_samples + stride_samples * (k + T - 1). Example (micro_speech): T = 49, the
    first window ends at (480 + 320 * 48) / 16 = 990 ms, the next at 1010 ms.
    """
    last_frames = np.arange(cfg.num_frames - 1, num_frames)
    end_samples = cfg.window_samples + cfg.stride_samples * last_frames
    return (end_samples * 1000) // cfg.sample_rate_hz


def stream_scores(features_int8: np.ndarray, tflite_bytes: bytes, cfg: FrontendConfig,
                  arena_bytes: int | None = None,
                  every_slices: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Int8 model outputs for every 1 s window of a feature stream, in TFLM.

    Args:
        features_int8: int8 array of shape (frames, F), frames >= T.
        tflite_bytes: int8 model with input (1, T, F[, 1]) and int8 output (1, C).
        cfg: frontend settings (T, stride, sample rate).
        arena_bytes: TFLM arena bytes; None uses ``export.run_tflm``'s default.
        every_slices: score only every every_slices-th window (the first, then every n-th
            frame after it): the boards' inference cadence (KWS_INFERENCE_EVERY_SLICES).
    Returns:
        times_ms int64 (K,), scores int8 (K, C), K = ceil((frames - T + 1) / every_slices).
    Raises:
        ValueError: if there are fewer frames than one window, or the model's input is not
            int8 of T x F values.
    """
    from kwslab import export

    feats = np.asarray(features_int8)
    t, f = cfg.feature_shape
    if feats.ndim != 2 or feats.shape[1] != f or feats.shape[0] < t or feats.dtype != np.int8:
        raise ValueError(f"features must be int8 of shape (frames >= {t}, {f}), got "
                         f"{feats.dtype} {feats.shape}")
    io = export.io_quantization(tflite_bytes)["input"]
    if io["dtype"] != "int8" or int(np.prod(io["shape"])) != t * f:
        raise ValueError(f"model input must be int8 with {t}x{f} values, got "
                         f"{io['dtype']} {tuple(io['shape'])}")
    if every_slices < 1:
        raise ValueError(f"every_slices={every_slices} must be >= 1")
    times = window_end_times_ms(len(feats), cfg)[::every_slices]
    windows = np.lib.stride_tricks.sliding_window_view(feats, (t, f))[::every_slices, 0]
    kwargs = {} if arena_bytes is None else {"arena_bytes": int(arena_bytes)}
    outputs = export.run_tflm(tflite_bytes, windows, **kwargs).astype(np.int8)  # (K, C)
    return times.astype(np.int64), outputs


def recognize(times_ms, scores, labels, settings: RecognizeConfig = RecognizeConfig(), *,
              include_background: bool = False) -> list[Detection]:
    """RecognizeCommands over a score sequence; returns the new commands.

    Args:
        times_ms: (K,) non-decreasing window end times.
        scores: int8 (K, C).
        labels: C class names; names starting with "_" (``_silence_``, ``_unknown_``) are
            dropped from the result unless include_background.
        settings: averaging window, threshold, suppression, minimum count (``cfg.recognize``).
    Returns:
        The new commands, in time order.
    Raises:
        ValueError: as ``RecognizeCommands.process_latest_results``.
    """
    rc = RecognizeCommands.from_config(len(labels), settings)
    out = []
    for t, s in zip(times_ms, scores):
        r = rc.process_latest_results(s, int(t))
        if r.is_new_command and (include_background or not labels[r.label_index].startswith("_")):
            out.append(Detection(labels[r.label_index], int(t), r.score))
    return out


def detect_stream(audio_int16: np.ndarray, tflite_bytes: bytes, cfg: Config = Config(), *,
                  arena_bytes: int | None = None, include_background: bool = False,
                  every_slices: int = 1) -> list[Detection]:
    """Keyword detections in a long int16 recording, as the firmware would report them.

    Features of the whole stream once (``kwslab.frontend.compute_raw``, then ``to_int8``),
    a T-frame window every frame, the model in TFLM, RecognizeCommands.

    Args:
        audio_int16: int16 mono PCM at cfg.frontend.sample_rate_hz, shape (S,), at least
            one clip long (16000 samples).
        tflite_bytes: the int8 model.
        cfg: the config the model was trained with (frontend, labels) and the
            RecognizeCommands settings (``cfg.recognize``).
        arena_bytes: TFLM arena bytes (None: ``export.run_tflm``'s default).
        include_background: also report ``_silence_``/``_unknown_`` commands.
        every_slices: inference cadence in frames (1: every 20 ms; the boards use 2-3).
    Returns:
        Detections in time order.
    Raises:
        TypeError: if the audio is not int16.
        ValueError: if the audio is shorter than one clip.
    """
    from kwslab import frontend

    audio = np.asarray(audio_int16)
    if audio.dtype != np.int16:
        raise TypeError(f"audio must be int16 PCM, got {audio.dtype}")
    if audio.ndim != 1 or len(audio) < cfg.frontend.clip_samples:
        raise ValueError(f"audio must be 1-D with at least {cfg.frontend.clip_samples} "
                         f"samples, got shape {audio.shape}")
    raw = frontend.compute_raw(audio, cfg.frontend)  # (frames, F) uint16
    times, scores = stream_scores(frontend.to_int8(raw), tflite_bytes, cfg.frontend,
                                  arena_bytes=arena_bytes, every_slices=every_slices)
    return recognize(times, scores, list(cfg.data.labels), cfg.recognize,
                     include_background=include_background)


def stitch_recording(clips, noise: np.ndarray | None = None, gap_ms: int = 1000, *,
                     sample_rate_hz: int = 16_000, noise_volume: float = 0.1,
                     lead_ms: int = 1000, seed: int = 0) -> tuple[np.ndarray, list[Keyword]]:
    """A long int16 recording of clips separated by gaps, over background noise.

    Layout: lead_ms of noise, then each clip followed by gap_ms, then lead_ms. Noise (tiled
    from a random offset) is added at noise_volume over the whole recording, and the sum is
    clipped to int16.

    Args:
        clips: sequence of (audio, label); audio is float in [-1, 1] or int16, mono.
        noise: background noise (float or int16, any length > 0), or None for silence.
        gap_ms: silence/noise between clips, ms (>= 0).
        sample_rate_hz, noise_volume, lead_ms, seed: as named.
    Returns:
        (audio int16 (S,), keywords: one Keyword per clip with its [start_ms, end_ms)).
    Raises:
        ValueError: if clips is empty or gap_ms / lead_ms are negative.
    Source: TensorFlow ``speech_commands/generate_streaming_test_wav.py`` (idea).
    """
    clips = list(clips)
    if not clips:
        raise ValueError("clips is empty; expected (audio, label) pairs")
    if gap_ms < 0 or lead_ms < 0:
        raise ValueError(f"gap_ms={gap_ms} and lead_ms={lead_ms} must be >= 0")

    def as_float(a):
        a = np.asarray(a)
        return a.astype(np.float32) / 32768.0 if a.dtype == np.int16 else a.astype(np.float32)

    gap = gap_ms * sample_rate_hz // 1000
    lead = lead_ms * sample_rate_hz // 1000
    pieces, keywords, pos = [np.zeros(lead, np.float32)], [], lead
    for audio, label in clips:
        a = as_float(audio).reshape(-1)
        keywords.append(Keyword(str(label), pos * 1000 // sample_rate_hz,
                                (pos + len(a)) * 1000 // sample_rate_hz))
        pieces += [a, np.zeros(gap, np.float32)]
        pos += len(a) + gap
    pieces.append(np.zeros(lead, np.float32))
    out = np.concatenate(pieces)
    if noise is not None and noise_volume > 0:
        n = as_float(noise).reshape(-1)
        if len(n) == 0:
            raise ValueError("noise is empty")
        start = int(np.random.default_rng(seed).integers(len(n)))
        idx = (start + np.arange(len(out))) % len(n)
        out = out + noise_volume * n[idx]
    return np.clip(np.round(out * 32768.0), -32768, 32767).astype(np.int16), keywords


def score_detections(detections, truth, tolerance_ms: int = 1000,
                     duration_ms: float | None = None) -> dict:
    """Recall and false alarms of detections against known keywords.

    A detection matches a keyword with the same label when start_ms <= time_ms <= end_ms +
    tolerance_ms (the device fires after the word, when the averaged window is confident);
    each keyword and each detection is matched at most once, in time order. Unmatched
    detections are false alarms.

    Args:
        detections: Detection-like items with .label and .time_ms.
        truth: Keyword items (label, start_ms, end_ms).
        tolerance_ms: allowed delay after the clip end, ms.
        duration_ms: recording length, for false alarms per hour (None: NaN).
    Returns:
        dict with hits, misses, false_alarms (ints), recall (hits / len(truth), NaN if no
        truth) and false_alarms_per_hour.
    Example: truth yes@[1000, 2000), no@[3000, 4000); detections yes@1800, yes@2600,
    no@3900 over 3.6e6 ms -> hits 2, misses 0, false alarms 1 (yes@2600 is past
    2000 + 500), recall 1.0, 1.0 false alarms per hour.
    """
    dets, used = _match(detections, truth, tolerance_ms)
    hits = sum(used)
    false_alarms = used.count(False)
    n = len(truth)
    per_hour = (false_alarms / (duration_ms / 3_600_000.0)
                if duration_ms else float("nan"))
    return {"hits": hits, "misses": n - hits, "false_alarms": false_alarms,
            "recall": hits / n if n else float("nan"), "false_alarms_per_hour": per_hour}


def _match(detections, truth, tolerance_ms):
    """score_detections' matching: (detections sorted by time, matched flag per detection)."""
    dets = sorted(detections, key=lambda d: d.time_ms)
    used = [False] * len(dets)
    for kw in sorted(truth, key=lambda k: k.start_ms):
        for i, d in enumerate(dets):
            if (not used[i] and d.label == kw.label
                    and kw.start_ms <= d.time_ms <= kw.end_ms + tolerance_ms):
                used[i] = True
                break
    return dets, used


FALSE_ALARM_CAUSES = ("repeat", "other keyword", "distractor", "noise")
"""What was playing when a false alarm fired, in the order ``false_alarm_causes`` checks."""


def false_alarm_causes(detections, keywords, clips, tolerance_ms: int = 1000) -> list[tuple]:
    """Why each false alarm of ``score_detections`` fired: what the window was hearing.

    A false alarm (a detection left unmatched by ``score_detections(detections, keywords,
    tolerance_ms)``) at time t is put in the first cause that applies, looking at every clip
    placed in the recording whose span [start_ms, end_ms + tolerance_ms] holds t:

    - "repeat": a keyword clip with the detection's label (a second firing on one word);
    - "other keyword": a keyword clip with another label (the wrong keyword);
    - "distractor": a clip that is not a keyword (another word of the data set);
    - "noise": no clip at all (silence gaps and noise-only stretches).

    Args:
        detections: Detection-like items with .label and .time_ms (keyword labels only).
        keywords: the target Keyword items, as given to ``score_detections``.
        clips: every clip of the recording (keywords and distractors) as Keyword items; a
            distractor's label may be its word or ``_unknown_``.
        tolerance_ms: as in ``score_detections``.
    Returns:
        One (detection, cause, clip) tuple per false alarm in time order; cause is one of
        FALSE_ALARM_CAUSES, clip the Keyword that decided it (None for "noise"). When
        several clips cover t, the latest-starting one of the deciding kind is given.
    Example: keywords yes@[1000, 2000); clips that plus go@[4000, 5000); detections
    yes@1500, yes@2500, no@4600, yes@9000 -> (yes@2500, "repeat", yes clip),
    (no@4600, "distractor", go clip), (yes@9000, "noise", None).
    Source: TensorFlow ``speech_commands/test_streaming_accuracy.cc`` (it separates
    wrong-label and false detections the same way).
    """
    dets, used = _match(detections, keywords, tolerance_ms)
    keyword_set = set(keywords)
    out = []
    for d, matched in zip(dets, used):
        if matched:
            continue
        here = sorted((c for c in clips if c.start_ms <= d.time_ms <= c.end_ms + tolerance_ms),
                      key=lambda c: c.start_ms, reverse=True)
        same = [c for c in here if c in keyword_set and c.label == d.label]
        other = [c for c in here if c in keyword_set and c.label != d.label]
        distractor = [c for c in here if c not in keyword_set]
        if same:
            out.append((d, "repeat", same[0]))
        elif other:
            out.append((d, "other keyword", other[0]))
        elif distractor:
            out.append((d, "distractor", distractor[0]))
        else:
            out.append((d, "noise", None))
    return out


# ----------------------------------------------------------------------------- one clip, clip pickers, trials


def classify_audio(audio: np.ndarray, tflite_bytes: bytes, cfg, arena_bytes: int = 200_000) -> dict:
    """Classify one recording as the board would: 1 s window, features, int8 model in TFLM.

    Args:
        audio: float mono audio in [-1, 1] at cfg.frontend.sample_rate_hz, shape (S,), any
            length (the loudest clip-long window is kept, shorter audio is zero-padded).
        tflite_bytes: the int8 model (int8 input (1, T, F, 1), int8 output (1, C)).
        cfg: the Config the model was trained with (frontend, labels).
        arena_bytes: TFLM arena bytes.
    Returns:
        dict with "label" (str), "index" (int), "scores_int8" (int8 (C,)),
        "probabilities" (float (C,), the output dequantized with its scale / zero point)
        and "features" (int8 (T, F)).
    Raises:
        ValueError: if audio is not 1-D.
    """
    from kwslab import export, frontend
    from kwslab.colab import fit_clip

    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono 1-D, got shape {audio.shape}")
    clip = fit_clip(audio, cfg.frontend.clip_samples)
    feats = frontend.compute_features(clip, cfg.frontend)  # (T, F) int8
    scores = export.run_tflm(tflite_bytes, feats[None], arena_bytes=arena_bytes)[0].astype(np.int8)
    out = export.io_quantization(tflite_bytes)["output"]
    probs = (scores.astype(np.float64) - out["zero_point"]) * out["scale"] if out["scale"] else scores.astype(np.float64)
    index = int(np.argmax(scores))
    return {"label": cfg.data.labels[index], "index": index, "scores_int8": scores,
            "probabilities": probs, "features": feats}


def label_clips(data, data_dir: str | Path, label: str, n: int | None = None) -> list[np.ndarray]:
    """The first n test-split clips of one label (float audio, 1 s), in test-split order.

    Args:
        data: kwslab.frontend.FeatureData (its test_names and test_y).
        data_dir: the Speech Commands folder the names are relative to.
        label: a word or ``_unknown_`` (``_silence_`` clips have no file).
        n: how many (None: all).
    Raises:
        ValueError: if the label is not one of data.labels or is ``_silence_``.
    """
    from kwslab import dataset

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
                     "accuracy": correct / len(heard), "heard_as": dict(collections.Counter(heard).most_common())})
    return rows
