"""Experiments of the pruning lab (notebook 6): sweeps, MCU latency, TFLite Micro compression.

The student functions live in ``kwslab.prune``; this module runs them over a range of
settings on a trained keyword spotter and measures what each setting buys:

* ``unstructured_sweep``: global magnitude pruning at several sparsities, test/validation
  accuracy before and after a short finetuning, and the nonzero parameters left.
* ``grouped_sweep``: the same with whole groups (conv filters, fully connected input
  columns) scored by their L1, L2 or L-infinity norm, the case where the norms disagree.
* ``structured_sweep``: channel pruning (``prune.prune_channels``, real model surgery),
  parameters, MACs counted on the smaller model, host CPU latency, accuracy after finetune.
* ``mcu_latency_ms`` estimates Cortex-M latency from MACs; ``parse_profile`` reads the
  Arduino sketch's ``KWS_PROFILE`` lines so measured numbers replace the estimate.
* ``cluster_weights`` (weight sharing: a few distinct values per output channel, zero kept)
  and ``lut_compress`` (TFLite Micro's look-up-table compression, which stores each weight
  as a ``index_bitwidth``-bit index into a per-channel value table and inserts DECODE ops).
* ``deploy`` exports a (pruned) model with ``kwslab.export.export`` (int8, verified in
  TFLite Micro) and, on request, clusters and LUT-compresses it and checks that the
  compressed model gives the same TFLite Micro outputs.

TFLite Micro's compression tool (``tflite_micro.compression``, nightly package) implements
only LUT compression: its "pruning" and "huffman" methods raise ``CompressionError`` ("not
yet implemented"). LUT indices cost the same bits for a zero as for any other value, so
unstructured sparsity alone does not shrink a TFLM model; few distinct values do.

This module is not graded and the pipeline does not use it. It calls the student functions
of ``kwslab.prune`` (the notebook's subject) and ``kwslab.pipeline.params_and_macs`` for MACs.

References:
  1) Han et al. 2016, "Deep Compression: Compressing Deep Neural Networks with Pruning,
     Trained Quantization and Huffman Coding" (arXiv:1510.00149): pruning + weight sharing
     by k-means per layer.
  2) Li et al. 2017, "Pruning Filters for Efficient ConvNets" (arXiv:1608.08710).
  3) Lai, Suda, Chandra 2018, "CMSIS-NN: Efficient Neural Network Kernels for Arm Cortex-M
     CPUs" (arXiv:1801.06601): the CIFAR-10 network (about 12 M MACs) in 99.1 ms on a
     216 MHz Cortex-M7, about 0.57 MACs per cycle.
  4) tflite-micro ``tensorflow/lite/micro/compression/`` (``compress.py``, ``lut.py``,
     ``spec.py``, ``spec_builder.py``) and ``python/tflite_micro/runtime.py``
     (``alt_decompression_memory_size``).
"""
from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from . import prune as P

CORTEX_M4_MACS_PER_CYCLE = 0.5
"""Assumed int8 CMSIS-NN throughput on a Cortex-M4 (MACs per clock cycle).

The M4's SMLAD multiplies and accumulates two 16-bit pairs per cycle (2 MACs/cycle peak);
im2col, int8 -> int16 widening, requantization and loads cut that to about a quarter.
CMSIS-NN's own benchmark (Lai et al. 2018, arXiv:1801.06601) runs its CIFAR-10 network
(about 12.3 M MACs) in 99.1 ms on a 216 MHz Cortex-M7: 12.3e6 / (0.0991 * 216e6) = 0.57
MACs/cycle on the dual-issue M7, so 0.5 is an optimistic round figure for the M4.
"""
NANO33BLE_CLOCK_HZ = 64_000_000
"""nRF52840 (Arduino Nano 33 BLE) Cortex-M4F clock."""


# ---------------------------------------------------------------------------------------
# Data and accuracy
# ---------------------------------------------------------------------------------------

