"""How big and how slow is a model? Parameters, flash and RAM bytes, MACs/FLOPs, latency.

Everything here is computed from the PyTorch model alone, before any export, by walking its
modules (parameters, flash) or by a dry run at batch size 1 with forward hooks (activation
sizes, RAM, MACs). The numbers predict what the int8 ``.tflite`` model will need on a
microcontroller: flash holds the model's weights (plus the flatbuffer that describes it),
RAM holds the live activations (the TFLite Micro arena).

Conventions, stated once for the whole module:
  * Sizes are in bytes (``*_bytes``), never bits. An element takes ``BYTES_PER_ELEMENT[dtype]``
    bytes: 1 for int8, 4 for float32.
  * MACs (multiply-accumulates) are the headline cost, because Cortex-M int8 kernels do MACs.
    FLOPs are ``flops = 2 * macs`` (one multiply + one add); bias adds, BatchNorm, ReLU and
    pooling are not counted. This is what ``torch.utils.flop_counter.FlopCounterMode``
    counts for convolutions and matrix multiplies.
  * The deployed model is the exported int8 model: BatchNorm is folded into the convolution
    before it, ReLU is fused into that convolution, Dropout disappears, Flatten becomes a
    RESHAPE that reuses its input buffer, and "SAME" padding (``SamePad2d``) is done inside
    the next convolution. These layers cost no MACs and allocate no activation buffer.

Worked example, tiny_conv with 4 classes (silence, unknown, yes, no), input 1 x 49 x 40:
  parameters 8 * 10 * 8 + 8 = 648 (conv) + 4000 * 4 + 4 = 16,004 (fc) -> 16,652;
  MACs 25 * 20 * 8 * (1 * 10 * 8) = 320,000 (conv) + 4000 * 4 = 16,000 (fc) -> 336,000;
  int8 peak RAM: input 49 * 40 = 1,960 + conv output 25 * 20 * 8 = 4,000 -> 5,960 bytes.

References:
  1) Banbury et al. 2021, "MLPerf Tiny Benchmark" (arXiv:2106.07597) and Zhang et al. 2017,
     "Hello Edge" (arXiv:1711.07128), Sec. 3: memory and operations of KWS networks.
  2) Jacob et al. 2018 (arXiv:1712.05877), Sec. 2-3: int8 weights, int32 bias, BatchNorm
     folding; TFLite 8-bit quantization spec (per-channel conv weights, int32 bias).
  3) TFLite flatbuffer schema ``tensorflow/lite/schema/schema.fbs``: ``QuantizationParameters``
     stores ``scale: [float]`` and ``zero_point: [long]`` per channel.
  4) TFLite Micro ``GreedyMemoryPlanner``: the arena holds the tensors live at the same time.
  5) ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per MAC, no bias),
     ``torch.utils.benchmark.Timer`` (latency).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from kwslab.models import SamePad2d

BYTES_PER_ELEMENT: dict[str, int] = {"int8": 1, "float32": 4}
"""Bytes per stored element for the two deployed number formats."""

BIAS_BYTES = 4
"""An int8 model keeps its bias in int32: 4 bytes per output channel."""

QPARAM_BYTES_PER_CHANNEL = 4 + 8
"""One per-channel quantization entry in a .tflite file: float32 scale + int64 zero_point."""

FLATBUFFER_BASE_BYTES = 1_140
"""Fixed .tflite overhead: model header, input/output tensors, RESHAPE/SOFTMAX ops, metadata.

Calibrated, with FLATBUFFER_LAYER_BYTES, on int8 files made by ``kwslab.export`` (Keras twin,
TensorFlow 2.21 TFLiteConverter) from tiny_conv, 4 classes (19,216 bytes) and ds_cnn,
12 classes (45,112 bytes): the estimate is within 0.1 % of both; float32 files come out
0.4 % (68,568) and 1.0 % (96,072) below it. Tensor names are part of this overhead, so a
converter or twin that names tensors differently moves it by a few hundred bytes.
"""

FLATBUFFER_LAYER_BYTES = 550
"""Per conv/linear layer .tflite overhead: operator, 3 tensor tables (weight, bias, output)
with their names, shapes, buffers and the output's quantization. See FLATBUFFER_BASE_BYTES."""

