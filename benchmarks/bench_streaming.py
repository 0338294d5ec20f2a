"""Streaming benchmark: recall and false alarms per hour on >= 30 minutes of stitched audio.

    python benchmarks/bench_streaming.py --run runs/default [--minutes 30] [--plot out.png]
        [--average-window-ms 500] [--every-slices 3]

Two recordings are stitched from real clips, one from the validation split's speakers and
one from the test split's (the data set's own lists: no speaker of either was trained on):
every clip of the split's folders, the model's words as targets and every other word of
the data as distractors, each in a random order, laid out in sections that differ in
background noise (one ``_background_noise_`` recording per section, at each level of
``--noise-levels``) with silence gaps between the clips (``--gap-ms``) and long noise-only
stretches between the sections (``--lead-ms``), repeated until the recording lasts
``--minutes``. Each recording runs through the host twin of the firmware once
(``kwslab.detect``: micro frontend over the whole stream, the int8 model in TFLite Micro
every 20 ms, or every ``--every-slices`` slices as the firmware does for larger models), then through RecognizeCommands at every detection threshold of
``--thresholds``. A detection is a hit when its label is the clip's and it comes between
the clip's start and 1 s after its end (``detect.score_detections``); any other detection
is a false alarm; each is put down to what the window was hearing
(``detect.false_alarm_causes``: a repeat on one keyword, the other keyword, a distractor
word, or noise alone), with the distractor words that fire most.

Printed (JSON): recall and false alarms per hour at the default RecognizeCommands
settings (threshold 200) on the test recording, per noise level too; the threshold tuned on
the validation recording only (highest recall at <= ``--max-fa-per-hour`` there) and what
it gives on test; the whole recall-vs-false-alarms curve of both recordings. The curve is
plotted to ``--plot``.

Source: TensorFlow ``speech_commands/test_streaming_accuracy.cc`` (hits, false alarms,
time tolerance) and ``generate_streaming_test_wav.py`` (stitched clips over noise).
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kwslab import dataset, detect, frontend  # noqa: E402
from kwslab.config import Config  # noqa: E402

DEFAULT_THRESHOLD = 200
"""micro_speech's RecognizeCommands detection threshold (the firmware default)."""


def split_clips(data_dir: Path, cfg: Config, split: str) -> list[tuple[Path, str]]:
    """(path, label) of every clip of a split: the model's words, and every other word as
    ``_unknown_`` (the split comes from the data set's lists, else TensorFlow's hash)."""
    everything = cfg.data.__class__(**{**cfg.data.__dict__, "unknown_percentage": 1e9,
                                       "silence_percentage": 0.0, "max_clips_per_label": None})
    logging.getLogger("kwslab.dataset").setLevel(logging.ERROR)  # "wanted more unknown clips"
    examples = dataset.index_splits(data_dir, everything)[split]
    labels = everything.labels
    return [(e.path, labels[e.label]) for e in examples if e.path is not None]


