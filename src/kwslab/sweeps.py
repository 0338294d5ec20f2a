"""The experiments of notebooks 5 and 6: sweeps over bit-widths, sparsities and channels.

Each sweep takes a trained float model and its features, makes quantized or pruned copies
with the student functions of ``kwslab.quantize`` and ``kwslab.prune``, and measures them
(accuracy before and after a short finetune, parameters, MACs, latency, int8 bytes in
TFLite Micro), so the notebooks stay short cells. The model handed in is never modified.

* Quantization (notebook 5): ``ptq_sweep`` (post-training quantization at each
  bit-width), ``qat_finetune`` / ``qat_sweep`` (quantization-aware finetuning through
  ``train.train``), ``export_qat`` (QAT model -> int8 ``.tflite`` in TFLite Micro, with
  ``weight_codes_match``: the file stores the QAT model's integer codes), ``results_table``.
* Pruning (notebook 6): ``prune_unstructured`` / ``unstructured_sweep`` (global magnitude
  pruning), ``grouped_sweep`` (whole filters / columns by L1, L2 or L-infinity norm),
  ``prune_structured`` / ``structured_sweep`` (channel surgery: parameters, MACs, host
  latency), ``deploy`` (int8 export, optionally weight clustering + TFLite Micro LUT
  compression, checked in TFLite Micro), ``deploy_int4`` (int4 weights from a 4-bit-weight
  QAT model, ``qat_finetune(..., weight_bits=4)``, checked in TFLite Micro).

This module is not graded and the pipeline does not call it: it calls graded code.

References:
  1) Krishnamoorthi 2018, "Quantizing deep convolutional networks for efficient inference:
     A whitepaper" (arXiv:1806.08342), Sec. 3-4: PTQ against QAT over bit-widths.
  2) Jacob et al. 2018 (arXiv:1712.05877), Sec. 3: simulated quantization in training.
  3) Han et al. 2016, "Deep Compression" (arXiv:1510.00149): pruning + weight sharing.
  4) Li et al. 2017, "Pruning Filters for Efficient ConvNets" (arXiv:1608.08710).
  5) tflite-micro ``tensorflow/lite/micro/compression/`` (LUT compression).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import export, pipeline
from . import prune as P
from . import quantize as Q
from . import size_estimate as S
from . import train as T
from .config import TrainConfig
from .frontend import FeatureData


DEFAULT_BITS = (2, 3, 4, 5, 6, 7, 8)
"""Bit-widths of the sweeps (weights and activations alike)."""


QAT_TRAIN = TrainConfig(epochs=30, learning_rate=2e-4, lr_final_fraction=0.05)
"""Default QAT fine-tune: 30 epochs of Adam from 2e-4, cosine-decayed to 1e-5."""


def ptq_sweep(model: nn.Module, data: FeatureData, bits=DEFAULT_BITS,
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
    batches = T.calibration_batches(data.train_x, num_calibration)
    rows, models = [], {}
    for b in bits:
        t0 = time.perf_counter()
        qmodel = Q.quantize_model_ptq(model, batches, num_bits=int(b))
        rows.append({"method": "PTQ", "num_bits": int(b), **T.accuracies(qmodel, data),
                     "seconds": round(time.perf_counter() - t0, 2)})
        models[int(b)] = qmodel
    return rows, models


def qat_finetune(model: nn.Module, data: FeatureData, num_bits: int,
                 train_cfg: TrainConfig = QAT_TRAIN, num_calibration: int = 512,
                 device: str | None = None, progress: bool = False,
                 weight_bits: int | None = None) -> tuple[nn.Module, T.History]:
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
        progress: show the epochs' progress bar.
        weight_bits: weights on a grid of this width while activations use num_bits (e.g.
            4-bit weights for ``export.int4_tflite`` with 8-bit activations); None: num_bits.
    Returns:
        (qmodel in eval mode on the CPU, its History).
    """
    qmodel = Q.prepare_qat(model, num_bits)
    if weight_bits is not None:
        set_weight_bits(qmodel, weight_bits)
    Q.calibrate(qmodel, T.calibration_batches(data.train_x, num_calibration))
    hist = T.train(qmodel, data, train_cfg, device=device, progress=progress)
    return qmodel.to("cpu").eval(), hist