IN_PLACE_LAYERS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.Dropout, nn.Flatten, nn.Unflatten, nn.Identity,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.ZeroPad2d, nn.ConstantPad2d, SamePad2d,
)
"""Layers whose output needs no new buffer in the deployed model (see the module docstring:
fused into the conv before or after them, removed, or a reshape of the same bytes)."""

BOARDS: dict[str, dict[str, int]] = {
    "nano33ble": {"flash_bytes": 1_048_576, "ram_bytes": 262_144},
    "psoc62": {"flash_bytes": 2_097_152, "ram_bytes": 1_048_576},
}
"""Memory of the course boards, in bytes (the whole chip; firmware, audio buffers and the
frontend also need some).

* nano33ble: Arduino Nano 33 BLE (Sense), nRF52840: 1 MB flash, 256 KB RAM.
* psoc62: CY8CPROTO-062-4343W, PSoC 62 CY8C624ABZI-S2D44: 2048 KB flash, 1024 KB SRAM.
"""


# --------------------------------------------------------------------------------------------
# Parameters and flash


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameter elements (weights and biases) of a model.

    Buffers are not parameters: BatchNorm's ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` are not counted. A frozen parameter (``requires_grad=False``)
    counts only when ``trainable_only`` is False. Example: tiny_conv with 4 classes has
    8 * 10 * 8 + 8 = 648 conv + 4000 * 4 + 4 = 16,004 fc = 16,652 parameters.

    Hints: 1) ``model.parameters()`` yields every parameter once (not buffers);
    2) ``p.numel()`` is its number of elements; 3) ``p.requires_grad`` says if it trains.

    Args:
        model: any ``nn.Module``.
        trainable_only: count only parameters with ``requires_grad=True``.
    Returns:
        the number of parameter elements, an int >= 0.
    Source: ``torch.nn.Module.parameters`` documentation.
    """
    ### BEGIN SOLUTION
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
    ### END SOLUTION


def flash_bytes(model: nn.Module, bytes_per_weight: int) -> int:
    """Bytes to store every parameter (weights and biases) at ``bytes_per_weight`` each.

    The simplest flash estimate: all parameters (trainable or not; buffers excluded), each
    stored in the same format, no BatchNorm folding and no file overhead. Example: tiny_conv
    with 4 classes, 16,652 parameters: 66,608 bytes in float32 (4 bytes), 16,652 in int8.

    Args:
        model: any ``nn.Module``.
        bytes_per_weight: bytes per element, > 0 (``BYTES_PER_ELEMENT["int8"]`` = 1).
    Returns:
        bytes, an int.
    Raises:
        ValueError: if bytes_per_weight is not a positive integer.
    """
    if isinstance(bytes_per_weight, bool) or not isinstance(bytes_per_weight, int) \
            or bytes_per_weight <= 0:
        raise ValueError(f"bytes_per_weight must be a positive int (1 for int8, 4 for float32),"
                         f" got {bytes_per_weight!r}")
    ### BEGIN SOLUTION
    return count_parameters(model, trainable_only=False) * bytes_per_weight
    ### END SOLUTION


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs of the model's ``nn.Conv2d`` and ``nn.Linear`` layers, in order.

    These are the layers that keep weights in the deployed model; BatchNorm layers are folded
    into them.
    """
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def estimate_flash_bytes(model: nn.Module, dtype: str = "int8",
                         base_overhead_bytes: int = FLATBUFFER_BASE_BYTES,
                         layer_overhead_bytes: int = FLATBUFFER_LAYER_BYTES) -> int:
    """Estimate the size of the exported ``.tflite`` model, in bytes.

    Counts, for each ``nn.Conv2d`` / ``nn.Linear`` layer with C = ``weight.shape[0]`` output
    channels (``weighted_layers``):
      * int8: weights at 1 byte each; a bias of C int32 values (4 bytes each; BatchNorm
        folding creates it when the layer has none); per-channel quantization parameters
        for the weight tensor and for the bias tensor, C entries each of
        ``QPARAM_BYTES_PER_CHANNEL`` = 12 bytes (float32 scale + int64 zero_point).
      * float32: weights and the C bias values at 4 bytes each; no quantization parameters.
      * both: ``layer_overhead_bytes`` per layer, plus ``base_overhead_bytes`` once (the
        flatbuffer's tables, names and metadata; see FLATBUFFER_BASE_BYTES).
    BatchNorm parameters are not counted: they vanish into the folded weights and bias.
    Set both overheads to 0 to get the tensor data alone.

    Worked example, tiny_conv, 4 classes, int8: weights 640 + 16,000 = 16,640; biases
    (8 + 4) * 4 = 48; qparams 2 * (8 + 4) * 12 = 288; overhead 1,140 + 2 * 550 = 2,240
    -> 19,216 bytes (the exported file: 19,216).

    Hints: 1) loop over ``weighted_layers(model)``; 2) ``m.weight.numel()`` and
    ``m.weight.shape[0]``; 3) the bias is counted whether or not ``m.bias`` is None.

    Args:
        model: a model whose weights live in Conv2d / Linear layers (BatchNorm folded).
        dtype: "int8" or "float32".
        base_overhead_bytes: fixed flatbuffer overhead, >= 0.
        layer_overhead_bytes: flatbuffer overhead per conv/linear layer, >= 0.
    Returns:
        estimated .tflite size in bytes, an int.
    Raises:
        ValueError: if dtype is unknown or an overhead is negative.
    Source: TFLite 8-bit quantization spec; ``schema.fbs`` ``QuantizationParameters``;
    Jacob et al. 2018 (arXiv:1712.05877) Sec. 3.2 (BatchNorm folding).
    """
    if dtype not in BYTES_PER_ELEMENT:
        raise ValueError(f"dtype must be one of {sorted(BYTES_PER_ELEMENT)}, got {dtype!r}")
    if base_overhead_bytes < 0 or layer_overhead_bytes < 0:
        raise ValueError(f"overheads must be >= 0, got base_overhead_bytes="
                         f"{base_overhead_bytes}, layer_overhead_bytes={layer_overhead_bytes}")
    layers = weighted_layers(model)
    ### BEGIN SOLUTION
    total = base_overhead_bytes + layer_overhead_bytes * len(layers)
    for _, m in layers:
        weights, channels = m.weight.numel(), m.weight.shape[0]
        if dtype == "int8":
            total += weights + BIAS_BYTES * channels + 2 * QPARAM_BYTES_PER_CHANNEL * channels
        else:
            total += 4 * (weights + channels)
    return total
    ### END SOLUTION