class FeatureBatches:
    """Shuffled (x, y) batches from the augmented training bank, one copy per epoch.

    Iterating again starts the next epoch: epoch e uses augmented copy e mod K of the bank
    (K, N, T, F) and a new permutation from a seeded generator, as ``train.train`` does.

    Args:
        train_x: int8 (K, N, T, F) device features.
        train_y: int64 (N,) labels.
        batch_size: clips per batch, >= 1.
        seed: seed of the shuffles.
    Yields:
        x float32 (B, 1, T, F), y int64 (B,).
    Raises:
        ValueError: if batch_size < 1 or the bank and labels disagree in N.
    """

    def __init__(self, train_x: np.ndarray, train_y: np.ndarray, batch_size: int = 100,
                 seed: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} should be >= 1")
        if train_x.ndim != 4 or train_x.shape[1] != len(train_y):
            raise ValueError(f"train_x of shape {train_x.shape} should be (K, N, T, F) with "
                             f"N = len(train_y) = {len(train_y)}")
        self.train_x, self.train_y, self.batch_size = train_x, np.asarray(train_y), batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from .train import to_tensor

        bank = self.train_x[self.epoch % len(self.train_x)]  # (N, T, F)
        self.epoch += 1
        order = torch.randperm(len(self.train_y), generator=self.generator).numpy()
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            yield to_tensor(bank[idx]), torch.from_numpy(self.train_y[idx]).long()


def accuracy(model: nn.Module, x_int8: np.ndarray, y: np.ndarray) -> float:
    """Fraction of clips whose argmax logit is the label (0.0 for no clips)."""
    from .train import predict_logits

    if len(y) == 0:
        return 0.0
    return float(np.mean(predict_logits(model, x_int8, device="cpu").argmax(1) == y))


def _accuracies(model: nn.Module, data, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}val_accuracy": accuracy(model, data.val_x, data.val_y),
            f"{prefix}test_accuracy": accuracy(model, data.test_x, data.test_y)}


def _finetune(model: nn.Module, data, epochs: int, lr: float, batch_size: int, seed: int
              ) -> None:
    if epochs > 0:
        torch.manual_seed(seed)  # dropout
        P.finetune(model, FeatureBatches(data.train_x, data.train_y, batch_size, seed),
                   epochs, lr=lr)
    model.eval()


def _check_values(values: Sequence[float], what: str) -> list[float]:
    values = sorted(float(v) for v in values)
    if not values or any(not 0 <= v <= 1 for v in values):
        raise ValueError(f"{what}={values} should be a non-empty list of floats in [0, 1]")
    return values


# ---------------------------------------------------------------------------------------
# Unstructured and grouped sweeps
# ---------------------------------------------------------------------------------------