def set_weight_bits(qmodel: nn.Module, weight_bits: int) -> nn.Module:
    """Make every fake-quantized layer of qmodel put its weight on a weight_bits grid
    (symmetric, per output channel, narrow range), leaving its input at the layer's own
    num_bits; ``quantize.qat_to_float`` then exports those grid values. In place; returns
    qmodel. Raises ValueError for weight_bits outside 2..16."""
    import types

    Q.quant_range(weight_bits)

    def fake_quantize_weight(layer):
        scale, zero_point = Q.weight_qparams(layer.weight, weight_bits)
        quant_min, quant_max = Q.quant_range(weight_bits, narrow_range=True)
        return Q.fake_quantize(layer.weight, scale, zero_point, quant_min, quant_max, axis=0)

    for _, layer in Q._quant_layers(qmodel):
        # a bound method: copy.deepcopy (qat_to_float) rebinds it to the copied layer
        layer.fake_quantize_weight = types.MethodType(fake_quantize_weight, layer)
        layer.weight_bits = int(weight_bits)
    return qmodel


def deploy_int4(model: nn.Module, cfg, data: FeatureData, out_dir: str | Path, *,
                num_bits: int = 4, progress: bool = False) -> dict:
    """Export a model with int4 weights for the boards and check it in TFLite Micro.

    ``export.export`` writes and checks the int8 model; ``export.int4_tflite`` requantizes
    its CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED weights to num_bits codes stored as
    packed INT4 (exact for a model from ``qat_finetune(..., weight_bits=4)``), then
    ``export.compact_tflite`` makes the device form. The packed model runs on the test
    features in TFLite Micro and must give the same outputs, clip for clip, as the same
    codes stored unpacked as int8 (else ValueError: the packing would be wrong).

    Args:
        model: a float model (for QAT models pass ``quantize.qat_to_float(qmodel)``).
        cfg, data, out_dir: as ``export.export``; ``model_int4_device.tflite`` goes there too,
            and the int4 model's deploy files (``model_data.{h,cpp}``, ``model_settings.h``
            with its arena size) to ``out_dir/int4/``, ready to copy into a sketch folder.
        num_bits: weight code width, 2..4.
    Returns:
        dict with int8_test, device_tflite_bytes, arena_bytes (the int8 model) and
        int4_test, int4_device_bytes, int4_tflite_bytes, int4_arena_bytes, int4_weights.
    """
    rep = export.export(model, cfg, data, out_dir, progress=progress)
    tflite = (Path(out_dir) / "model.tflite").read_bytes()
    reference, _ = export.int4_tflite(tflite, num_bits, packed=False)
    packed, stats = export.int4_tflite(tflite, num_bits)
    device, _ = export.compact_tflite(packed)
    (Path(out_dir) / "model_int4_device.tflite").write_bytes(device)
    want = export.run_tflm(reference, data.test_x)
    got = export.run_tflm(device, data.test_x)
    if not np.array_equal(want, got):
        raise ValueError(f"{out_dir}: packed int4 model differs from its unpacked reference on "
                         f"{int((want != got).any(1).sum())} test clips")
    from .firmware_sim import model_folder

    arena = export.measure_arena_bytes(device)
    model_folder(device, cfg, Path(out_dir) / "int4", arena, f"{cfg.model.name}_int4")
    return {"int8_test": rep["int8_test"], "device_tflite_bytes": rep["device_tflite_bytes"],
            "arena_bytes": rep["arena_bytes"],
            "int4_test": float(np.mean(got.argmax(1) == data.test_y)) if len(got) else 0.0,
            "int4_device_bytes": len(device), "int4_tflite_bytes": len(packed),
            "int4_arena_bytes": arena,
            "int4_weights": stats["weights"]}


def qat_sweep(model: nn.Module, data: FeatureData, bits=DEFAULT_BITS,
              train_cfg: TrainConfig = QAT_TRAIN, num_calibration: int = 512,
              device: str | None = None, progress: bool = False
              ) -> tuple[list[dict], dict[int, nn.Module]]:
    """``qat_finetune`` at each bit-width, each from the same float model.

    progress shows a bar over the bit-widths and, inside it, one over the epochs.

    Returns:
        (rows, models) as ptq_sweep, with "method": "QAT" and "epochs" in each row.
    """
    rows, models = [], {}
    for b in tqdm(bits, desc="QAT bit-widths", disable=not progress, leave=False):
        t0 = time.perf_counter()
        qmodel, _ = qat_finetune(model, data, int(b), train_cfg, num_calibration, device,
                                 progress=progress)
        rows.append({"method": "QAT", "num_bits": int(b), **T.accuracies(qmodel, data),
                     "epochs": train_cfg.epochs, "seconds": round(time.perf_counter() - t0, 2)})
        models[int(b)] = qmodel
    return rows, models