# --------------------------------------------------------------------------------------------
# Activations and RAM


@dataclass(frozen=True)
class ActivationSize:
    """One layer's input and output tensors in a dry run at batch size 1.

    ``allocates`` is False for the layers of ``IN_PLACE_LAYERS``, whose output reuses a buffer
    in the deployed model.
    """

    name: str
    """Module name in ``model.named_modules()``, e.g. "conv1"."""
    kind: str
    """Module class name, e.g. "Conv2d"."""
    input_shape: tuple[int, ...]
    """Shape of the layer's (first) input, batch axis included, e.g. (1, 1, 58, 46)."""
    output_shape: tuple[int, ...]
    """Shape of the layer's output, batch axis included, e.g. (1, 8, 25, 20)."""
    bytes_per_element: int
    allocates: bool

    @property
    def input_elements(self) -> int:
        return math.prod(self.input_shape)

    @property
    def output_elements(self) -> int:
        return math.prod(self.output_shape)

    @property
    def input_bytes(self) -> int:
        return self.input_elements * self.bytes_per_element

    @property
    def output_bytes(self) -> int:
        return self.output_elements * self.bytes_per_element


def _example_shape(model: nn.Module, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    """input_shape without the batch axis; defaults to (1, *model.input_shape)."""
    if input_shape is None:
        if not hasattr(model, "input_shape"):
            raise ValueError(f"{type(model).__name__} has no input_shape attribute; pass "
                             "input_shape, the shape of one example without the batch axis")
        input_shape = (1, *model.input_shape)
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"input_shape must be positive sizes, got {tuple(input_shape)}")
    return shape


def _leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every module without children, in ``named_modules()`` order; a model
    that is itself a leaf (a bare ``nn.Conv2d``) is its own only leaf, named ""."""
    if next(model.children(), None) is None:
        return [("", model)]
    return [(name, m) for name, m in model.named_modules()
            if name and next(m.children(), None) is None]


def _record(name: str, module: nn.Module, inputs: tuple, output: torch.Tensor,
            bytes_per_element: int) -> ActivationSize:
    """The ActivationSize of one layer call, from a forward hook's (inputs, output)."""
    return ActivationSize(name=name, kind=type(module).__name__,
                          input_shape=tuple(inputs[0].shape), output_shape=tuple(output.shape),
                          bytes_per_element=bytes_per_element,
                          allocates=not isinstance(module, IN_PLACE_LAYERS))