def prune_unstructured(model: nn.Module, data, sparsity: float, *, finetune_epochs: int = 5,
                       lr: float = 1e-4, batch_size: int = 100, seed: int = 0
                       ) -> tuple[nn.Module, dict]:
    """A globally magnitude-pruned, finetuned copy of model and its measurements.

    Calls ``prune.apply_global_magnitude_pruning`` (Conv2d and Linear weights) on a copy,
    measures accuracy, finetunes (the masks keep the zeros), measures again.

    Args:
        model: trained kwslab model (not modified).
        data: ``train.FeatureData``.
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
           **_accuracies(pruned, data)}
    _finetune(pruned, data, finetune_epochs, lr, batch_size, seed)
    row.update(_accuracies(pruned, data, "finetuned_"))
    row["nonzero_params_finetuned"] = P.count_nonzero_parameters(pruned)
    return pruned, row


def unstructured_sweep(model: nn.Module, data, sparsities: Sequence[float], **kwargs
                       ) -> list[dict]:
    """``prune_unstructured`` at each sparsity (ascending); one row each (see there).

    Raises:
        ValueError: if sparsities is empty or holds a value outside [0, 1].
    """
    return [prune_unstructured(model, data, s, **kwargs)[1]
            for s in _check_values(sparsities, "sparsities")]


def group_dims(model: nn.Module) -> dict[str, int]:
    """Which dimension of each layer's weight forms the groups of grouped pruning.

    Conv2d: dim 0 (whole filters = output channels), except the model's last conv/linear
    layer, whose outputs are the classes; Linear: dim 1 (input columns, so no class is
    ever removed).

    Returns:
        dict module name -> group dimension.
    """
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    dims = {}
    for i, (name, m) in enumerate(layers):
        if isinstance(m, nn.Linear):
            dims[name] = 1
        elif i < len(layers) - 1:
            dims[name] = 0
    return dims


def apply_group_pruning(model: nn.Module, sparsity: float, norm: str = "l1"
                        ) -> dict[str, torch.Tensor]:
    """Prune the fraction ``sparsity`` of the groups (``group_dims``) of every layer by norm.

    Each layer is pruned on its own (``prune.magnitude_prune_mask`` with ``group_dim``),
    the masks applied with ``torch.nn.utils.prune.custom_from_mask`` so they persist.

    Returns:
        dict module name -> bool keep-mask of its weight's shape.
    """
    from torch.nn.utils import prune as torch_prune

    modules = dict(model.named_modules())
    masks = {}
    for name, dim in group_dims(model).items():
        mask = P.magnitude_prune_mask(modules[name].weight, sparsity, norm=norm, group_dim=dim)
        torch_prune.custom_from_mask(modules[name], "weight", mask)
        masks[name] = mask
    return masks


def grouped_sweep(model: nn.Module, data, sparsities: Sequence[float],
                  norms: Sequence[str] = ("l1", "l2", "linf"), *, finetune_epochs: int = 5,
                  lr: float = 1e-4, batch_size: int = 100, seed: int = 0) -> list[dict]:
    """Grouped pruning at each sparsity with each norm, before and after finetuning.

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
    for s in _check_values(sparsities, "sparsities"):
        l1_masks = apply_group_pruning(P.copy_model(model), s, "l1")
        for norm in norms:
            pruned = P.copy_model(model).cpu().eval()
            masks = apply_group_pruning(pruned, s, norm)
            pruned_groups = sum(int((~m).sum()) for m in masks.values())
            shared = sum(int((~m & ~l1_masks[n]).sum()) for n, m in masks.items())
            row = {"norm": norm, "sparsity": s, "measured_sparsity": P.sparsity_of(pruned),
                   "nonzero_params": P.count_nonzero_parameters(pruned),
                   "same_groups_as_l1": shared / pruned_groups if pruned_groups else 1.0,
                   **_accuracies(pruned, data)}
            _finetune(pruned, data, finetune_epochs, lr, batch_size, seed)
            row.update(_accuracies(pruned, data, "finetuned_"))
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------
# Structured (channel) sweep
# ---------------------------------------------------------------------------------------

def conv_channels(model: nn.Module) -> dict[str, int]:
    """Output channels of every Conv2d, by module name."""
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def prune_structured(model: nn.Sequential, data, ratio: float, *, norm: str = "l2",
                     finetune_epochs: int = 5, lr: float = 1e-4, batch_size: int = 100,
                     seed: int = 0, latency_s: float = 0.2) -> tuple[nn.Sequential, dict]:
    """A channel-pruned (``prune.prune_channels``), finetuned model and its measurements.

    Args:
        model: trained flat kwslab model (not modified).
        data: ``train.FeatureData``.
        ratio: fraction of channels removed from every prunable conv.
        latency_s: measuring time of the host CPU latency (one thread), > 0.
    Returns:
        (smaller model in eval mode, row) where row has ratio, channels (conv name ->
        output channels), params, macs (``pipeline.params_and_macs`` on the smaller
        model), cpu_latency_ms (``size_estimate.measure_latency_ms``, 1 thread),
        val_accuracy, test_accuracy, finetuned_val_accuracy, finetuned_test_accuracy.
    """
    from .pipeline import params_and_macs
    from .size_estimate import measure_latency_ms

    small = P.prune_channels(model.cpu().eval(), ratio, norm=norm).eval()
    sizes = params_and_macs(small, tuple(small.input_shape))
    row = {"ratio": ratio, "channels": conv_channels(small), "params": sizes["params"],
           "macs": sizes["macs"],
           "cpu_latency_ms": measure_latency_ms(small, num_threads=1, min_run_time_s=latency_s),
           **_accuracies(small, data)}
    _finetune(small, data, finetune_epochs, lr, batch_size, seed)
    row.update(_accuracies(small, data, "finetuned_"))
    return small, row


