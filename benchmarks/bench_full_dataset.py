"""Full-size rehearsal: the 12-class job on a tree with speech_commands_v0.02's size and layout.

    python benchmarks/bench_full_dataset.py [--work /tmp/kwslab_full] [--scale 1.0] [--epochs 1]

Builds (once) a synthetic Speech Commands tree outside the repository: the archive's 35
word folders with their clip counts (105,829 clips), 2,618 speakers named like the
archive's (8 hex digits), ``<speaker>_nohash_<n>.wav`` files that are hard links to the
shared subset's clips of the same word (no audio is copied), ``_background_noise_``, and
``validation_list.txt`` / ``testing_list.txt`` from TensorFlow's ``which_set`` hash (as the
archive's lists were made). Then it runs the 12-class DS-CNN job in fresh processes and
records each stage's wall time and the process's peak RSS (``ru_maxrss``):

  1. features: index + int8 features of every split, written to the feature cache;
  2. features again in a new process: the cache must be found (a new Colab runtime with
     the cache on Drive);
  3. train (``--epochs``), float evaluation, int8 export checked in TFLite Micro.

``--scale 0.1`` builds a tree a tenth of the size first (to check memory behaviour
quickly). The budget: peak RSS <= 6 GB in every stage (a Colab runtime with a notebook open).
Times depend on the machine's load: say so when you quote them.

Source: clip counts per word and speaker count of speech_commands_v0.02 (Warden 2018,
arXiv:1804.03209, Table 1 and the archive's README).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

OFFICIAL_COUNTS = {
    "backward": 1664, "bed": 2014, "bird": 2064, "cat": 2031, "dog": 2128, "down": 3917,
    "eight": 3787, "five": 4052, "follow": 1579, "forward": 1557, "four": 3728, "go": 3880,
    "happy": 2054, "house": 2113, "learn": 1575, "left": 3801, "marvin": 2100, "nine": 3934,
    "no": 3941, "off": 3745, "on": 3845, "one": 3890, "right": 3778, "seven": 3998,
    "sheila": 2022, "six": 3860, "stop": 3872, "three": 3727, "tree": 1759, "two": 3880,
    "up": 3723, "visual": 1592, "wow": 2123, "yes": 4044, "zero": 4052,
}
"""Clips per word folder in speech_commands_v0.02 (105,829 in all)."""
NUM_SPEAKERS = 2618
BUDGET_RSS_BYTES = 6 * 1024**3


def build_tree(source: Path, dest: Path, scale: float = 1.0) -> dict:
    """Hard-link a tree of the official size from the subset's clips (idempotent).

    Returns:
        {"clips", "words", "speakers", "validation", "testing"} counts.
    Raises:
        FileNotFoundError: if a word of OFFICIAL_COUNTS has no clips in source.
    """
    from kwslab import dataset

    marker = dest / ".complete.json"
    if marker.exists():
        return json.loads(marker.read_text())
    dest.mkdir(parents=True, exist_ok=True)
    speakers = [hashlib.sha1(f"speaker{i}".encode()).hexdigest()[:8] for i in range(NUM_SPEAKERS)]
    lists = {"validation": [], "testing": []}
    used_speakers, total = set(), 0
    for w, (word, count) in enumerate(sorted(OFFICIAL_COUNTS.items())):
        clips = sorted((source / word).glob("*.wav"))
        if not clips:
            raise FileNotFoundError(f"no clips under {source / word} to link from")
        (dest / word).mkdir(exist_ok=True)
        n = max(1, round(count * scale))
        for k in range(n):
            speaker = speakers[(k * 3 + w * 13) % NUM_SPEAKERS]  # 3 is coprime to 2618
            take = k // NUM_SPEAKERS  # the speaker's take of this word
            name = f"{speaker}_nohash_{take}.wav"
            target = dest / word / name
            if not target.exists():
                os.link(clips[k % len(clips)], target)
            split = dataset.which_set(name, 10.0, 10.0)
            if split != "training":
                lists[split].append(f"{word}/{name}")
            used_speakers.add(speaker)
            total += 1
    noise = dest / "_background_noise_"
    noise.mkdir(exist_ok=True)
    for p in sorted((source / "_background_noise_").glob("*.wav")):
        if not (noise / p.name).exists():
            os.link(p, noise / p.name)
    (dest / "validation_list.txt").write_text("\n".join(lists["validation"]) + "\n")
    (dest / "testing_list.txt").write_text("\n".join(lists["testing"]) + "\n")
    info = {"clips": total, "words": len(OFFICIAL_COUNTS), "speakers": len(used_speakers),
            "validation": len(lists["validation"]), "testing": len(lists["testing"])}
    marker.write_text(json.dumps(info))
    return info


def _config(epochs: int):
    from kwslab.config import Config

    return Config.for_model("ds_cnn", train={"epochs": epochs})


def stage(name: str, tree: Path, cache: Path, out: Path, epochs: int) -> dict:
    """One stage in this process; returns its time, peak RSS and results."""
    t = time.perf_counter()
    cfg = _config(epochs)
    result: dict = {"stage": name}
    if name == "features":
        from kwslab import frontend

        data = frontend.prepare_features(cfg, tree, cache_dir=cache, progress=False)
        result.update(train_clips=int(data.train_x.shape[1]), copies=int(data.train_x.shape[0]),
                      bank_bytes=int(data.train_x.nbytes), val_clips=len(data.val_y),
                      test_clips=len(data.test_y), detail_s=data.timings_s,
                      cache_files=sorted(p.name for p in cache.glob("*.npz")))
    elif name == "run":
        from kwslab import pipeline

        r = pipeline.run(cfg, tree, out, cache_dir=cache, progress=False)
        result.update(timings_s=r["timings_s"], accuracy=r["accuracy"],
                      tflite_bytes=r["tflite_bytes"], arena_bytes=r["arena_bytes"])
    else:
        raise ValueError(f"unknown stage {name!r}")
    result["seconds"] = round(time.perf_counter() - t, 1)
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/kwslab_full"))
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the official size")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--data", default=None, help="the subset to link clips from")
    ap.add_argument("--stage", default=None, help=argparse.SUPPRESS)  # child process
    a = ap.parse_args()

    tree = a.work / f"tree_{a.scale:g}"
    cache, out = a.work / f"cache_{a.scale:g}", a.work / f"run_{a.scale:g}"
    if a.stage:
        print(json.dumps(stage(a.stage, tree, cache, out, a.epochs)))
        return
    from kwslab import dataset

    t = time.perf_counter()
    info = build_tree(dataset.find_data_dir(a.data), tree, a.scale)
    results = {"tree": str(tree), **info, "build_s": round(time.perf_counter() - t, 1), "stages": []}
    print(json.dumps(info), file=sys.stderr, flush=True)
    for name, label in (("features", "features (cold cache)"), ("features", "features (cache hit, new process)"),
                        ("run", f"train {a.epochs} epoch(s) + evaluate + export")):
        cmd = [sys.executable, __file__, "--work", str(a.work), "--scale", str(a.scale),
               "--epochs", str(a.epochs), "--stage", name]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"stage {label} failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["label"] = label
        r["peak_rss_gb"] = round(r["peak_rss_bytes"] / 1024**3, 2)
        r["within_budget"] = r["peak_rss_bytes"] <= BUDGET_RSS_BYTES
        results["stages"].append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    (a.work / f"results_{a.scale:g}.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