def export_qat(qmodel: nn.Module, cfg, data: FeatureData, out_dir: str | Path) -> dict:
    """Export a QAT model through ``kwslab.export`` and compare TFLite Micro with PyTorch.

    The model exported is ``Q.qat_to_float(qmodel)``; ``export.export`` folds BatchNorm,
    quantizes it to int8 (weights again: per channel they land on the same grid points
    up to the BatchNorm factor) and runs the test split in TFLite Micro.

    Returns:
        export.export's report plus "fake_quant_test" (accuracy of qmodel, activations
        fake-quantized too, in PyTorch), "tflm_fake_quant_agreement" (fraction of test
        clips with the same label) and "weight_codes_match" ({layer: the file's int8
        weights are the QAT model's codes}, see weight_codes_match).
    """
    report = export.export(Q.qat_to_float(qmodel), cfg, data, out_dir, progress=False)
    pred = T.predict_logits(qmodel, data.test_x, device="cpu").argmax(1)
    tflm = np.asarray(report["int8_test_predictions"])
    report["fake_quant_test"] = float(np.mean(pred == data.test_y)) if len(pred) else 0.0
    report["tflm_fake_quant_agreement"] = float(np.mean(pred == tflm)) if len(pred) else 0.0
    report["weight_codes_match"] = weight_codes_match(
        (Path(out_dir) / "model.tflite").read_bytes(), qmodel)
    return report


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
    file_codes = export.tflite_weight_codes(tflite)
    result = {}
    for name, q in Q._quant_layers(qmodel):
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


def _finetune(model: nn.Module, data, epochs: int, lr: float, batch_size: int, seed: int
              ) -> None:
    """prune.finetune on the GPU when there is one (prune.finetune uses the model's device);
    the model ends on the CPU in eval mode, where the measurements run."""
    if epochs > 0:
        torch.manual_seed(seed)  # dropout
        model.to(T.default_device())
        try:
            P.finetune(model, T.FeatureBatches(data.train_x, data.train_y, batch_size, seed),
                       epochs, lr=lr)
        finally:
            model.to("cpu")
    model.eval()


def _check_values(values: Sequence[float], what: str) -> list[float]:
    values = sorted(float(v) for v in values)
    if not values or any(not 0 <= v <= 1 for v in values):
        raise ValueError(f"{what}={values} should be a non-empty list of floats in [0, 1]")
    return values


def prune_unstructured(model: nn.Module, data, sparsity: float, *, finetune_epochs: int = 5,
                       lr: float = 1e-4, batch_size: int = 100, seed: int = 0
                       ) -> tuple[nn.Module, dict]:
    """A globally magnitude-pruned, finetuned copy of model and its measurements.

    Calls ``prune.apply_global_magnitude_pruning`` (Conv2d and Linear weights) on a copy,
    measures accuracy, finetunes (the masks keep the zeros), measures again.

    Args:
        model: trained kwslab model (not modified).
        data: ``frontend.FeatureData``.
        sparsity: fraction of the conv/linear weights to prune, in [0, 1].
        finetune_epochs: epochs of ``prune.finetune`` (0: none).
    Returns:
        (pruned model with the masks still attached, in eval mode, row) where row has
        sparsity, measured_sparsity, nonzero_params, params, val_accuracy, test_accuracy,
        finetuned_val_accuracy, finetuned_test_accuracy.
    """
    pruned = P.copy_model(model).cpu().eval()
    P.apply_global_magnitude_pruning(pruned, sparsity)
    row = {"sparsity": sparsity, "measured_sparsity": P.sparsity_of(pruned),
           "nonzero_params": P.count_nonzero_parameters(pruned),
           "params": sum(t.numel() for _, t in P.effective_parameters(pruned)),
           **T.accuracies(pruned, data)}
    _finetune(pruned, data, finetune_epochs, lr, batch_size, seed)
    row.update(T.accuracies(pruned, data, "finetuned_"))
    row["nonzero_params_finetuned"] = P.count_nonzero_parameters(pruned)
    return pruned, row