def structured_sweep(model: nn.Sequential, data, ratios: Sequence[float], *,
                     latency_repeats: int = 3, latency_s: float = 0.2, **kwargs) -> list[dict]:
    """``prune_structured`` at each ratio (ascending); one row each (see there).

    On a shared machine one latency measurement is noisy: the models are timed again in
    turn ``latency_repeats`` times and cpu_latency_ms is the smallest median seen.

    Raises:
        ValueError: if ratios is empty or holds a value outside [0, 1], or
            latency_repeats < 1.
    """
    from .size_estimate import measure_latency_ms

    if latency_repeats < 1:
        raise ValueError(f"latency_repeats={latency_repeats} should be >= 1")
    results = [prune_structured(model, data, r, latency_s=latency_s, **kwargs)
               for r in _check_values(ratios, "ratios")]
    for _ in range(latency_repeats - 1):
        for small, row in results:
            row["cpu_latency_ms"] = min(row["cpu_latency_ms"], measure_latency_ms(
                small, num_threads=1, min_run_time_s=latency_s))
    return [row for _, row in results]


def mcu_latency_ms(macs: int, clock_hz: float = NANO33BLE_CLOCK_HZ,
                   macs_per_cycle: float = CORTEX_M4_MACS_PER_CYCLE) -> float:
    """Estimated inference time on a microcontroller: macs / macs_per_cycle / clock_hz.

    Example: tiny_conv (336,000 MACs) at 0.5 MACs/cycle and 64 MHz: 672,000 cycles =
    10.5 ms. Ignores non-MAC work (requantization of every output, pooling, softmax).

    Raises:
        ValueError: if macs < 0 or clock_hz or macs_per_cycle <= 0.
    """
    if macs < 0 or clock_hz <= 0 or macs_per_cycle <= 0:
        raise ValueError(f"need macs >= 0, clock_hz > 0, macs_per_cycle > 0; got {macs}, "
                         f"{clock_hz}, {macs_per_cycle}")
    return macs / macs_per_cycle / clock_hz * 1e3


_PROFILE_LINE = re.compile(r"profile_us\s+(.*)")


def parse_profile(text: str) -> dict[str, float] | None:
    """Mean of each field over the ``profile_us ...`` lines the sketch prints (KWS_PROFILE 1).

    A line looks like ``profile_us capture=812 features=1520 invoke=9030 post=40
    dropped_strides=0`` (microseconds averaged over 50 inferences; see arduino/README.md).

    Returns:
        dict field -> mean over the lines (e.g. {"capture": 812.0, "invoke": 9030.0, ...}),
        or None if text has no such line.
    Raises:
        ValueError: if a profile line holds a field that is not ``name=number``.
    """
    values: dict[str, list[float]] = {}
    for line in text.splitlines():
        m = _PROFILE_LINE.search(line)
        if not m:
            continue
        for item in m.group(1).split():
            name, sep, number = item.partition("=")
            try:
                values.setdefault(name, []).append(float(number))
            except ValueError:
                raise ValueError(f"profile line {line.strip()!r}: field {item!r} is not "
                                 "name=number") from None
            if not sep:
                raise ValueError(f"profile line {line.strip()!r}: field {item!r} is not "
                                 "name=number")
    return {k: float(np.mean(v)) for k, v in values.items()} or None


# ---------------------------------------------------------------------------------------
# Weight sharing and TFLite Micro LUT compression
# ---------------------------------------------------------------------------------------

def _kmeans_1d(values: torch.Tensor, k: int, iterations: int = 30) -> torch.Tensor:
    """Centroids (k' <= k,) of 1-D values by Lloyd's algorithm from quantile starts."""
    centroids = torch.unique(torch.quantile(values, torch.linspace(0, 1, k, dtype=values.dtype)))
    for _ in range(iterations):
        nearest = (values[:, None] - centroids[None, :]).abs().argmin(1)
        sums = torch.zeros_like(centroids).index_add_(0, nearest, values)
        counts = torch.bincount(nearest, minlength=len(centroids)).to(values.dtype)
        moved = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        if torch.equal(moved, centroids):
            break
        centroids = moved
    return centroids


