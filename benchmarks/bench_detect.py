"""Streaming detection on a stitched recording: recall and false alarms per hour.

    python benchmarks/bench_detect.py [--run runs/default] [--data DIR] [--keywords 40]

Stitches test-split keyword clips and unknown words (never seen in training) over
background noise with ``kwslab.detect.stitch_recording``, runs the host twin of the device
loop (``detect.detect_stream``: frontend, int8 model in TFLite Micro, RecognizeCommands) and
scores it with ``detect.score_detections`` (a detection counts from the word's start to
1 s after its end, RecognizeCommands' averaging window). The run folder needs model.tflite
and config.json (written by ``kwslab run``).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kwslab import dataset, detect, frontend  # noqa: E402
from kwslab.config import Config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/default")
    ap.add_argument("--data", default=None)
    ap.add_argument("--keywords", type=int, default=40)
    ap.add_argument("--unknown", type=int, default=10)
    ap.add_argument("--noise-volume", type=float, default=0.1)
    ap.add_argument("--gap-ms", type=int, default=1500)
    a = ap.parse_args()

    run = Path(a.run)
    cfg = Config.from_dict(json.loads((run / "config.json").read_text()))
    tflite = (run / "model.tflite").read_bytes()
    data_dir = dataset.find_data_dir(a.data)
    data = frontend.prepare_features(cfg, data_dir, progress=False)
    clips = detect.stream_clips(data, data_dir, a.keywords, a.unknown, seed=cfg.train.seed)
    noise = dataset.load_background_noise(data_dir)[0]
    audio, truth = detect.stitch_recording(clips, noise, gap_ms=a.gap_ms, noise_volume=a.noise_volume)
    t = time.perf_counter()
    detections = detect.detect_stream(audio, tflite, cfg)
    seconds = time.perf_counter() - t
    duration_ms = 1000 * len(audio) / cfg.frontend.sample_rate_hz
    keywords = [k for k in truth if not k.label.startswith("_")]
    score = detect.score_detections(detections, keywords, duration_ms=duration_ms)
    print(json.dumps({"recording_s": round(duration_ms / 1000, 1), "keywords": len(keywords),
                      "unknown_words": len(truth) - len(keywords), **score,
                      "host_seconds": round(seconds, 2)}, indent=1, default=float))


if __name__ == "__main__":
    main()
