"""Small and accurate together: channel pruning + finetuning + LUT compression of trained models.

    python benchmarks/bench_compress.py runs/bench_accuracy/ds_cnn_12class_baseline_s* \
        --channel-sparsities 0.25,0.375,0.5 --lut-values 16 --finetune-epochs 20

One process per seed in parallel, then one table:

    python benchmarks/bench_compress.py RUN_s0 --out s0.jsonl &   # ... s1, s2
    python benchmarks/bench_compress.py --combine s0.jsonl s1.jsonl s2.jsonl

Each positional argument is a run folder of ``kwslab run`` / ``bench_accuracy.py`` (its
``checkpoint.pt`` and ``report.json``), one per seed. For every run and every channel
sparsity the notebook 6 path is applied to the trained model:

1. ``prune.prune_channels`` (model surgery: every prunable conv loses that fraction of its
   output channels, smallest L2 norm first) through ``sweeps.prune_structured``;
2. finetuning for ``--finetune-epochs``: Adam at a constant ``--lr`` (``prune.finetune``
   over the run's augmentation bank), or with ``--finetune-recipe train`` the run's own
   training loop (``train.train``: cosine decay from ``--lr``, its regularizers), optionally
   distilling from the unpruned model (``--distill-alpha``, ``--distill-temperature``);
3. int8 export checked in the TFLite Micro interpreter (``sweeps.deploy``), then weight
   sharing to ``--lut-values`` values per output channel and TFLite Micro LUT compression
   (``export.lut_compress``), run again in TFLite Micro;
4. with ``--int4-qat-epochs N``: quantization-aware finetuning with 4-bit weights and 8-bit
   activations (``sweeps.qat_finetune(..., weight_bits=4)``) and export with packed int4
   weights (``sweeps.deploy_int4``), checked in TFLite Micro.

Printed (and appended as JSON lines to ``--out``): per configuration the mean over runs of
the int8 test accuracy (TFLite Micro), flash (the bytes of the compact device model,
``export.compact_tflite``; the LiteRT-loadable ``model.tflite`` beside it) and arena, with the sample
sd and the Wilson 95 % interval of the mean; then the smallest flash whose mean int8 test
accuracy is within ``--within`` (default 0.01) of the dense models' mean.

Source: Han et al. 2016 (arXiv:1510.00149) for pruning + weight sharing; Li et al. 2017
(arXiv:1608.08710) for filter (channel) pruning by norm.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tqdm import tqdm  # noqa: E402

from kwslab import frontend, sweeps, train  # noqa: E402
from kwslab import quantize as Q  # noqa: E402
from kwslab.stats import seed_summary  # noqa: E402


def compress_run(run_dir: Path, sparsities: list[float], lut_values: int | None, epochs: int,
                 lr: float, data_dir, num_augmented: int, work: Path, bar, recipe: str = "adam",
                 distill_alpha: float = 0.0, distill_temperature: float = 4.0,
                 int4_qat_epochs: int = 0, int4_lr: float = 2e-4) -> list[dict]:
    """Rows (dense first) for one trained run; see the module docstring."""
    model, cfg, _ = train.load_checkpoint(run_dir / "checkpoint.pt")
    finetune_cfg = None
    if recipe == "train":
        finetune_cfg = dataclasses.replace(
            cfg.train, epochs=epochs, learning_rate=lr, keep="last",
            distill_teacher=str(run_dir / "checkpoint.pt") if distill_alpha > 0 else None,
            distill_alpha=distill_alpha, distill_temperature=distill_temperature)
    data = frontend.prepare_features(cfg, data_dir, num_augmented=num_augmented, progress=False)
    rows = []
    for s in [0.0] + sparsities:
        t = time.perf_counter()
        if s == 0.0:
            small, row = model, {"channel_sparsity": 0.0, "params": sum(p.numel() for p in model.parameters())}
        else:
            small, row = sweeps.prune_structured(model, data, s, finetune_epochs=epochs, lr=lr,
                                                 seed=cfg.train.seed, latency_s=0.05,
                                                 finetune_cfg=finetune_cfg)
            row.pop("cpu_latency_ms", None)
        out = work / f"{run_dir.name}_cs{s}"
        dep = sweeps.deploy(small, cfg, data, out, lut_values=lut_values)
        dep.pop("lut_tensors", None)
        dep.pop("lut_ops", None)
        if int4_qat_epochs:
            qcfg = dataclasses.replace(sweeps.QAT_TRAIN, epochs=int4_qat_epochs, learning_rate=int4_lr,
                                       seed=cfg.train.seed)
            qmodel, _ = sweeps.qat_finetune(small, data, 8, qcfg, weight_bits=4)
            dep4 = sweeps.deploy_int4(Q.qat_to_float(qmodel), cfg, data, Path(str(out) + "_int4"))
            dep.update({k: v for k, v in dep4.items() if k.startswith("int4_")},
                       int4_qat_int8_test=dep4["int8_test"])
        row.update(dep, run=run_dir.name, seed=cfg.train.seed, num_test=len(data.test_y),
                   seconds=round(time.perf_counter() - t, 1))
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        bar.update(1)
    return rows


def combined_rows(paths: list[Path], sparsities: list[float], lut: int | None) -> tuple[list[dict], list[str]]:
    """Rows of earlier outputs (their last line each), checked to cover the same sweep.

    Raises:
        SystemExit: naming the file that is missing, empty, or measured another sweep.
    """
    rows, runs = [], []
    for p in paths:
        lines = p.read_text().splitlines() if p.exists() else []
        if not lines:
            raise SystemExit(f"{p}: no results to combine")
        res = json.loads(lines[-1])
        got = sorted({r["channel_sparsity"] for r in res["rows"]})
        if got != sorted({0.0, *sparsities}) or res["lut_values"] != lut:
            raise SystemExit(f"{p}: measured channel sparsities {got} with LUT {res['lut_values']}, "
                             f"not {sorted({0.0, *sparsities})} with LUT {lut}")
        if any("device_tflite_bytes" not in r for r in res["rows"]):
            raise SystemExit(f"{p}: rows without device_tflite_bytes (measured before the compact "
                             "device model existed); run the sweep again")
        rows += res["rows"]
        runs += res["runs"]
    return rows, runs


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", type=Path, help="run folders (one per seed)")
    ap.add_argument("--combine", nargs="+", type=Path, default=None,
                    help="JSON-lines outputs of earlier invocations (e.g. one per seed, run in "
                         "parallel): summarize their rows instead of compressing")
    ap.add_argument("--channel-sparsities", default="0.25,0.375,0.5")
    ap.add_argument("--lut-values", type=int, default=16, help="values per output channel (0: no LUT)")
    ap.add_argument("--finetune-epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--finetune-recipe", choices=("adam", "train"), default="adam",
                    help="adam: prune.finetune, constant lr; train: train.train with the run's "
                         "training config (cosine decay from --lr, augmentation bank)")
    ap.add_argument("--distill-alpha", type=float, default=0.0,
                    help="with --finetune-recipe train: distill from the unpruned run (weight of "
                         "the teacher term, Hinton et al. 2015)")
    ap.add_argument("--distill-temperature", type=float, default=4.0)
    ap.add_argument("--int4-qat-epochs", type=int, default=0,
                    help="also finetune each model with 4-bit weights (QAT, 8-bit activations) "
                         "for this many epochs and export it with packed int4 weights (0: off)")
    ap.add_argument("--int4-lr", type=float, default=2e-4)
    ap.add_argument("--within", type=float, default=0.01, help="allowed drop of the mean accuracy")
    ap.add_argument("--augmented-copies", type=int, default=8)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default="runs/bench_compress/results.jsonl")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep every exported model folder here (C arrays, model_device.tflite, "
                         "model_int4_device.tflite); default: a temporary folder")
    a = ap.parse_args(argv)
    sparsities = [float(s) for s in a.channel_sparsities.split(",") if s]
    lut = a.lut_values or None
    rows: list[dict] = []
    if a.combine:
        rows, runs = combined_rows(a.combine, sparsities, lut)
    else:
        if not a.runs:
            raise SystemExit("give run folders, or --combine with earlier outputs")
        for r in a.runs:
            if not (r / "checkpoint.pt").exists():
                raise SystemExit(f"{r}: no checkpoint.pt (train it with bench_accuracy.py or kwslab run)")
        runs = [str(r) for r in a.runs]
        if a.keep:
            a.keep.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp, \
                tqdm(total=len(a.runs) * (1 + len(sparsities)), desc="compress", file=sys.stderr) as bar:
            for r in a.runs:
                rows += compress_run(r, sparsities, lut, a.finetune_epochs, a.lr, a.data,
                                     a.augmented_copies, a.keep or Path(tmp), bar, a.finetune_recipe,
                                     a.distill_alpha, a.distill_temperature,
                                     a.int4_qat_epochs, a.int4_lr)
    table = []
    for s in [0.0] + sparsities:
        sel = [r for r in rows if r["channel_sparsity"] == s]
        n = sel[0]["num_test"]
        entry = {"channel_sparsity": s, "params": sel[0]["params"],
                 "int8_test": seed_summary([r["int8_test"] for r in sel], n),
                 "tflite_bytes": sel[0]["tflite_bytes"], "device_tflite_bytes": sel[0]["device_tflite_bytes"],
                 "arena_bytes": sel[0]["arena_bytes"]}
        if lut:
            entry.update(lut_int8_test=seed_summary([r["lut_int8_test"] for r in sel], n),
                         lut_tflite_bytes=sel[0]["lut_tflite_bytes"],
                         lut_arena_bytes=sel[0]["lut_arena_bytes"])
        if all("int4_test" in r for r in sel):
            entry.update(int4_test=seed_summary([r["int4_test"] for r in sel], n),
                         int4_device_bytes=sel[0]["int4_device_bytes"],
                         int4_arena_bytes=sel[0]["int4_arena_bytes"])
        table.append(entry)
    dense = table[0]["int8_test"]["mean"]
    candidates = [(e["device_tflite_bytes"], f"cs={e['channel_sparsity']} int8", e["int8_test"]["mean"])
                  for e in table] + \
                 [(e["lut_tflite_bytes"], f"cs={e['channel_sparsity']} LUT{lut}", e["lut_int8_test"]["mean"])
                  for e in table if lut] + \
                 [(e["int4_device_bytes"], f"cs={e['channel_sparsity']} int4 QAT", e["int4_test"]["mean"])
                  for e in table if "int4_test" in e]
    ok = sorted(c for c in candidates if c[2] >= dense - a.within)
    result = {"runs": runs, "finetune_epochs": a.finetune_epochs, "lr": a.lr,
              "finetune_recipe": a.finetune_recipe, "distill_alpha": a.distill_alpha,
              "lut_values": lut, "int4_qat_epochs": a.int4_qat_epochs, "table": table, "dense_mean": dense,
              "smallest_within": {"tflite_bytes": ok[0][0], "config": ok[0][1], "int8_test_mean": ok[0][2]}
              if ok else None, "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(result) + "\n")
    print("| channel sparsity | params | int8 test (mean ± sd) | flash B (device) | model.tflite B | arena B |"
          + (f" LUT{lut} test | LUT flash B |" if lut else ""))
    print("|---|---|---|---|---|---|" + ("---|---|" if lut else ""))
    for e in table:
        i = e["int8_test"]
        line = (f"| {e['channel_sparsity']} | {e['params']:,} | {i['mean']:.3f} ± {i['sd']:.3f} "
                f"| {e['device_tflite_bytes']:,} | {e['tflite_bytes']:,} | {e['arena_bytes']:,} |")
        if lut:
            j = e["lut_int8_test"]
            line += f" {j['mean']:.3f} ± {j['sd']:.3f} | {e['lut_tflite_bytes']:,} |"
        if "int4_test" in e:
            j = e["int4_test"]
            line += (f" int4 QAT: {j['mean']:.3f} ± {j['sd']:.3f}, {e['int4_device_bytes']:,} B, "
                     f"arena {e['int4_arena_bytes']:,} B |")
        print(line)
    print(f"smallest within {a.within:.2f} of dense ({dense:.3f}): {result['smallest_within']}")
    return result


if __name__ == "__main__":
    main()
