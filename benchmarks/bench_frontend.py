"""Frontend throughput: clips/s of the batched micro frontend vs a per-clip loop.

    python benchmarks/bench_frontend.py [--data DIR] [--clips 2000] [--loop-clips 300]

Measures, on real Speech Commands clips:
  1. end to end: WAV read + augmentation (time shift, background noise) + features;
  2. features alone (batched tf.vectorized_map over the audio_microfrontend op), steady
     state; the first call also traces the TensorFlow graph (a few seconds, reported apart);
  3. the same op called once per clip (eager loop), on a prefix of the clips;
and checks that the batched and per-clip outputs are identical.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from kwslab import dataset, frontend  # noqa: E402
from kwslab.config import TWELVE_CLASS_WORDS, DataConfig, FrontendConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--loop-clips", type=int, default=300)
    a = ap.parse_args()

    data_dir = dataset.find_data_dir(a.data)
    dcfg, fcfg = DataConfig(words=TWELVE_CLASS_WORDS), FrontendConfig()
    examples = dataset.index_splits(data_dir, dcfg)["training"][: a.clips]
    background = dataset.load_background_noise(data_dir)
    n = len(examples)

    t0 = time.perf_counter()
    audio = dataset.load_audio(examples, background, dcfg, augment=True, rng=np.random.default_rng(0))
    t1 = time.perf_counter()
    pcm = frontend.audio_to_int16(audio)
    raw = frontend.compute_raw(pcm, fcfg)  # first call: includes tracing the TensorFlow graph
    t2 = time.perf_counter()
    raw = frontend.compute_raw(pcm, fcfg)  # steady state
    t3 = time.perf_counter()
    m = min(a.loop_clips, n)
    loop = frontend.compute_raw_loop(pcm[:m], fcfg)
    t4 = time.perf_counter()

    identical = bool(np.array_equal(loop, raw[:m]))
    result = {
        "clips": n,
        "end_to_end_clips_per_s": round(n / ((t1 - t0) + (t3 - t2)), 1),
        "read_and_augment_clips_per_s": round(n / (t1 - t0), 1),
        "features_clips_per_s": round(n / (t3 - t2), 1),
        "features_first_call_s": round(t2 - t1, 2),
        "per_clip_loop_clips_per_s": round(m / (t4 - t3), 1),
        "speedup_vs_loop": round((n / (t3 - t2)) / (m / (t4 - t3)), 2),
        "outputs_identical": identical,
    }
    print(json.dumps(result, indent=1))
    if not identical:
        raise SystemExit("batched and per-clip features differ")


if __name__ == "__main__":
    main()