def cluster_weights(model: nn.Module, num_values: int,
                    layer_types: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
                    ) -> nn.Module:
    """Weight sharing: each output channel's weights take at most num_values distinct values.

    Per output channel (row of the weight), the nonzero weights are clustered by 1-D
    k-means into num_values - 1 centroids if the channel has zeros (zero stays exactly
    zero, so pruned weights stay pruned), else num_values; every weight becomes its
    centroid. int8 per-channel quantization then maps each channel to <= num_values
    integers, which LUT compression stores as ceil(log2(num_values))-bit indices.
    Pruning reparametrizations are made permanent first (``prune.remove_pruning_reparam``).

    Args:
        model: modified in place.
        num_values: distinct values per output channel, 2..128.
    Returns:
        the same model.
    Raises:
        ValueError: if num_values is not in 2..128.
    Source: Han et al. 2016 (arXiv:1510.00149), Sec. 3 (weight sharing by k-means).
    """
    if not 2 <= num_values <= 128:
        raise ValueError(f"num_values={num_values} should be in 2..128 (LUT indices are 1-7 bits)")
    P.remove_pruning_reparam(model)
    with torch.no_grad():
        for m in model.modules():
            if not isinstance(m, layer_types):
                continue
            w = m.weight.view(m.weight.shape[0], -1)  # (C_out, everything else)
            for row in w:
                nonzero = row != 0
                if not nonzero.any():
                    continue
                k = num_values - 1 if not nonzero.all() else num_values
                values = row[nonzero]
                centroids = _kmeans_1d(values, k)
                row[nonzero] = centroids[(values[:, None] - centroids[None, :]).abs().argmin(1)]
    return model


WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1}
"""Op name -> index of its weight input, the tensors ``lut_spec`` considers."""


def lut_spec(tflite: bytes, max_bitwidth: int = 7) -> tuple[list, list[dict]]:
    """A LUT compression spec for every constant int8 weight tensor that LUT can shrink.

    Per-channel tables along each tensor's quantized dimension (0 for CONV_2D and
    FULLY_CONNECTED, 3 = last for DEPTHWISE_CONV_2D); the index bit width is the smallest
    that holds the largest number of distinct values in one channel. A tensor is left out
    if it needs more than max_bitwidth bits or if compression would not make it smaller.

    Args:
        tflite: an int8 .tflite model.
        max_bitwidth: 1..7.
    Returns:
        (specs for ``tflite_micro.compression.compress``, rows: one per weight tensor with
        tensor (index), name, op, shape, distinct_max (per channel), index_bitwidth (None if
        left out), bytes (int8 data), lut_bytes (indices + value tables; None if left out)).
    Raises:
        ValueError: if max_bitwidth is not in 1..7.
    Source: tflite-micro ``compression/lut.py`` (index packing, value tables of
        2**bitwidth entries per channel) and ``spec_builder.py``.
    """
    from tflite_micro import compression
    from tflite_micro.tensorflow.lite.micro.compression import model_editor, spec

    if not 1 <= max_bitwidth <= 7:
        raise ValueError(f"max_bitwidth={max_bitwidth} should be in 1..7")
    graph = model_editor.read(bytes(tflite)).subgraphs[0]
    builder, rows, seen = compression.SpecBuilder(), [], set()
    for op in graph.operators:
        position = WEIGHT_OPS.get(op.opcode_name)
        if position is None or len(op.inputs) <= position or op.inputs[position] is None:
            continue
        tensor = op.inputs[position]
        if tensor.index in seen or tensor.buffer is None or not tensor.buffer.data:
            continue
        seen.add(tensor.index)
        array = tensor.array
        axis = tensor.quantization.axis if tensor.quantization is not None else None
        channels = (np.moveaxis(array, axis or 0, 0).reshape(array.shape[axis or 0], -1)
                    if axis is not None else array.reshape(1, -1))
        distinct = max(len(np.unique(c)) for c in channels)
        bits = max(1, math.ceil(math.log2(distinct)))
        lut_bytes = math.ceil(array.size * bits / 8) + len(channels) * 2 ** bits
        keep = bits <= max_bitwidth and lut_bytes < array.nbytes and array.dtype == np.int8
        if keep:
            mode = spec.PerChannel(axis) if axis is not None else spec.PerTensor()
            builder.add_tensor(0, tensor.index).with_lut(bits, mode)
        rows.append({"tensor": tensor.index, "name": tensor.name, "op": op.opcode_name,
                     "shape": tuple(int(s) for s in array.shape), "distinct_max": distinct,
                     "index_bitwidth": bits if keep else None, "bytes": int(array.nbytes),
                     "lut_bytes": lut_bytes if keep else None})
    return builder.build(), rows


