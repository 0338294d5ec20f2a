"""Experiments of the quantization notebook: PTQ and QAT sweeps, QAT -> float, export, plots.

The graded module ``kwslab.quantize`` holds the building blocks the students write
(``prepare_qat``, ``calibrate``, ``quantize_model_ptq``, ``QuantConv2d`` ...). This module
runs the experiments that use them, so that notebook 5 stays a sequence of short cells:

* ``ptq_sweep``: post-training quantization at every bit-width (BatchNorm folded, input
  ranges calibrated on training features), validation and test accuracy of each.
* ``qat_finetune`` / ``qat_sweep``: quantization-aware training, a short fine-tune of the
  trained float model: ``prepare_qat``, input ranges initialised by ``calibrate`` on
  training features, then ``kwslab.train.train`` (Adam, cosine decay) on the augmented
  training bank. Gradients pass the rounding by the straight-through estimator.
* ``qat_to_float``: the QAT model as a plain float kwslab model whose Conv2d/Linear weights
  are the fake-quantized weights (BatchNorm, kept float by ``prepare_qat``, stays where it
  is). ``kwslab.export`` turns that model into the int8 ``.tflite`` the board runs
  (``export_qat``), and TFLite Micro checks it; ``weight_codes_match`` reads the int8
  weights back from the file and compares them with the QAT model's codes.
* ``qparams_table``, ``layer_weights`` and the plots: scale and zero_point of every layer,
  weight histograms before and after quantization, accuracy against bit-width.

The float model handed to any function here is never modified: every quantized model is a
copy. This module is not graded and the pipeline does not call it (it calls graded code).

References:
  1) Krishnamoorthi 2018, "Quantizing deep convolutional networks for efficient inference:
     A whitepaper" (arXiv:1806.08342), Sec. 3-4: PTQ against QAT over bit-widths, QAT as a
     fine-tune of a float model.
  2) Jacob et al. 2018 (arXiv:1712.05877), Sec. 3: simulated quantization in training,
     activation ranges by moving average, BatchNorm folding.
  3) PyTorch ``torch.ao.quantization`` QAT flow (prepare_qat, fine-tune, convert).
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import quantize as Q
from . import train as T
from .config import TrainConfig

DEFAULT_BITS = (2, 3, 4, 5, 6, 7, 8)
"""Bit-widths of the sweeps (weights and activations alike)."""

QAT_TRAIN = TrainConfig(epochs=30, learning_rate=2e-4, lr_final_fraction=0.05)
"""Default QAT fine-tune: 30 epochs of Adam from 2e-4, cosine-decayed to 1e-5."""


def calibration_batches(x_int8: np.ndarray, num_examples: int = 512,
                        batch_size: int = 128) -> list[torch.Tensor]:
    """Float model inputs for calibration: the first num_examples features, in batches.

    Args:
        x_int8: int8 device features, shape (N, T, F) or a bank (K, N, T, F) (its first
            copy is used).
        num_examples: how many examples at most.
        batch_size: examples per batch.
    Returns:
        list of float32 tensors (B, 1, T, F).
    Raises:
        ValueError: if x_int8 holds no example.
    """
    x = x_int8[0] if x_int8.ndim == 4 else x_int8
    x = x[:num_examples]
    if len(x) == 0:
        raise ValueError(f"no features to calibrate on (shape {tuple(x_int8.shape)})")
    return [T.to_tensor(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]


def accuracies(model: nn.Module, data: T.FeatureData) -> dict[str, float]:
    """Validation and test accuracy (fractions in [0, 1]) of a model, in eval mode.

    Returns:
        {"val_accuracy": ..., "test_accuracy": ...}.
    """
    out = {}
    for key, x, y in (("val_accuracy", data.val_x, data.val_y),
                      ("test_accuracy", data.test_x, data.test_y)):
        pred = T.predict_logits(model, x, device="cpu").argmax(1) if len(x) else np.zeros(0)
        out[key] = float(np.mean(pred == y)) if len(y) else 0.0
    return out


def ptq_sweep(model: nn.Module, data: T.FeatureData, bits=DEFAULT_BITS,
              num_calibration: int = 512) -> tuple[list[dict], dict[int, nn.Module]]:
    """Post-training quantization at each bit-width, with its accuracy.

    Each model is ``quantize.quantize_model_ptq(model, batches, num_bits)``: BatchNorm
    folded, weights per channel, input ranges calibrated on the first num_calibration
    training features (the bank's first copy).

    Args:
        model: trained float kwslab model (left unmodified).
        data: FeatureData (training bank for calibration, val/test for accuracy).
        bits: bit-widths, each in 2..16.
        num_calibration: calibration examples.
    Returns:
        (rows, models): one row per bit-width, in the order given, {"method": "PTQ",
        "num_bits", "val_accuracy", "test_accuracy", "seconds"}; models maps num_bits to
        the quantized model (eval mode).
    """
    batches = calibration_batches(data.train_x, num_calibration)
    rows, models = [], {}
    for b in bits:
        t0 = time.perf_counter()
        qmodel = Q.quantize_model_ptq(model, batches, num_bits=int(b))
        rows.append({"method": "PTQ", "num_bits": int(b), **accuracies(qmodel, data),
                     "seconds": round(time.perf_counter() - t0, 2)})
        models[int(b)] = qmodel
    return rows, models


def qat_finetune(model: nn.Module, data: T.FeatureData, num_bits: int,
                 train_cfg: TrainConfig = QAT_TRAIN, num_calibration: int = 512,
                 device: str | None = None) -> tuple[nn.Module, T.History]:
    """Quantization-aware fine-tune of a copy of a trained float model.

    1. ``quantize.prepare_qat(model, num_bits)`` (a copy; BatchNorm stays float);
    2. ``quantize.calibrate`` on the first num_calibration training features, so that the
       input ranges start where PTQ would put them, not at the first batch's range;
    3. ``train.train`` on the augmented bank (Adam, cosine decay): in train mode every
       layer's input range follows a moving average, and the weights learn to sit well on
       their grids through the straight-through estimator.

    Args:
        model: trained float kwslab model (left unmodified).
        data: FeatureData.
        num_bits: code width of weights and activations, 2..16.
        train_cfg: epochs, learning rate (about a tenth of the float training's), seed.
        num_calibration: examples for the initial ranges.
        device: "cpu" / "cuda"; default as train.train.
    Returns:
        (qmodel in eval mode on the CPU, its History).
    """
    qmodel = Q.prepare_qat(model, num_bits)
    Q.calibrate(qmodel, calibration_batches(data.train_x, num_calibration))
    hist = T.train(qmodel, data, train_cfg, device=device, progress=False)
    return qmodel.to("cpu").eval(), hist


def qat_sweep(model: nn.Module, data: T.FeatureData, bits=DEFAULT_BITS,
              train_cfg: TrainConfig = QAT_TRAIN, num_calibration: int = 512,
              device: str | None = None) -> tuple[list[dict], dict[int, nn.Module]]:
    """``qat_finetune`` at each bit-width, each from the same float model.

    Returns:
        (rows, models) as ptq_sweep, with "method": "QAT" and "epochs" in each row.
    """
    rows, models = [], {}
    for b in bits:
        t0 = time.perf_counter()
        qmodel, _ = qat_finetune(model, data, int(b), train_cfg, num_calibration, device)
        rows.append({"method": "QAT", "num_bits": int(b), **accuracies(qmodel, data),
                     "epochs": train_cfg.epochs, "seconds": round(time.perf_counter() - t0, 2)})
        models[int(b)] = qmodel
    return rows, models


def _quant_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (Q.QuantConv2d, Q.QuantLinear))]


def qat_to_float(qmodel: nn.Module) -> nn.Module:
    """A plain float copy of a fake-quantized model, weights replaced by their grid values.

    Every QuantConv2d / QuantLinear becomes an nn.Conv2d / nn.Linear of the same
    configuration whose weight is ``layer.fake_quantize_weight()`` (per output channel,
    symmetric, narrow range) and whose bias is the layer's float bias. Every other layer
    (BatchNorm, which prepare_qat keeps float, ReLU, padding, pooling) is copied as it is,
    so in eval mode the copy computes exactly what the QAT model computes without its
    input (activation) fake quantization. Activations are quantized again by the int8
    converter (``kwslab.export``), with ranges from its representative data set.

    Args:
        qmodel: a model from quantize.prepare_qat / quantize_model_ptq (left unmodified).
    Returns:
        the float model (same class as qmodel, same train/eval mode, same layer names).
    Raises:
        ValueError: if qmodel has no QuantConv2d / QuantLinear layer.
    """
    layers = _quant_layers(qmodel)
    if not layers:
        raise ValueError(f"{type(qmodel).__name__} has no QuantConv2d/QuantLinear layer; "
                         "pass a model from quantize.prepare_qat or quantize_model_ptq")
    model = copy.deepcopy(qmodel)
    for name, q in _quant_layers(model):
        with torch.no_grad():
            if isinstance(q, Q.QuantConv2d):
                new = nn.Conv2d(q.in_channels, q.out_channels, q.kernel_size, stride=q.stride,
                                padding=q.padding, dilation=q.dilation, groups=q.groups,
                                bias=q.bias is not None, padding_mode=q.padding_mode)
            else:
                new = nn.Linear(q.in_features, q.out_features, bias=q.bias is not None)
            new.weight.copy_(q.fake_quantize_weight())
            if q.bias is not None:
                new.bias.copy_(q.bias)
        new.train(q.training)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return model


def qparams_table(qmodel: nn.Module) -> list[dict]:
    """scale and zero_point of every fake-quantized layer of a model (eval-mode values).

    Returns:
        one dict per QuantConv2d / QuantLinear, in order: "layer", "num_bits",
        "input_min", "input_max" (observed range), "input_scale", "input_zero_point"
        (asymmetric, per tensor), "weight_scale_min", "weight_scale_max" (symmetric per
        output channel, zero_point 0), "channels".
    """
    rows = []
    for name, q in _quant_layers(qmodel):
        in_scale, in_zp = q.activation_qparams()
        w_scale, _ = Q.weight_qparams(q.weight, q.num_bits)
        rows.append({"layer": name, "num_bits": q.num_bits,
                     "input_min": float(q.act_min), "input_max": float(q.act_max),
                     "input_scale": float(in_scale), "input_zero_point": int(in_zp),
                     "weight_scale_min": float(w_scale.min()),
                     "weight_scale_max": float(w_scale.max()), "channels": int(w_scale.numel())})
    return rows


def layer_weights(model: nn.Module, layer: str, channel: int | None = None) -> np.ndarray:
    """The weights a layer computes with, flattened: fake-quantized for a Quant layer.

    Args:
        model: float or fake-quantized model.
        layer: layer name (e.g. "fc", "conv1").
        channel: one output channel (row of the weight), or None for all.
    Returns:
        float32 array.
    Raises:
        KeyError: if the model has no such layer (names listed).
    """
    modules = dict(model.named_modules())
    if layer not in modules or not hasattr(modules[layer], "weight"):
        names = [n for n, m in modules.items() if isinstance(getattr(m, "weight", None), torch.Tensor)]
        raise KeyError(f"no weighted layer {layer!r}; layers with weights: {names}")
    m = modules[layer]
    with torch.no_grad():
        w = m.fake_quantize_weight() if hasattr(m, "fake_quantize_weight") else m.weight
    w = w.detach().cpu()
    return (w if channel is None else w[channel]).reshape(-1).numpy().astype(np.float32)


def export_qat(qmodel: nn.Module, cfg, data: T.FeatureData, out_dir: str | Path) -> dict:
    """Export a QAT model through ``kwslab.export`` and compare TFLite Micro with PyTorch.

    The model exported is ``qat_to_float(qmodel)``; ``export.export`` folds BatchNorm,
    quantizes it to int8 (weights again: per channel they land on the same grid points
    up to the BatchNorm factor) and runs the test split in TFLite Micro.

    Returns:
        export.export's report plus "fake_quant_test" (accuracy of qmodel, activations
        fake-quantized too, in PyTorch), "tflm_fake_quant_agreement" (fraction of test
        clips with the same label) and "weight_codes_match" ({layer: the file's int8
        weights are the QAT model's codes}, see weight_codes_match).
    """
    from . import export

    report = export.export(qat_to_float(qmodel), cfg, data, out_dir, progress=False)
    pred = T.predict_logits(qmodel, data.test_x, device="cpu").argmax(1)
    tflm = np.asarray(report["int8_test_predictions"])
    report["fake_quant_test"] = float(np.mean(pred == data.test_y)) if len(pred) else 0.0
    report["tflm_fake_quant_agreement"] = float(np.mean(pred == tflm)) if len(pred) else 0.0
    report["weight_codes_match"] = weight_codes_match(
        (Path(out_dir) / "model.tflite").read_bytes(), qmodel)
    return report



def tflite_weight_codes(tflite: bytes) -> dict[str, np.ndarray]:
    """int8 weight codes of every conv / fully connected layer of a .tflite model.

    Returns:
        {layer name (the Keras twin's, i.e. the PyTorch name): int8 array (C, K)}, one row
        per output channel (the tensor's quantized dimension moved first), in the file's
        element order (Keras' (kh, kw, in) rather than PyTorch's (in, kh, kw)).
    """
    import re

    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=tflite)
    out = {}
    for d in it.get_tensor_details():
        m = re.search(r"/(\w+?)_\d+/(convolution|depthwise|MatMul)$", d["name"])
        if not m or np.dtype(d["dtype"]) != np.int8 or ";" in d["name"]:
            continue
        axis = d["quantization_parameters"]["quantized_dimension"]
        codes = np.moveaxis(it.get_tensor(d["index"]), axis, 0)
        out[m.group(1)] = codes.reshape(codes.shape[0], -1)
    return out


def weight_codes_match(tflite: bytes, qmodel: nn.Module) -> dict[str, bool]:
    """Whether the .tflite stores exactly the QAT model's integer weight codes, per layer.

    Each output channel is compared as a sorted multiset of codes (the file orders the
    elements differently) and allowed to be negated as a whole (a BatchNorm with a negative
    gamma, folded into the weights, flips a channel's signs). A per-channel symmetric grid
    scaled by a positive factor is the same grid, so the converter's re-quantization of
    fake-quantized weights, BatchNorm folded or not, must give the same codes.

    Returns:
        {layer name: True / False} for every QuantConv2d / QuantLinear found in the file.
    """
    file_codes = tflite_weight_codes(tflite)
    result = {}
    for name, q in _quant_layers(qmodel):
        if name not in file_codes:
            continue
        scale, zero_point = Q.weight_qparams(q.weight, q.num_bits)
        qmin, qmax = Q.quant_range(q.num_bits, narrow_range=True)
        ours = Q.quantize(q.weight.detach(), scale, zero_point, qmin, qmax, axis=0)
        ours = np.sort(ours.reshape(ours.shape[0], -1).numpy(), axis=1)
        theirs = file_codes[name].astype(np.int32)
        if ours.shape != theirs.shape:
            result[name] = False
            continue
        same = np.all(np.sort(theirs, axis=1) == ours, axis=1)
        flipped = np.all(np.sort(-theirs, axis=1) == ours, axis=1)
        result[name] = bool(np.all(same | flipped))
    return result

# ---------------------------------------------------------------- plots
def plot_accuracy_vs_bits(rows: list[dict], float_accuracy: dict, ax=None,
                          title: str = "Accuracy against bit-width"):
    """PTQ and QAT test (solid) and validation (dashed) accuracy, float baselines as lines.

    Args:
        rows: rows of ptq_sweep / qat_sweep.
        float_accuracy: {"val_accuracy", "test_accuracy"} of the float model.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    colors = {"PTQ": "tab:orange", "QAT": "tab:blue"}
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["num_bits"])
        b = [r["num_bits"] for r in rs]
        c = colors.get(method)
        ax.plot(b, [100 * r["test_accuracy"] for r in rs], "o-", color=c, label=f"{method} test")
        ax.plot(b, [100 * r["val_accuracy"] for r in rs], "s--", color=c, alpha=0.6,
                label=f"{method} validation")
    ax.axhline(100 * float_accuracy["test_accuracy"], color="black", lw=1,
               label="float test")
    ax.axhline(100 * float_accuracy["val_accuracy"], color="gray", lw=1, ls="--",
               label="float validation")
    all_bits = sorted({r["num_bits"] for r in rows})
    ax.set_xticks(all_bits)
    ax.set(title=title, xlabel="bit-width of weights and activations (bits)",
           ylabel="accuracy (%)", ylim=(0, 102))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_weight_histograms(weights: dict[str, np.ndarray], ax=None, bins: int = 80,
                           title: str = "Weights before and after quantization"):
    """Histograms of weight sets on shared axes.

    A set with at most 256 distinct values (a quantized one) is drawn as one stem per grid
    value, the others as a histogram with ``bins`` bins.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    lo = min(float(w.min()) for w in weights.values())
    hi = max(float(w.max()) for w in weights.values())
    edges = np.linspace(lo, hi, bins + 1)
    for i, (name, w) in enumerate(weights.items()):
        values, counts = np.unique(w, return_counts=True)
        color = f"C{i}"
        if len(values) <= 256:
            ax.vlines(values, 0, counts, color=color, lw=2, alpha=0.8,
                      label=f"{name} ({len(values)} values)")
            ax.plot(values, counts, "o", color=color, ms=3)
        else:
            ax.hist(w, bins=edges, color=color, alpha=0.4, label=name)
    ax.set(title=title, xlabel="weight value", ylabel="count (weights)")
    ax.legend(fontsize=8)
    return ax


def results_table(rows: list[dict], float_accuracy: dict) -> str:
    """A markdown table: bits, PTQ and QAT test/validation accuracy, drop vs float (pp)."""
    by = {(r["method"], r["num_bits"]): r for r in rows}
    bits = sorted({r["num_bits"] for r in rows}, reverse=True)
    ft = float_accuracy["test_accuracy"]
    lines = ["| bits | PTQ test | PTQ val | QAT test | QAT val | QAT test - float (pp) |",
             "|---|---|---|---|---|---|",
             f"| float | {ft:.3f} | {float_accuracy['val_accuracy']:.3f} | | | |"]

    def cell(method, b, key):
        r = by.get((method, b))
        return f"{r[key]:.3f}" if r else ""

    for b in bits:
        qat = by.get(("QAT", b))
        drop = f"{100 * (qat['test_accuracy'] - ft):+.1f}" if qat else ""
        lines.append(f"| {b} | {cell('PTQ', b, 'test_accuracy')} | {cell('PTQ', b, 'val_accuracy')} "
                     f"| {cell('QAT', b, 'test_accuracy')} | {cell('QAT', b, 'val_accuracy')} | {drop} |")
    return "\n".join(lines)

