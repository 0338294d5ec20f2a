"""The main job: Speech Commands clips -> features -> trained model -> verified int8 model.

``run`` chains the stages (dataset, frontend, train, evaluate, export) and writes
``runs/<name>/``: checkpoint.pt, history.json, plots, model.tflite, the C sources, and
report.md + report.json. The CLI (``kwslab run``), notebook 3 and the tests call it alike.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from .config import Config, deploy_dirs

log = logging.getLogger(__name__)


def run(cfg: Config = Config.for_model(), data_dir=None, out_dir: str | Path = "runs/default", *,
        cache_dir: str | Path | None = ".cache/features", deploy: bool = False,
        num_augmented: int = 8, progress: bool = True) -> dict:
    """Train and export one model; return (and write) the report.

    Steps: ``frontend.prepare_features`` -> ``train_model`` -> ``train.evaluate`` ->
    ``export.export`` -> ``write_report``.

    Args:
        cfg: the pipeline config (``Config.for_model(name, words)`` for a model's recipe).
        data_dir: Speech Commands folder (see dataset.find_data_dir for the search order).
        out_dir: run folder, created if needed.
        cache_dir: feature cache (None: none).
        deploy: also write the C model and settings into arduino/ and psoc6/.
        num_augmented: augmented copies per training clip.
        progress: tqdm bars.
    Returns:
        The report dict (also report.json); see README for its keys.
    Raises:
        FileNotFoundError, dataset.DataError: a missing data folder or a bad clip (named).
        export.ExportError: the converted model breaks a deploy contract.
        FileNotFoundError: deploy outside a repository checkout.
    """
    from . import export, frontend, train

    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    data = frontend.prepare_features(cfg, data_dir, cache_dir=cache_dir,
                                     num_augmented=num_augmented, progress=progress)
    timings["features"] = time.perf_counter() - t

    t = time.perf_counter()
    model, hist = train_model(cfg, data, out_dir, progress=progress)
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    evaluation = train.evaluate(model, data)
    timings["evaluate"] = time.perf_counter() - t

    t = time.perf_counter()
    exp = export.export(model, cfg, data, out_dir, deploy_dirs=deploy_dirs() if deploy else None,
                        model_name=cfg.model.name, progress=progress)
    timings["export"] = time.perf_counter() - t
    return write_report(out_dir, cfg, model, data, hist, evaluation, exp, timings, t_start)


def train_model(cfg: Config, data, out_dir: Path, *, progress: bool = True):
    """Build the model of cfg (seeded with cfg.train.seed), train it, save checkpoint + history.

    Returns:
        (model on the CPU in eval mode, train.History).
    """
    import torch

    from . import models, train

    torch.manual_seed(cfg.train.seed)
    model = models.model_from_config(cfg)
    hist = train.train(model, data, cfg.train, device="cpu" if not torch.cuda.is_available() else None,
                       progress=progress)
    model = model.to("cpu").eval()
    hist.save(out_dir / "history.json")
    train.save_checkpoint(out_dir / "checkpoint.pt", model, cfg, hist)
    return model, hist


def write_report(out_dir: Path, cfg: Config, model, data, hist, evaluation: dict, exp: dict,
                 timings: dict, t_start: float) -> dict:
    """Plots, report.json, config.json and report.md of a run; returns the report dict."""
    from . import plots, train

    int8_pred = np.array(exp.pop("int8_test_predictions"), np.int64)
    int8_eval = train.accuracy_report(data.test_y, int8_pred, data.labels)
    plots.save(plots.history(hist, title=cfg.model.name), out_dir / "history.png")
    plots.save(plots.confusion(int8_eval["confusion"], data.labels, title="Confusion matrix (int8, TFLM, test)"),
               out_dir / "confusion_int8.png")
    plots.save(plots.per_class(int8_eval["per_class"], title="Per-class accuracy (int8, TFLM, test)"),
               out_dir / "per_class_int8.png")
    timings["total"] = time.perf_counter() - t_start

    sizes = params_and_macs(model, cfg.frontend.feature_shape)
    report = {
        "name": out_dir.name,
        "config": cfg.to_dict(),
        "data": data.stats,
        "accuracy": {
            "float_val": evaluation["validation"]["accuracy"],
            "float_test": evaluation["testing"]["accuracy"],
            "int8_test": exp["int8_test"],
            "litert_int8_test": exp["litert_int8_test"],
            "float_test_without_silence": evaluation["testing"]["accuracy_without_silence"],
            "int8_test_without_silence": int8_eval["accuracy_without_silence"],
        },
        "per_class_int8_test": int8_eval["per_class"],
        "confusion_int8_test": int8_eval["confusion"],
        "int8_float_agreement": exp["int8_float_agreement"],
        "tflm_litert_agreement": exp["tflm_litert_agreement"],
        "twin_max_abs_logit_diff": exp["twin_max_abs_logit_diff"],
        "tflite_bytes": exp["tflite_bytes"],
        "device_tflite_bytes": exp["device_tflite_bytes"],
        "float_tflite_bytes": exp["float_tflite_bytes"],
        "arena_bytes": exp["arena_bytes"],
        "ops": exp["ops"],
        "input_quantization": exp["io"]["input"],
        "params": sizes["params"],
        "macs": sizes["macs"],
        "best_epoch": hist.best_epoch,
        "timings_s": {**{k: round(v, 2) for k, v in timings.items()},
                      "feature_detail": data.timings_s, "export_detail": exp["timings_s"]},
        "files": exp["files"],
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    (out_dir / "report.md").write_text(report_markdown(report, data.labels))
    return report


def params_and_macs(model, input_shape) -> dict:
    """Trainable parameters and MACs at batch size 1, from torch.utils.flop_counter.

    FlopCounterMode counts 2 FLOPs per multiply-accumulate of conv and linear layers, so
    macs = flops // 2. (The graded ``kwslab.size_estimate`` is the students' version; the
    pipeline never calls graded code.)
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, 1, *input_shape))
    return {"params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "macs": counter.get_total_flops() // 2}


def report_markdown(r: dict, labels) -> str:
    """A short human-readable summary of report.json."""
    from .train import format_confusion

    a = r["accuracy"]
    lines = [
        f"# kwslab run `{r['name']}`", "",
        f"Model `{r['config']['model']['name']}`, labels {', '.join(labels)}; "
        f"{r['params']:,} parameters, {r['macs']:,} MACs per inference.", "",
        "| metric | value |", "|---|---|",
        f"| float validation accuracy | {a['float_val']:.3f} |",
        f"| float test accuracy | {a['float_test']:.3f} |",
        f"| int8 test accuracy (TFLite Micro) | {a['int8_test']:.3f} |",
        f"| int8 test accuracy without _silence_ | {a['int8_test_without_silence']:.3f} |",
        f"| int8 agrees with float (test clips) | {r['int8_float_agreement']:.3f} |",
        f"| TFLite Micro agrees with LiteRT | {r['tflm_litert_agreement']:.3f} |",
        f"| .tflite size | {r['tflite_bytes']:,} bytes (on the board, compact: {r['device_tflite_bytes']:,} bytes) |",
        f"| smallest TFLite Micro arena | {r['arena_bytes']:,} bytes |",
        f"| ops | {', '.join(r['ops'])} |",
        f"| total time | {r['timings_s']['total']:.1f} s |", "",
        "## Clips per split and label", "", "```", json.dumps(r["data"], indent=1), "```", "",
        "## Confusion matrix (int8, test; rows true, columns predicted)", "", "```",
        format_confusion(r["confusion_int8_test"], labels), "```", "",
        "Figures: history.png, confusion_int8.png, per_class_int8.png.", "",
    ]
    return "\n".join(lines)


PRETRAINED = Path(__file__).resolve().parent / "pretrained" / "tiny_conv_yes_no.pt"
"""A small committed checkpoint for notebooks 4-6 run without notebook 3's (about 70 KB).

Made by ``kwslab run`` with the default recipe (``Config.for_model()``: tiny_conv, yes/no,
200 epochs, seed 0, 8 augmented copies) on the course's Speech Commands subset
(``../shared/speech_commands_subset``, whose clips all come from the official v0.02 *test*
release), then copied here. On the full data set its accuracy on the official test split is
therefore optimistic: some of those clips were its training clips.
"""


def ensure_checkpoint(run_dir: str | Path, cfg: Config = Config.for_model(), data_dir=None, *,
                      cache_dir: str | Path | None = ".cache/features", progress: bool = True,
                      pretrained: str | Path | None = PRETRAINED):
    """Load ``<run_dir>/checkpoint.pt`` (notebook 3's); if it is missing, say so and fall back.

    Notebooks 4-6 start from notebook 3's model. Run on their own (CI, a fresh Colab runtime
    without Drive) they fall back, with a WARNING log line (shown in a notebook):
    1. to the pretrained checkpoint when its model, labels and frontend equal cfg's (fast);
    2. else to training one with cfg through ``run``, progress bars on whatever progress says
       (``Config.for_model(smoke=True)`` for a smoke run).

    Args:
        run_dir: the run folder notebook 3 wrote.
        cfg: the recipe of the fallback (model, labels and frontend must match to use the
            pretrained checkpoint).
        data_dir, cache_dir: as ``run``.
        progress: unused: a fallback training always shows its progress bars (a silent
            retrain of minutes is what this function avoids).
        pretrained: the fallback checkpoint, None to always train.
    Returns:
        (model in eval mode, its Config, checkpoint dict) as train.load_checkpoint.
    Raises:
        As ``run`` when it has to train.
    """
    from . import train

    path = Path(run_dir) / "checkpoint.pt"
    if path.exists():
        return train.load_checkpoint(path)
    if pretrained is not None and Path(pretrained).is_file():
        model, pcfg, ckpt = train.load_checkpoint(pretrained)
        if (pcfg.model.name, pcfg.data.labels, pcfg.frontend) == (cfg.model.name, cfg.data.labels,
                                                                  cfg.frontend):
            log.warning("no checkpoint at %s (notebook 3 saves one there): using the pretrained "
                        "%s %s model %s instead", path, pcfg.model.name, "/".join(pcfg.data.words),
                        Path(pretrained).name)
            return model, pcfg, ckpt
    log.warning("no checkpoint at %s (notebook 3 saves one there): training %s on %s for %d "
                "epochs now", path, cfg.model.name, "/".join(cfg.data.words), cfg.train.epochs)
    run(cfg, data_dir, run_dir, cache_dir=cache_dir, progress=True)
    return train.load_checkpoint(path)