def unstructured_sweep(model: nn.Module, data, sparsities: Sequence[float], *,
                       progress: bool = False, **kwargs) -> list[dict]:
    """``prune_unstructured`` at each sparsity (ascending); one row each (see there).

    progress shows a bar over the sparsities.

    Raises:
        ValueError: if sparsities is empty or holds a value outside [0, 1].
    """
    return [prune_unstructured(model, data, s, **kwargs)[1]
            for s in tqdm(_check_values(sparsities, "sparsities"), desc="sparsities",
                          disable=not progress, leave=False)]


def grouped_sweep(model: nn.Module, data, sparsities: Sequence[float],
                  norms: Sequence[str] = ("l1", "l2", "linf"), *, finetune_epochs: int = 5,
                  lr: float = 1e-4, batch_size: int = 100, seed: int = 0,
                  progress: bool = False) -> list[dict]:
    """Grouped pruning at each sparsity with each norm, before and after finetuning.

    progress shows a bar over the (sparsity, norm) pairs.

    Returns:
        rows (sparsity ascending, then norms in the given order) with norm, sparsity,
        measured_sparsity, nonzero_params, same_groups_as_l1 (fraction of the pruned groups
        that the L1 norm prunes too; 1.0 for L1 itself and for sparsity 0), val_accuracy,
        test_accuracy, finetuned_val_accuracy, finetuned_test_accuracy.
    Raises:
        ValueError: for an empty or out-of-range sparsity list or an unknown norm.
    """
    for norm in norms:
        P.check_norm(norm)
    rows = []
    values = _check_values(sparsities, "sparsities")
    bar = tqdm(total=len(values) * len(norms), desc="grouped pruning", disable=not progress, leave=False)
    for s in values:
        l1_masks = P.apply_group_pruning(P.copy_model(model), s, "l1")
        for norm in norms:
            bar.update(1)
            pruned = P.copy_model(model).cpu().eval()
            masks = P.apply_group_pruning(pruned, s, norm)
            pruned_groups = sum(int((~m).sum()) for m in masks.values())
            shared = sum(int((~m & ~l1_masks[n]).sum()) for n, m in masks.items())
            row = {"norm": norm, "sparsity": s, "measured_sparsity": P.sparsity_of(pruned),
                   "nonzero_params": P.count_nonzero_parameters(pruned),
                   "same_groups_as_l1": shared / pruned_groups if pruned_groups else 1.0,
                   **T.accuracies(pruned, data)}
            _finetune(pruned, data, finetune_epochs, lr, batch_size, seed)
            row.update(T.accuracies(pruned, data, "finetuned_"))
            rows.append(row)
    bar.close()
    return rows


def conv_channels(model: nn.Module) -> dict[str, int]:
    """Output channels of every Conv2d, by module name."""
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def prune_structured(model: nn.Sequential, data, channel_sparsity: float, *, norm: str = "l2",
                     finetune_epochs: int = 5, lr: float = 1e-4, batch_size: int = 100,
                     seed: int = 0, latency_s: float = 0.2, finetune_cfg=None
                     ) -> tuple[nn.Sequential, dict]:
    """A channel-pruned (``prune.prune_channels``), finetuned model and its measurements.

    Args:
        model: trained flat kwslab model (not modified).
        data: ``frontend.FeatureData``.
        channel_sparsity: fraction of channels removed from every prunable conv, in [0, 1]
            (the graded ``prune.prune_channels``' ratio).
        latency_s: measuring time of the host CPU latency (one thread), > 0.
        finetune_cfg: None finetunes with ``prune.finetune`` (Adam at a constant ``lr`` for
            ``finetune_epochs``); a ``config.TrainConfig`` finetunes with ``train.train``
            instead (its epochs, cosine-decayed learning rate, regularizers and optional
            distillation teacher; finetune_epochs, lr, batch_size and seed are then unused).
    Returns:
        (smaller model in eval mode, row) where row has channel_sparsity, channels (conv name ->
        output channels), params, macs (``pipeline.params_and_macs`` on the smaller
        model), cpu_latency_ms (``size_estimate.measure_latency_ms``, 1 thread),
        val_accuracy, test_accuracy, finetuned_val_accuracy, finetuned_test_accuracy.
    """
    small = P.prune_channels(model.cpu().eval(), channel_sparsity, norm=norm).eval()
    sizes = pipeline.params_and_macs(small, tuple(small.input_shape))
    row = {"channel_sparsity": channel_sparsity, "channels": conv_channels(small), "params": sizes["params"],
           "macs": sizes["macs"],
           "cpu_latency_ms": S.measure_latency_ms(small, num_threads=1, min_run_time_s=latency_s),
           **T.accuracies(small, data)}
    if finetune_cfg is None:
        _finetune(small, data, finetune_epochs, lr, batch_size, seed)
    else:
        T.train(small, data, finetune_cfg, progress=False)
        small.cpu().eval()
    row.update(T.accuracies(small, data, "finetuned_"))
    return small, row