def activation_sizes(model: nn.Module, input_shape: Sequence[int] | None = None,
                     bytes_per_element: int = 1) -> list[ActivationSize]:
    """Record every leaf layer's input and output shape in one forward pass at batch size 1.

    The model runs in eval mode under ``torch.no_grad()`` on zeros of shape
    (1, *input_shape); each leaf module (one with no children) that is called adds one
    ``ActivationSize`` in call order, made by ``_record(name, module, inputs, output,
    bytes_per_element)``. Leaves inside nested blocks count, containers do not; a leaf
    called twice gives two records; a model that is itself a single leaf (a bare
    ``nn.Linear``) gives one record named "" (its name in ``named_modules()``). The model's
    train/eval mode is restored afterwards, and no hook is left on it, also when the forward
    pass raises (the error propagates).

    Example: tiny_conv on (1, 49, 40) gives pad1 (1,1,49,40)->(1,1,58,46), conv1
    ->(1,8,25,20), relu1, dropout1, flatten ->(1,4000), fc ->(1,4).

    Hints: 1) ``module.register_forward_hook(fn)`` calls ``fn(module, inputs, output)`` after
    each forward and returns a handle; 2) ``_leaf_modules(model)`` gives (name, module)
    pairs; bind each hook to its name (``functools.partial``), a plain closure in a loop
    sees only the last name;
    3) remove every handle afterwards (``handle.remove()``), even if the forward fails
    (``try``/``finally``).

    Args:
        model: any module that takes one tensor.
        input_shape: shape of one example without the batch axis, e.g. (1, 49, 40);
            default (1, *model.input_shape).
        bytes_per_element: 1 for int8, 4 for float32 (``BYTES_PER_ELEMENT``).
    Returns:
        list of ActivationSize, one per leaf-module call, in call order.
    Raises:
        ValueError: if input_shape is missing or not positive, or bytes_per_element <= 0.
    Source: ``torch.nn.Module.register_forward_hook`` documentation.
    """
    shape = _example_shape(model, input_shape)
    if bytes_per_element <= 0:
        raise ValueError(f"bytes_per_element must be > 0 (1 int8, 4 float32), "
                         f"got {bytes_per_element}")
    param = next(model.parameters(), None)
    x = torch.zeros((1, *shape), device=param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()
    sizes: list[ActivationSize] = []
    try:
        ### BEGIN SOLUTION
        def hook(module, inputs, output, name):
            sizes.append(_record(name, module, inputs, output, bytes_per_element))

        handles = [m.register_forward_hook(functools.partial(hook, name=name))
                   for name, m in _leaf_modules(model)]
        try:
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
        ### END SOLUTION
    finally:
        model.train(was_training)
    return sizes


def _check_sizes(sizes: Sequence[ActivationSize]) -> None:
    if len(sizes) == 0:
        raise ValueError("sizes is empty; pass the list returned by activation_sizes(model, ...)")


def ram_naive_bytes(sizes: Sequence[ActivationSize]) -> int:
    """RAM if every tensor of the run had its own buffer: the input plus every layer's output.

    No buffer is reused and no layer is fused (``allocates`` is ignored). Example, tiny_conv,
    4 classes, int8: input 1,960 + pad 58 * 46 = 2,668 + conv 4,000 + relu 4,000 + dropout
    4,000 + flatten 4,000 + fc 4 -> 20,632 bytes.

    Args:
        sizes: the list returned by ``activation_sizes``, non-empty, in call order.
    Returns:
        bytes, an int.
    Raises:
        ValueError: if sizes is empty.
    """
    _check_sizes(sizes)
    ### BEGIN SOLUTION
    return sizes[0].input_bytes + sum(s.output_bytes for s in sizes)
    ### END SOLUTION


def ram_peak_bytes(sizes: Sequence[ActivationSize]) -> int:
    """Peak bytes of activations live at once when a sequential model runs (batch size 1).

    Rule: a layer that allocates (``s.allocates``) reads one buffer and writes a new one, so
    while it runs both are live: its cost is (bytes of the current buffer) + (its output
    bytes); then its output becomes the current buffer and the input buffer is freed. The
    current buffer starts as the model input (``sizes[0].input_bytes``). Layers that do not
    allocate (ReLU, Dropout, Flatten, padding, folded BatchNorm) change nothing: note that
    the current buffer is NOT the padded tensor a SamePad2d hands to the next conv. The
    peak is the largest cost (at least the input alone). TFLite Micro's arena is about this
    peak plus a few KB of tensor bookkeeping and per-channel kernel data.

    Examples, int8: tiny_conv 1,960 + 4,000 = 5,960 (arena 9,648 measured); ds_cnn
    2 * 25 * 20 * 64 = 64,000 (arena 72,224 measured). estimate_tflm_arena_bytes models the
    rest (RESHAPE copies, per-channel data, per-op structs).

    Args:
        sizes: the list returned by ``activation_sizes``, non-empty, in call order.
    Returns:
        bytes, an int.
    Raises:
        ValueError: if sizes is empty.
    Source: TFLite Micro ``GreedyMemoryPlanner``; MLPerf Tiny (arXiv:2106.07597) Sec. 3.
    """
    _check_sizes(sizes)
    ### BEGIN SOLUTION
    current = peak = sizes[0].input_bytes
    for s in sizes:
        if s.allocates:
            peak = max(peak, current + s.output_bytes)
            current = s.output_bytes
    return peak
    ### END SOLUTION


TFLM_ARENA_BASE_BYTES = 568
"""Fixed TFLite Micro arena cost (interpreter, graph and allocator structs), bytes."""
TFLM_ARENA_OP_BYTES = 254
"""Arena bytes per op (node, registration, per-tensor runtime structs), bytes."""
TFLM_ARENA_CHANNEL_BYTES = 8
"""Arena bytes per conv output channel: an int32 output multiplier and an int32 shift."""


def estimate_tflm_arena_bytes(model: nn.Module, input_shape: Sequence[int] | None = None) -> int:
    """Estimate of TFLite Micro's tensor arena for the int8 export of a kwslab model.

    Not graded, and it calls no student function: it models what the converter and TFLM
    do, where ``ram_peak_bytes`` is the idealised rule.

    arena = peak + 8 * (conv output channels) + 254 * ops + 568, where the peak follows the
    ram_peak_bytes rule with two TFLM facts: a Flatten of a tensor with H * W > 1 becomes a
    RESHAPE op whose output is a copy (TFLM does not alias it), and the SOFTMAX op writes
    its own C-byte output. A Flatten of a (C, 1, 1) tensor disappears in conversion.
    Calibrated with ``kwslab.export.arena_bytes`` (TFLM's own allocation total) on tiny_conv
    (4 classes; 8, 6, 4 channels: 9,648 / 7,664 / 5,616 bytes) and ds_cnn (12 classes; 64 and
    32 channels: 72,224 / 37,920 bytes): all within 0.5 %. Example, tiny_conv: peak = conv
    output 4,000 + its RESHAPE copy 4,000 = 8,000; + 8 * 8 + 254 * 4 ops + 568 = 9,648.

    Args:
        model: a kwslab model (flat nn.Sequential).
        input_shape: one example without batch axis, default (1, *model.input_shape).
    Returns:
        bytes, an int.
    Source: tflite-micro ``micro_allocator.cc``, ``greedy_memory_planner.cc``,
    ``kernels/conv_common.cc`` (per-channel multiplier/shift), ``kernels/reshape.cc``.
    """
    shape = _example_shape(model, input_shape)
    events: list[tuple[str, int, int]] = []  # (kind, output bytes, spatial size of input)
    hooks = []
    for _, layer in _leaf_modules(model):
        def hook(mod, inputs, output):
            x = inputs[0]
            spatial = int(x[0, 0].numel()) if x.dim() == 4 else 1
            events.append((type(mod).__name__, int(output[0].numel()), spatial))
        hooks.append(layer.register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(1, *shape))
    finally:
        for h in hooks:
            h.remove()
    current = peak = int(np.prod(shape))
    ops = channels = 0
    for kind, out_bytes, spatial in events:
        allocates = kind in ("Conv2d", "Linear", "AvgPool2d", "MaxPool2d") or (kind == "Flatten" and spatial > 1)
        if allocates:
            peak = max(peak, current + out_bytes)
            current = out_bytes
            ops += 1
    for _, layer in _leaf_modules(model):
        if isinstance(layer, nn.Conv2d):
            channels += layer.out_channels
    peak = max(peak, current + int(out[0].numel()))  # SOFTMAX
    ops += 1
    return peak + TFLM_ARENA_CHANNEL_BYTES * channels + TFLM_ARENA_OP_BYTES * ops + TFLM_ARENA_BASE_BYTES


# --------------------------------------------------------------------------------------------
# MACs and FLOPs


def layer_macs(module: nn.Module, input_shape: Sequence[int], output_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one layer call, for the whole batch in the shapes.

    * ``nn.Conv2d``: output elements * (in_channels / groups) * kh * kw. Each output value
      sums over its group's input channels and the kernel window; a depthwise conv
      (groups = in_channels) therefore costs out_elements * kh * kw.
    * ``nn.Linear``: output elements * in_features (in * out for one example).
    * every layer without weights (ReLU, Dropout, Flatten, padding, AvgPool2d, ...): 0.
      AvgPool2d's adds (one per input element) and ReLU's max are not MACs.
    * BatchNorm: 0, it is folded into the conv before it.
    Biases add no MACs.

    Examples: tiny_conv conv1, output (1, 8, 25, 20), kernel 10 x 8, 1 input channel:
    4,000 * 1 * 80 = 320,000. ds_cnn dw1, output (1, 64, 25, 20), 3 x 3, groups 64:
    32,000 * 1 * 9 = 288,000.

    Hints: ``module.in_channels``, ``module.groups``, ``module.kernel_size`` (a tuple),
    ``module.in_features``; ``math.prod(output_shape)``.

    Args:
        module: the layer.
        input_shape: its input's shape, batch axis included.
        output_shape: its output's shape, batch axis included.
    Returns:
        MACs, an int >= 0.
    Raises:
        TypeError: for a layer with parameters that this function does not know (so its cost
            is never silently 0).
    Source: Zhang et al. 2017 (arXiv:1711.07128) Sec. 3.3 (DS-CNN operations);
    Howard et al. 2017, MobileNets (arXiv:1704.04861) Sec. 3.1.
    """
    known = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)
    if not isinstance(module, known) and next(module.parameters(recurse=False), None) is not None:
        raise TypeError(f"layer_macs does not know {type(module).__name__}, a layer with "
                        f"parameters; known: Conv2d, Linear, BatchNorm, parameter-free layers")
    ### BEGIN SOLUTION
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return math.prod(output_shape) * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return math.prod(output_shape) * module.in_features
    return 0
    ### END SOLUTION


def count_macs(model: nn.Module, input_shape: Sequence[int] | None = None
               ) -> tuple[list[tuple[str, int]], int]:
    """MACs of one inference at batch size 1, per layer and in total.

    Runs ``activation_sizes`` for the shapes and ``layer_macs`` on each recorded layer.

    Example: tiny_conv, 4 classes: [("pad1", 0), ("conv1", 320000), ("relu1", 0),
    ("dropout1", 0), ("flatten", 0), ("fc", 16000)], 336,000.

    Hints: ``dict(model.named_modules())[s.name]`` gives the module of a record ``s``.

    Args:
        model: a model (``activation_sizes`` rules).
        input_shape: one example without the batch axis; default (1, *model.input_shape).
    Returns:
        (per_layer, total): per_layer is a list of (layer name, MACs) in call order, one
        entry per leaf-layer call; total is their sum.
    """
    shape = _example_shape(model, input_shape)
    ### BEGIN SOLUTION
    modules = dict(model.named_modules())
    per_layer = [(s.name, layer_macs(modules[s.name], s.input_shape, s.output_shape))
                 for s in activation_sizes(model, shape)]
    return per_layer, sum(macs for _, macs in per_layer)
    ### END SOLUTION


def count_flops(model: nn.Module, input_shape: Sequence[int] | None = None) -> int:
    """FLOPs of one inference at batch size 1: ``flops = 2 * macs`` (module convention).

    A MAC is one multiply and one add, 2 FLOPs; bias adds and other elementwise ops are not
    counted, as in ``torch.utils.flop_counter.FlopCounterMode``. Example: tiny_conv,
    4 classes: 2 * 336,000 = 672,000.

    Args:
        model, input_shape: as in ``count_macs``.
    Returns:
        FLOPs, an int.
    """
    ### BEGIN SOLUTION
    return 2 * count_macs(model, input_shape)[1]
    ### END SOLUTION


# --------------------------------------------------------------------------------------------
# Latency, reports, boards


def measure_latency_ms(model: nn.Module, input_shape: Sequence[int] | None = None,
                       device: str = "cpu", num_threads: int = 1,
                       min_run_time_s: float = 0.2) -> float:
    """Median wall time of one forward pass at batch size 1, in milliseconds.

    Uses ``torch.utils.benchmark.Timer.blocked_autorange`` (warm-up, then blocks of runs
    for at least ``min_run_time_s``; CUDA is synchronized). A laptop or Colab CPU is 10-100x
    faster than a Cortex-M4, so compare models with it, don't predict device latency.
    The model is moved to ``device`` and put in eval mode.

    Args:
        model: the model.
        input_shape: one example without the batch axis; default (1, *model.input_shape).
        device: "cpu" or "cuda"; "cuda" falls back to "cpu" when no GPU is available.
        num_threads: CPU threads torch may use while timing (1 mimics a microcontroller).
        min_run_time_s: total measuring time, > 0.
    Returns:
        median latency in ms.
    Raises:
        ValueError: if device is not "cpu"/"cuda", num_threads < 1 or min_run_time_s <= 0.
    Source: ``torch.utils.benchmark`` documentation.
    """
    from torch.utils import benchmark

    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if num_threads < 1 or min_run_time_s <= 0:
        raise ValueError(f"need num_threads >= 1 and min_run_time_s > 0, got {num_threads}, "
                         f"{min_run_time_s}")
    if device == "cuda" and not torch.cuda.is_available():
        device = "cpu"
    shape = _example_shape(model, input_shape)
    model = model.to(device).eval()
    x = torch.zeros((1, *shape), device=device)
    timer = benchmark.Timer(stmt="with torch.no_grad(): model(x)",
                            globals={"model": model, "x": x, "torch": torch},
                            num_threads=num_threads)
    return timer.blocked_autorange(min_run_time=min_run_time_s).median * 1e3


def size_report(model: nn.Module, input_shape: Sequence[int] | None = None,
                dtype: str = "int8") -> dict[str, Any]:
    """Parameters, flash, RAM and MACs of a model in one dict (calls the functions above).

    Keys: ``dtype``, ``params``, ``flash_bytes`` (``estimate_flash_bytes``),
    ``ram_peak_bytes``, ``ram_naive_bytes``, ``macs``, ``flops``.
    """
    flash = estimate_flash_bytes(model, dtype)  # raises ValueError on an unknown dtype
    sizes = activation_sizes(model, input_shape, BYTES_PER_ELEMENT[dtype])
    macs = count_macs(model, input_shape)[1]
    return {"dtype": dtype, "params": count_parameters(model), "flash_bytes": flash,
            "ram_peak_bytes": ram_peak_bytes(sizes), "ram_naive_bytes": ram_naive_bytes(sizes),
            "macs": macs, "flops": 2 * macs}


def fits(report: dict[str, Any], board: str | dict[str, int]) -> dict[str, Any]:
    """How much of a board's flash and RAM a model takes.

    Args:
        report: a dict with ``flash_bytes`` and ``ram_peak_bytes`` (``size_report``).
        board: a key of ``BOARDS`` or a dict with ``flash_bytes`` and ``ram_bytes``.
    Returns:
        {"flash_percent": float, "ram_percent": float, "fits": bool}; percents of the whole
        chip, fits = both <= 100.
    Raises:
        KeyError: for an unknown board name or a report without the two keys.
    """
    if isinstance(board, str):
        if board not in BOARDS:
            raise KeyError(f"unknown board {board!r}; choose one of {sorted(BOARDS)}")
        board = BOARDS[board]
    for key in ("flash_bytes", "ram_peak_bytes"):
        if key not in report:
            raise KeyError(f"report has no {key!r}; make it with size_report(model)")
    flash_percent = 100.0 * report["flash_bytes"] / board["flash_bytes"]
    ram_percent = 100.0 * report["ram_peak_bytes"] / board["ram_bytes"]
    return {"flash_percent": flash_percent, "ram_percent": ram_percent,
            "fits": flash_percent <= 100.0 and ram_percent <= 100.0}


# ----------------------------------------------------------------------------- microcontroller latency (not graded)


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