def build_recording(clips, noises, *, levels, minutes, gap_ms, lead_ms, sample_rate_hz, seed):
    """Sections of shuffled clips over one noise recording each, until `minutes` of audio.

    Returns:
        (int16 audio (S,), every clip as a Keyword with absolute times (distractors labelled
        with their word), per-clip noise level,
        sections as (level, start_ms, end_ms)).
    """
    rng = np.random.default_rng(seed)
    audio = {p: dataset.read_wav(p, num_samples=sample_rate_hz, sample_rate_hz=sample_rate_hz)
             for p, _ in clips}  # 1 s clips (shorter ones zero-padded)
    pieces, truth, truth_level, sections, offset_ms, k = [], [], [], [], 0, 0
    while offset_ms < minutes * 60_000 or k < len(levels):
        level = levels[k % len(levels)]
        order = rng.permutation(len(clips))
        section, kws = detect.stitch_recording(
            [(audio[clips[i][0]], clips[i][1]) for i in order], noises[k % len(noises)],
            gap_ms=gap_ms, sample_rate_hz=sample_rate_hz, noise_volume=level, lead_ms=lead_ms,
            seed=int(rng.integers(1 << 31)))
        length_ms = len(section) * 1000 // sample_rate_hz
        pieces.append(section[: length_ms * sample_rate_hz // 1000])
        # distractors keep their word as the label (for false_alarm_causes); targets theirs
        truth += [detect.Keyword(clips[i][0].parent.name if kw.label.startswith("_") else kw.label,
                                 kw.start_ms + offset_ms, kw.end_ms + offset_ms)
                  for i, kw in zip(order, kws)]
        truth_level += [level] * len(kws)
        sections.append((level, offset_ms, offset_ms + length_ms))
        offset_ms += length_ms
        k += 1
    return np.concatenate(pieces), truth, truth_level, sections


def decisions(times_ms, scores, num_classes, settings):
    """RecognizeCommands' top class and averaged score at every step (threshold-free part).

    Returns:
        (top_index int64 (K,), top_score int64 (K,)); top_score is 0 where too few results
        were averaged.
    """
    never_fires = dataclasses.replace(settings, detection_threshold=256)
    rc = detect.RecognizeCommands.from_config(num_classes, never_fires)
    out = [rc.process_latest_results(s, int(t)) for t, s in zip(times_ms, scores)]
    return (np.array([r.label_index for r in out], np.int64), np.array([r.score for r in out], np.int64))


def detections_at(threshold, times_ms, top_index, top_score, labels, suppression_ms=1500):
    """New commands at one threshold from precomputed decisions (RecognizeCommands' rule:
    a score above the threshold, unless the same non-silence class fired within
    suppression_ms)."""
    out, prev_index, prev_time, has_prev = [], 0, 0, False
    for t, c, s in zip(times_ms.tolist(), top_index.tolist(), top_score.tolist()):
        if s <= threshold:
            continue
        if has_prev and prev_index != 0 and c == prev_index and t - prev_time <= suppression_ms:
            continue
        prev_index, prev_time, has_prev = c, t, True
        if not labels[c].startswith("_"):
            out.append(detect.Detection(labels[c], t, s))
    return out


def cause_counts(dets, keywords, truth, duration_ms, top_words: int = 8) -> dict:
    """False alarms per cause (``detect.false_alarm_causes``) and per hour, plus the
    distractor words and keyword pairs that fired most (``"go->no": 5``)."""
    causes = detect.false_alarm_causes(dets, keywords, truth)
    hours = duration_ms / 3_600_000
    out = {c: {"count": sum(k == c for _, k, _ in causes),
               "per_hour": round(sum(k == c for _, k, _ in causes) / hours, 1)}
           for c in detect.FALSE_ALARM_CAUSES}
    pairs = collections.Counter(f"{clip.label}->{d.label}" for d, k, clip in causes
                                if k in ("distractor", "other keyword"))
    out["top_pairs"] = dict(pairs.most_common(top_words))
    return out


def evaluate(split, run, cfg, data_dir, args) -> dict:
    """Stitch, stream once through the model, score every threshold."""
    labels = list(cfg.data.labels)
    key = frontend.cache_key(minutes=args.minutes, max_clips=args.max_clips, levels=args.noise_levels, gap=args.gap_ms,
                             lead=args.lead_ms, seed=args.seed,
                             model=frontend.file_digest(Path(run) / "model.tflite"),
                             **({"every": args.every_slices} if args.every_slices > 1 else {}))
    cache = Path(run) / f"streaming_scores_{split}_{key}.npz"
    clips = split_clips(data_dir, cfg, split)
    if args.max_clips:  # smoke runs
        clips = [clips[i] for i in np.random.default_rng(args.seed).permutation(len(clips))[:args.max_clips]]
    noises = dataset.load_background_noise(data_dir)
    audio, truth, truth_level, sections = build_recording(
        clips, noises, levels=args.noise_levels, minutes=args.minutes, gap_ms=args.gap_ms,
        lead_ms=args.lead_ms, sample_rate_hz=cfg.frontend.sample_rate_hz, seed=args.seed)
    duration_ms = len(audio) * 1000 / cfg.frontend.sample_rate_hz
    t0 = time.perf_counter()
    if cache.exists():
        with np.load(cache) as z:
            times, scores = z["times"], z["scores"]
    else:
        feats = frontend.to_int8(frontend.compute_raw(audio, cfg.frontend))
        times, scores = detect.stream_scores(feats, (Path(run) / "model.tflite").read_bytes(), cfg.frontend,
                                             every_slices=args.every_slices)
        np.savez(cache, times=times, scores=scores)
    stream_s = time.perf_counter() - t0
    top_index, top_score = decisions(times, scores, len(labels), cfg.recognize)
    # the fast path must give the firmware twin's decisions exactly
    reference = detect.recognize(times, scores, labels, cfg.recognize)
    fast = detections_at(cfg.recognize.detection_threshold, times, top_index, top_score, labels,
                         cfg.recognize.suppression_ms)
    assert [(d.label, d.time_ms) for d in reference] == [(d.label, d.time_ms) for d in fast]
    keywords = [(kw, lv) for kw, lv in zip(truth, truth_level) if kw.label in cfg.data.words]
    curve = []
    for th in args.thresholds:
        dets = detections_at(th, times, top_index, top_score, labels, cfg.recognize.suppression_ms)
        s = detect.score_detections(dets, [kw for kw, _ in keywords], duration_ms=duration_ms)
        causes = collections.Counter(k for _, k, _ in detect.false_alarm_causes(
            dets, [kw for kw, _ in keywords], truth))
        curve.append({"threshold": th, "recall": s["recall"], "false_alarms": s["false_alarms"],
                      "false_alarms_per_hour": s["false_alarms_per_hour"],
                      "false_alarm_causes": {c: causes[c] for c in detect.FALSE_ALARM_CAUSES}})
    per_level = {}
    dets = detections_at(cfg.recognize.detection_threshold, times, top_index, top_score, labels,
                         cfg.recognize.suppression_ms)
    for level in args.noise_levels:
        spans = [(a, b) for lv, a, b in sections if lv == level]
        in_level = lambda t: any(a <= t < b for a, b in spans)  # noqa: E731
        kws = [kw for kw, lv in keywords if lv == level]
        ds = [d for d in dets if in_level(d.time_ms)]
        level_ms = sum(b - a for a, b in spans)
        per_level[str(level)] = detect.score_detections(ds, kws, duration_ms=level_ms)
    default = detect.score_detections(dets, [kw for kw, _ in keywords], duration_ms=duration_ms)
    default["false_alarm_causes"] = cause_counts(dets, [kw for kw, _ in keywords], truth, duration_ms)
    return {"split": split, "recording_minutes": round(duration_ms / 60_000, 1),
            "clips_in_split": len(clips), "keywords": len(keywords),
            "distractors": len(truth) - len(keywords), "stream_seconds": round(stream_s, 1),
            "default": default, "per_noise_level": per_level, "curve": curve}


def plot(results: dict, tuned: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for split, style in (("validation", "--"), ("testing", "-")):
        c = results[split]["curve"]
        ax.plot([p["false_alarms_per_hour"] for p in c], [p["recall"] for p in c], style,
                marker=".", label=f"{split} split")
    d = results["testing"]["default"]
    ax.plot([d["false_alarms_per_hour"]], [d["recall"]], "ko", label=f"test, threshold {DEFAULT_THRESHOLD}")
    if tuned:
        ax.plot([tuned["test_false_alarms_per_hour"]], [tuned["test_recall"]], "r*", ms=12,
                label=f"test, threshold {tuned['threshold']} (tuned on validation)")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("false alarms per hour")
    ax.set_ylabel("recall")
    ax.set_title("Streaming recall vs false alarms (detection threshold sweep)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/default", help="folder with model.tflite and config.json")
    ap.add_argument("--data", default=None)
    ap.add_argument("--minutes", type=float, default=30.0, help="least length of each recording")
    ap.add_argument("--noise-levels", type=lambda s: [float(v) for v in s.split(",")],
                    default=[0.02, 0.1, 0.3])
    ap.add_argument("--gap-ms", type=int, default=2000)
    ap.add_argument("--lead-ms", type=int, default=10_000)
    ap.add_argument("--thresholds", type=lambda s: [int(v) for v in s.split(",")],
                    default=list(range(100, 255, 10)) + [200, 245, 250])
    ap.add_argument("--max-fa-per-hour", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-clips", type=int, default=None, help="clips per split (smoke runs)")
    ap.add_argument("--every-slices", type=int, default=1,
                    help="run the model every n-th 20 ms slice, as firmware does for larger models")
    ap.add_argument("--average-window-ms", type=int, default=None,
                    help="RecognizeCommands' averaging window (default: the run's, 1000 ms)")
    ap.add_argument("--plot", type=Path, default=None, help="default: <run>/streaming_curve.png")
    args = ap.parse_args()
    args.thresholds = sorted(set(args.thresholds))

    cfg = Config.from_dict(json.loads((Path(args.run) / "config.json").read_text()))
    if args.average_window_ms is not None:
        cfg = dataclasses.replace(cfg, recognize=dataclasses.replace(
            cfg.recognize, average_window_ms=args.average_window_ms))
    data_dir = dataset.find_data_dir(args.data)
    results = {s: evaluate(s, args.run, cfg, data_dir, args) for s in ("validation", "testing")}
    ok = [p for p in results["validation"]["curve"] if p["false_alarms_per_hour"] <= args.max_fa_per_hour]
    tuned = {}
    if ok:
        best = max(ok, key=lambda p: (p["recall"], -p["false_alarms_per_hour"], -p["threshold"]))
        test_point = next(p for p in results["testing"]["curve"] if p["threshold"] == best["threshold"])
        tuned = {"threshold": best["threshold"], "validation_recall": best["recall"],
                 "validation_false_alarms_per_hour": best["false_alarms_per_hour"],
                 "test_recall": test_point["recall"],
                 "test_false_alarms_per_hour": test_point["false_alarms_per_hour"]}
    suffix = "" if args.average_window_ms is None else f"_avg{args.average_window_ms}"
    path = args.plot or Path(args.run) / f"streaming_curve{suffix}.png"
    plot(results, tuned, path)
    summary = {"model": cfg.model.name, "labels": list(cfg.data.labels), "every_slices": args.every_slices,
               "recognize": dataclasses.asdict(cfg.recognize),
               "test_default": results["testing"]["default"],
               "test_per_noise_level": results["testing"]["per_noise_level"],
               "tuned_on_validation": tuned, "plot": str(path), "results": results}
    (Path(args.run) / f"streaming_benchmark{suffix}.json").write_text(json.dumps(summary, indent=1, default=float))
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}, indent=1, default=float))


if __name__ == "__main__":
    main()