def structured_sweep(model: nn.Sequential, data, channel_sparsities: Sequence[float], *,
                     latency_repeats: int = 3, latency_s: float = 0.2, progress: bool = False,
                     **kwargs) -> list[dict]:
    """``prune_structured`` at each channel sparsity (ascending); one row each (see there).

    On a shared machine one latency measurement is noisy: the models are timed again in
    turn ``latency_repeats`` times and cpu_latency_ms is the smallest median seen.

    Raises:
        ValueError: if channel_sparsities is empty or holds a value outside [0, 1], or
            latency_repeats < 1.
    """
    if latency_repeats < 1:
        raise ValueError(f"latency_repeats={latency_repeats} should be >= 1")
    results = [prune_structured(model, data, r, latency_s=latency_s, **kwargs)
               for r in tqdm(_check_values(channel_sparsities, "channel_sparsities"),
                             desc="channel sparsities", disable=not progress, leave=False)]
    for _ in range(latency_repeats - 1):
        for small, row in results:
            row["cpu_latency_ms"] = min(row["cpu_latency_ms"], S.measure_latency_ms(
                small, num_threads=1, min_run_time_s=latency_s))
    return [row for _, row in results]


def deploy(model: nn.Module, cfg, data, out_dir, *, lut_values: int | None = None,
           progress: bool = False) -> dict:
    """Export a (pruned) model with ``kwslab.export.export``; optionally LUT-compress it.

    Pruning reparametrizations are removed first (on a copy). With ``lut_values`` the copy's
    weights are first clustered to that many values per output channel
    (``cluster_weights``), exported, and the .tflite compressed (``lut_compress``); the
    compressed model runs in the TFLite Micro interpreter on the test features and its
    outputs are compared with the uncompressed model's.

    Args:
        model: trained (pruned) kwslab model (not modified).
        cfg, data: as ``export.export``.
        out_dir: export folder (model.tflite, C sources); ``model_lut.tflite`` goes there too.
        lut_values: distinct weight values per output channel (2..128), or None.
    Returns:
        dict with nonzero_params, int8_test (TFLM), tflite_bytes, device_tflite_bytes (the
        ``export.compact_tflite`` model the boards flash), arena_bytes, zlib_bytes;
        with lut_values also lut_tflite_bytes, lut_arena_bytes, lut_int8_test,
        lut_same_outputs (fraction of test clips whose int8 outputs are identical),
        lut_ops, lut_tensors (the ``lut_spec`` rows).
    """
    plain = P.remove_pruning_reparam(P.copy_model(model)).cpu().eval()
    if lut_values is not None:
        Q.cluster_weights(plain, lut_values)
    rep = export.export(plain, cfg, data, out_dir, progress=progress)
    tflite = (Path(out_dir) / "model.tflite").read_bytes()
    row = {"nonzero_params": P.count_nonzero_parameters(plain), "int8_test": rep["int8_test"],
           "tflite_bytes": rep["tflite_bytes"], "device_tflite_bytes": rep["device_tflite_bytes"],
           "arena_bytes": rep["arena_bytes"],
           "zlib_bytes": export.zlib_bytes(tflite)}
    if lut_values is None:
        return row
    compressed, tensors = export.lut_compress(tflite)
    (Path(out_dir) / "model_lut.tflite").write_bytes(compressed)
    reference = export.run_tflm(tflite, data.test_x)
    outputs = export.run_tflm(compressed, data.test_x)
    row.update({
        "lut_tflite_bytes": len(compressed),
        "lut_arena_bytes": export.measure_arena_bytes(compressed),
        "lut_int8_test": float(np.mean(outputs.argmax(1) == data.test_y)) if len(outputs) else 0.0,
        "lut_same_outputs": float(np.mean((outputs == reference).all(1))) if len(outputs) else 1.0,
        "lut_ops": export.op_names(compressed), "lut_tensors": tensors})
    return row