def lut_compress(tflite: bytes, max_bitwidth: int = 7) -> tuple[bytes, list[dict]]:
    """TFLite Micro LUT compression of every weight tensor ``lut_spec`` selects.

    The result holds DECODE (custom op ``TFLM_DECODE``) operators that expand each
    compressed tensor into the arena right before the op that reads it: flash shrinks, the
    arena grows by the decompressed tensors alive at the peak (or put them in a separate
    buffer with the interpreter's ``alt_decompression_memory_size``). The pip package's
    Python interpreter (``tflite_micro.runtime``) runs such models; on a board the
    TFLM library must be built with compression enabled.

    Returns:
        (compressed .tflite bytes, the rows of ``lut_spec``).
    Raises:
        ValueError: if no tensor can be compressed (the message lists each tensor's
            distinct values per channel).
    """
    from tflite_micro import compression

    specs, rows = lut_spec(tflite, max_bitwidth)
    if not specs:
        raise ValueError("no weight tensor has few enough distinct values per channel for LUT "
                         f"compression (max_bitwidth={max_bitwidth}): "
                         f"{[(r['name'], r['distinct_max']) for r in rows]}; "
                         "use cluster_weights first")
    return bytes(compression.compress(tflite, specs)), rows


def tflm_ops(tflite: bytes) -> list[str]:
    """Op names of a model in execution order (builtins by name, custom ops by custom code)."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    return [op.custom_code or op.opcode_name
            for op in model_editor.read(bytes(tflite)).subgraphs[0].operators]


def zlib_bytes(tflite: bytes) -> int:
    """Size of the model after zlib (level 9): a rough bound on what an entropy coder of the
    zeros and repeated values could save (TFLite Micro has no such decoder)."""
    return len(zlib.compress(bytes(tflite), 9))


# ---------------------------------------------------------------------------------------
# Deploy: export, compress, verify in TFLite Micro
# ---------------------------------------------------------------------------------------

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
        dict with nonzero_params, int8_test (TFLM), tflite_bytes, arena_bytes, zlib_bytes;
        with lut_values also lut_tflite_bytes, lut_arena_bytes, lut_int8_test,
        lut_same_outputs (fraction of test clips whose int8 outputs are identical),
        lut_ops, lut_tensors (the ``lut_spec`` rows).
    """
    from pathlib import Path

    from . import export

    plain = P.remove_pruning_reparam(P.copy_model(model)).cpu().eval()
    if lut_values is not None:
        cluster_weights(plain, lut_values)
    rep = export.export(plain, cfg, data, out_dir, progress=progress)
    tflite = (Path(out_dir) / "model.tflite").read_bytes()
    row = {"nonzero_params": P.count_nonzero_parameters(plain), "int8_test": rep["int8_test"],
           "tflite_bytes": rep["tflite_bytes"], "arena_bytes": rep["arena_bytes"],
           "zlib_bytes": zlib_bytes(tflite)}
    if lut_values is None:
        return row
    compressed, tensors = lut_compress(tflite)
    (Path(out_dir) / "model_lut.tflite").write_bytes(compressed)
    reference = export.run_tflm(tflite, data.test_x)
    outputs = export.run_tflm(compressed, data.test_x)
    row.update({
        "lut_tflite_bytes": len(compressed),
        "lut_arena_bytes": export.arena_bytes(compressed),
        "lut_int8_test": float(np.mean(outputs.argmax(1) == data.test_y)) if len(outputs) else 0.0,
        "lut_same_outputs": float(np.mean((outputs == reference).all(1))) if len(outputs) else 1.0,
        "lut_ops": tflm_ops(compressed), "lut_tensors": tensors})
    return row
