"""Learning curve over training speakers: how accuracy grows with the number of people heard.

    python benchmarks/bench_learning_curve.py --model ds_cnn --words 12 --fractions 0.25,0.5,1 --seeds 0

For each fraction f and seed, a random f of the training split's speakers is kept (all of
their clips, and the same fraction of the ``_silence_`` clips, which have no speaker); the
validation and test splits stay whole. The model of ``kwslab run --model M --words W`` is
trained on that part of the augmentation bank (same recipe, same epochs) and its float
validation and test accuracy are recorded. The features come from the usual cache, so only
training is repeated.

Printed (and appended as one JSON line to ``--out``): per fraction the number of training
speakers and clips, the accuracies per seed, their mean, and a least-squares line of test
accuracy against log2(speakers) with the number of speakers it would need for
``--target`` accuracy if the trend went on (a rough extrapolation: curves flatten, so it is
a lower bound on the data needed). A plot of the curve goes to ``--plot``.

Source: the learning-curve method of Hestness et al. 2017, "Deep Learning Scaling is
Predictable, Empirically" (arXiv:1712.00409): accuracy against training-set size, here
counted in speakers because the splits are speaker-disjoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kwslab import dataset, frontend, models, train  # noqa: E402
from kwslab.config import TWELVE_CLASS_WORDS, Config, parse_overrides  # noqa: E402


def speaker_subset(examples, fraction: float, seed: int) -> np.ndarray:
    """Indices of the training examples kept: every clip of a random `fraction` of the
    speakers, plus the same fraction of the speaker-less (silence) clips.

    Raises:
        ValueError: fraction outside (0, 1].
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction}: expected 0 < fraction <= 1")
    rng = np.random.default_rng(seed)
    speakers = sorted({e.speaker for e in examples if e.speaker is not None})
    kept = set(rng.permutation(speakers)[:max(1, round(fraction * len(speakers)))].tolist())
    no_speaker = [i for i, e in enumerate(examples) if e.speaker is None]
    silence = rng.permutation(no_speaker)[:round(fraction * len(no_speaker))]
    idx = [i for i, e in enumerate(examples) if e.speaker in kept] + silence.tolist()
    return np.array(sorted(idx), np.int64)


def run_point(cfg: Config, data, examples, fraction: float, seed: int) -> dict:
    import torch

    idx = speaker_subset(examples, fraction, seed)
    part = dataclasses.replace(data, train_x=data.train_x[:, idx], train_y=data.train_y[idx])
    scfg = dataclasses.replace(cfg.train, seed=seed)
    torch.manual_seed(seed)
    model = models.model_from_config(cfg)
    t = time.perf_counter()
    train.train(model, part, scfg, device="cpu", progress=False)
    acc = train.accuracies(model, part)
    return {"fraction": fraction, "seed": seed,
            "speakers": len({examples[i].speaker for i in idx if examples[i].speaker}),
            "clips": len(idx), "float_val": acc["val_accuracy"], "float_test": acc["test_accuracy"],
            "train_s": round(time.perf_counter() - t, 1)}


def trend(points: list[dict], target: float) -> dict:
    """Least squares test accuracy = a + b * log2(speakers); speakers for `target`."""
    x = np.log2([p["speakers"] for p in points])
    y = np.array([p["float_test"] for p in points])
    if len(set(x.tolist())) < 2:
        return {}
    b, a = np.polyfit(x, y, 1)
    need = round(float(2 ** ((target - a) / b))) if b > 0 and (target - a) / b < 60 else None
    return {"intercept": round(float(a), 4), "per_doubling": round(float(b), 4),
            "speakers_for_target": need, "target": target}


def plot(points: list[dict], fit: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key, style in (("float_val", "s--"), ("float_test", "o-")):
        xs = sorted({p["speakers"] for p in points})
        ys = [np.mean([p[key] for p in points if p["speakers"] == s]) for s in xs]
        ax.plot(xs, ys, style, label=key.replace("float_", "float "))
    if fit:
        top = fit["speakers_for_target"] or 2 * max(p["speakers"] for p in points)
        xs = np.array([min(p["speakers"] for p in points), max(top, 2)])
        ax.plot(xs, fit["intercept"] + fit["per_doubling"] * np.log2(xs), ":", color="gray",
                label=f"trend: +{fit['per_doubling']:.3f} per doubling")
        ax.axhline(fit["target"], color="red", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training speakers")
    ax.set_ylabel("accuracy")
    ax.set_title("Learning curve over training speakers")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ds_cnn")
    ap.add_argument("--words", default="12", help="comma-separated, or 12")
    ap.add_argument("--fractions", default="0.25,0.5,1")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    ap.add_argument("--target", type=float, default=0.90)
    ap.add_argument("--augmented-copies", type=int, default=8)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default="runs/bench_learning_curve/results.jsonl")
    ap.add_argument("--plot", type=Path, default=None, help="default: beside --out")
    a = ap.parse_args(argv)
    words = TWELVE_CLASS_WORDS if a.words == "12" else tuple(a.words.split(","))
    cfg = Config.for_model(a.model, words)
    if a.epochs:
        cfg = cfg.replace(train={"epochs": a.epochs})
    cfg = cfg.replace(**parse_overrides(a.set))
    data_dir = dataset.find_data_dir(a.data)
    logging.getLogger("kwslab.dataset").setLevel(logging.ERROR)
    data = frontend.prepare_features(cfg, data_dir, num_augmented=a.augmented_copies, progress=False)
    examples = dataset.index_splits(data_dir, cfg.data, seed=cfg.train.seed)["training"]
    if len(examples) != len(data.train_y):
        raise SystemExit(f"{len(examples)} indexed training clips, {len(data.train_y)} in the bank")
    points = []
    for f in [float(v) for v in a.fractions.split(",")]:
        for s in [int(v) for v in a.seeds.split(",")]:
            points.append(run_point(cfg, data, examples, f, s))
            print(json.dumps(points[-1]), flush=True)
    fit = trend(points, a.target)
    result = {"model": a.model, "words": list(words), "epochs": cfg.train.epochs,
              "changes": parse_overrides(a.set), "points": points, "trend": fit}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as fh:
        fh.write(json.dumps(result) + "\n")
    path = a.plot or out.with_suffix(".png")
    plot(points, fit, path)
    print(json.dumps({"trend": fit, "plot": str(path)}))
    return result


if __name__ == "__main__":
    main()
