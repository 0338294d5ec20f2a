"""Accuracy over several seeds: mean ± sd and Wilson 95 % intervals, one config at a time.

    python benchmarks/bench_accuracy.py --model ds_cnn --words 12 --seeds 0,1,2
    python benchmarks/bench_accuracy.py --model tiny_conv --seeds 0,1,2 \
        --set train.spec_time_masks=2 --set train.spec_max_frames=5 --float-only
    python benchmarks/bench_accuracy.py --model ds_cnn --words 12 --preset recipe

Each seed is a full ``kwslab.pipeline.run`` (features, training, float evaluation, int8
export checked in TFLite Micro) unless ``--float-only`` (features, training, float
evaluation: for screening recipe options). ``--set section.field=value`` changes one config
field (value parsed as JSON, else kept as a string), so each recipe option is measured on
its own against the same baseline. ``--preset recipe`` applies the recipe measured best
(``RECIPES`` below) before any ``--set``.

Printed (and appended as one JSON line to ``--out``): per seed the accuracies, and over
seeds the mean, the sample standard deviation and the Wilson 95 % interval of the mean
accuracy with n = the number of test clips (the interval from test-set sampling alone;
the seeds' spread is the sd). Test splits of the shared subset are small (57 clips for
yes/no, 295 for 12 classes): one clip is 1.75 or 0.34 points.

Source: Wilson 1927, "Probable inference, the law of succession, and statistical
inference", JASA 22(158); Brown, Cai & DasGupta 2001 (Statistical Science 16(2)) recommend
it over the normal interval for small n.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kwslab.config import TWELVE_CLASS_WORDS, Config, parse_overrides  # noqa: E402
from kwslab.stats import seed_summary  # noqa: E402

RECIPES: dict[str, dict[str, dict]] = {
    "recipe": {"train": {"spec_time_masks": 2, "spec_max_frames": 5, "spec_freq_masks": 2,
                         "spec_max_channels": 5, "ema_decay": 0.995}},
}
"""Named option sets applied by --preset."""


def parse_set(items: list[str]) -> dict[str, dict]:
    try:
        return parse_overrides(items)
    except ValueError as e:
        raise SystemExit(str(e)) from None


def base_config(model: str, words: tuple[str, ...], epochs: int | None) -> Config:
    """The config ``kwslab run --model M --words W`` uses (the model's preset)."""
    cfg = Config.for_model(model, words)
    return cfg.replace(train={"epochs": epochs}) if epochs else cfg


def run_seed(cfg: Config, data_dir, out_dir: Path, float_only: bool, num_augmented: int) -> dict:
    if not float_only:
        from kwslab import pipeline

        r = pipeline.run(cfg, data_dir, out_dir, num_augmented=num_augmented, progress=False)
        cm = r["confusion_int8_test"]
        return {"seed": cfg.train.seed, "float_val": r["accuracy"]["float_val"],
                "float_test": r["accuracy"]["float_test"], "int8_test": r["accuracy"]["int8_test"],
                "int8_test_without_silence": r["accuracy"]["int8_test_without_silence"],
                "num_test": int(sum(map(sum, cm))),
                "num_val": sum(v for k, v in r["data"]["validation"].items() if k != "speakers"),
                "tflite_bytes": r["tflite_bytes"], "device_tflite_bytes": r["device_tflite_bytes"],
                "arena_bytes": r["arena_bytes"], "train_s": r["timings_s"]["train"]}
    import torch

    from kwslab import frontend, models, train

    data = frontend.prepare_features(cfg, data_dir, num_augmented=num_augmented, progress=False)
    torch.manual_seed(cfg.train.seed)
    model = models.model_from_config(cfg)
    t = time.perf_counter()
    train.train(model, data, cfg.train, device="cpu", progress=False)
    train_s = time.perf_counter() - t
    ev = train.evaluate(model, data)
    return {"seed": cfg.train.seed, "float_val": ev["validation"]["accuracy"],
            "float_test": ev["testing"]["accuracy"], "num_test": ev["testing"]["num_clips"],
            "num_val": ev["validation"]["num_clips"], "train_s": round(train_s, 1)}


def summarize(rows: list[dict], key: str) -> dict:
    n = rows[0]["num_test"] if key != "float_val" else rows[0].get("num_val", 0)
    return seed_summary([r[key] for r in rows], n)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny_conv")
    ap.add_argument("--words", default="yes,no", help="comma-separated, or 12")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    ap.add_argument("--preset", choices=sorted(RECIPES), default=None)
    ap.add_argument("--float-only", action="store_true", help="skip the int8 export (screening)")
    ap.add_argument("--augmented-copies", type=int, default=8)
    ap.add_argument("--data", default=None)
    ap.add_argument("--runs", default="runs/bench_accuracy")
    ap.add_argument("--label", default=None, help="name of this configuration in the output")
    ap.add_argument("--out", default="runs/bench_accuracy/results.jsonl")
    a = ap.parse_args(argv)

    words = TWELVE_CLASS_WORDS if a.words in ("12", "twelve") else tuple(a.words.split(","))
    cfg = base_config(a.model, words, a.epochs)
    changes = dict(RECIPES[a.preset]) if a.preset else {}
    for section, fields in parse_set(a.set).items():
        changes[section] = {**changes.get(section, {}), **fields}
    cfg = cfg.replace(**changes)
    label = a.label or ",".join(a.set) or a.preset or "baseline"
    rows = []
    for seed in (int(s) for s in a.seeds.split(",")):
        seed_cfg = cfg.replace(train={"seed": seed})
        out_dir = Path(a.runs) / f"{a.model}_{len(words) + 2}class_{label.replace('/', '_')}_s{seed}"
        rows.append(run_seed(seed_cfg, a.data, out_dir, a.float_only, a.augmented_copies))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    keys = ["float_val", "float_test"] + ([] if a.float_only else ["int8_test", "int8_test_without_silence"])
    result = {"label": label, "model": a.model, "classes": len(words) + 2, "epochs": cfg.train.epochs,
              "changes": changes, "seeds": [r["seed"] for r in rows],
              **{k: summarize(rows, k) for k in keys}, "runs": rows}
    if not a.float_only:
        result["tflite_bytes"] = rows[0]["tflite_bytes"]
        result["device_tflite_bytes"] = rows[0]["device_tflite_bytes"]
        result["arena_bytes"] = rows[0]["arena_bytes"]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    return result


if __name__ == "__main__":
    main()
