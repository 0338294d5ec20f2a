"""Keyword-spotting models, in PyTorch, chosen by name from ``MODELS``.

Each model is a flat ``nn.Sequential`` of standard layers (plus ``SamePad2d`` for
TensorFlow's "SAME" padding), so the code that walks a model -- the Keras twin in
``kwslab.export``, channel surgery in ``kwslab.prune``, counting in ``kwslab.size_estimate``
-- sees one ordered list of layers and needs no model-specific cases.

Input: float32 features of shape (N, 1, T, F) = (N, 1, 49, 40) (a (N, T, F) tensor is
accepted too); output: logits of shape (N, C). Softmax is added only in the exported model.

References:
  1) tiny_conv: TensorFlow ``speech_commands/models.py`` ``create_tiny_conv_model`` and
     tflite-micro ``micro_speech`` (Warden 2018, arXiv:1804.03209).
  2) ds_cnn: Zhang et al. 2017, "Hello Edge: Keyword Spotting on Microcontrollers"
     (arXiv:1711.07128), DS-CNN-S; MLPerf Tiny ``keyword_spotting/keras_model.py``
     (Banbury et al. 2021, arXiv:2106.07597).
  3) tc_cnn: Choi et al. 2019, "Temporal Convolution for Real-time Keyword Spotting on
     Mobile Devices" (TC-ResNet, arXiv:1904.03814), as a flat sequence without the residual
     shortcuts (every layer a CONV_2D / DEPTHWISE_CONV_2D the deploy library registers).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class SamePad2d(nn.Module):
    """Zero padding that makes the next conv behave like TensorFlow's ``padding="SAME"``.

    Output size is ceil(in / stride); the total padding max((out - 1) * stride + k - in, 0)
    is split with the extra row/column at the bottom/right, as TensorFlow does. For a
    (10, 8) kernel with stride 2 on 49 x 40: out 25 x 20, pad rows 4 top + 5 bottom,
    columns 3 + 3.

    Source: TensorFlow ``tf.nn.convolution`` padding documentation.
    """

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] = 1):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)

    def pads(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) padding for an input of height x width."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        pad_h = max((math.ceil(height / sh) - 1) * sh + kh - height, 0)
        pad_w = max((math.ceil(width / sw) - 1) * sw + kw - width, 0)
        return (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads(x.shape[-2], x.shape[-1]))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class KWSModel(nn.Sequential):
    """A flat sequence of layers that also accepts (N, T, F) input."""

    input_shape: tuple[int, int]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)  # (N, T, F) -> (N, 1, T, F)
        return super().forward(x)


class TinyConv(KWSModel):
    """micro_speech's tiny_conv: one strided convolution and one fully connected layer.

        (N, 1, 49, 40) -> SamePad -> Conv2d 8 x (10, 8), stride 2 -> ReLU -> Dropout
        -> (N, 8, 25, 20) -> Flatten (N, 4000) -> Linear (N, C)

    Parameters: 8 * 80 + 8 = 648 conv, 4000 * C + C fully connected (16,652 for C = 4).
    int8 model about 19 KB; TFLM arena about 10 KB (input 1,960 + conv output 4,000 bytes).
    """

    def __init__(self, num_classes: int, input_shape: tuple[int, int] = (49, 40),
                 dropout: float = 0.5, channels: int = 8):
        kernel, stride = (10, 8), 2
        out_h, out_w = math.ceil(input_shape[0] / stride), math.ceil(input_shape[1] / stride)
        super().__init__(OrderedDict([
            ("pad1", SamePad2d(kernel, stride)),
            ("conv1", nn.Conv2d(1, channels, kernel, stride=stride)),
            ("relu1", nn.ReLU()),
            ("dropout1", nn.Dropout(dropout)),
            ("flatten", nn.Flatten()),
            ("fc", nn.Linear(channels * out_h * out_w, num_classes)),
        ]))
        self.input_shape = tuple(input_shape)


def separable_block(i: int, channels: int, kernel: int | tuple[int, int],
                    stride: int) -> list[tuple[str, nn.Module]]:
    """Depthwise-separable block ``i``: SamePad -> depthwise kernel (stride) -> BN -> ReLU
    -> pointwise 1 x 1 -> BN -> ReLU, channels in = out (Howard et al. 2017,
    arXiv:1704.04861). Layer names end in i (``dw{i}``, ``pw{i}``, ...), as pruning and
    export expect."""
    return [
        (f"pad_dw{i}", SamePad2d(kernel, stride)),
        (f"dw{i}", nn.Conv2d(channels, channels, kernel, stride=stride, groups=channels,
                             bias=False)),
        (f"bn_dw{i}", nn.BatchNorm2d(channels)),
        (f"relu_dw{i}", nn.ReLU()),
        (f"pw{i}", nn.Conv2d(channels, channels, 1, bias=False)),
        (f"bn_pw{i}", nn.BatchNorm2d(channels)),
        (f"relu_pw{i}", nn.ReLU()),
    ]


def pooled_classifier(channels: int, num_classes: int, pool: tuple[int, int],
                      dropout: float) -> list[tuple[str, nn.Module]]:
    """Dropout (2 * dropout) -> average pool over the whole (H, W) = pool map -> Flatten ->
    Linear (channels -> num_classes)."""
    return [
        ("dropout2", nn.Dropout(2 * dropout)),
        ("pool", nn.AvgPool2d(pool)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(channels, num_classes)),
    ]


class DSCNN(KWSModel):
    """DS-CNN-S (Hello Edge / MLPerf Tiny): a strided conv, then 4 depthwise-separable blocks.

        (N, 1, 49, 40) -> SamePad -> Conv2d 64 x (10, 4), stride 2 -> BN -> ReLU -> Dropout
        -> (N, 64, 25, 20) -> 4 x [SamePad -> depthwise 3 x 3 -> BN -> ReLU
                                  -> pointwise 64 x 1 x 1 -> BN -> ReLU]
        -> Dropout -> AvgPool (25, 20) -> (N, 64, 1, 1) -> Flatten -> Linear (N, C)

    Convolutions before BatchNorm have no bias (BatchNorm is folded into them on export).
    Parameters 23,180 for C = 12; int8 model.tflite 44,840 B, 31,840 B in the compact device
    form (``export.compact_tflite``); the 25 x 20 x 64 activations
    (32,000 bytes each, two live) make a TFLM arena of about 72 KB.
    """

    def __init__(self, num_classes: int, input_shape: tuple[int, int] = (49, 40),
                 dropout: float = 0.2, channels: int = 64, num_blocks: int = 4):
        if not 0 <= 2 * dropout < 1:
            raise ValueError(f"DSCNN dropout={dropout}: the layer before pooling drops "
                             f"2 * dropout, so dropout must be in [0, 0.5)")
        kernel, stride = (10, 4), 2
        out_h, out_w = math.ceil(input_shape[0] / stride), math.ceil(input_shape[1] / stride)
        layers: list[tuple[str, nn.Module]] = [
            ("pad1", SamePad2d(kernel, stride)),
            ("conv1", nn.Conv2d(1, channels, kernel, stride=stride, bias=False)),
            ("bn1", nn.BatchNorm2d(channels)),
            ("relu1", nn.ReLU()),
            ("dropout1", nn.Dropout(dropout)),
        ]
        for i in range(1, num_blocks + 1):
            layers += separable_block(i, channels, 3, 1)
        layers += pooled_classifier(channels, num_classes, (out_h, out_w), dropout)
        super().__init__(OrderedDict(layers))
        self.input_shape = tuple(input_shape)


class TCCNN(KWSModel):
    """Temporal convolutions (TC-ResNet-style, flat): the mel channels are the conv channels.

        (N, 1, 49, 40) -> Conv2d C x (1, 40) (all channels of a frame) -> BN -> ReLU
        -> (N, C, 49, 1) -> num_blocks x [SamePad -> depthwise (9, 1), stride 2 (time) in the
           first three blocks -> BN -> ReLU -> pointwise C x 1 x 1 -> BN -> ReLU]
        -> Dropout -> AvgPool (7, 1) -> (N, C, 1, 1) -> Flatten -> Linear (N, C_out)

    A 2-D DS-CNN slides its kernels over frequency as well as time; here each frame's 40
    channels are mixed at once and only time is convolved, as in TC-ResNet (Choi et al.
    2019, arXiv:1904.03814), without its residual adds so the model stays one flat sequence
    of ops TFLite Micro and the deploy library run. Activations are T x C (49 x 64 = 3,136
    int8 values), so the arena is 13 KB where DS-CNN's is 72 KB, and one 64-channel
    inference is about 0.37 M MACs (DS-CNN 10.6 M).

    Parameters for C = 64, 4 blocks, 12 classes: 2,560 + 128 (conv1, BN) +
    4 x (576 + 128 + 4,096 + 128) + 780 = 23,180, the same as DS-CNN-S. Measured on the
    shared subset (12 classes, seeds 0-2): int8 test in TFLite Micro 0.815 ± 0.002 (DS-CNN
    0.840 ± 0.005), 31,832 B on the board, arena 13,232 B, about 100 s of training per seed.
    """

    def __init__(self, num_classes: int, input_shape: tuple[int, int] = (49, 40),
                 dropout: float = 0.2, channels: int = 64, num_blocks: int = 4,
                 kernel: int = 9):
        if not 0 <= 2 * dropout < 1:
            raise ValueError(f"TCCNN dropout={dropout}: the layer before pooling drops "
                             f"2 * dropout, so dropout must be in [0, 0.5)")
        num_frames, num_channels = input_shape
        layers: list[tuple[str, nn.Module]] = [
            ("conv1", nn.Conv2d(1, channels, (1, num_channels), bias=False)),
            ("bn1", nn.BatchNorm2d(channels)),
            ("relu1", nn.ReLU()),
            ("dropout1", nn.Dropout(dropout)),
        ]
        frames = num_frames
        for i in range(1, num_blocks + 1):
            stride = 2 if i <= 3 else 1
            frames = math.ceil(frames / stride)
            # stride (s, s) on a width of 1 is stride (s, 1); TensorFlow's depthwise conv
            # takes only equal strides
            layers += separable_block(i, channels, (kernel, 1), stride)
        layers += pooled_classifier(channels, num_classes, (frames, 1), dropout)
        super().__init__(OrderedDict(layers))
        self.input_shape = tuple(input_shape)


def fold_batchnorm(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d):
    """Fold an eval-mode BatchNorm into the conv before it.

    w' = w * g / sqrt(var + eps) (per output channel), b' = (b - mean) * g / sqrt(var + eps) + beta.

    Args:
        weight: conv weight (C_out, C_in / groups, kh, kw).
        bias: (C_out,) or None (treated as 0).
    Returns:
        (weight', bias') float32 tensors of the same shapes (bias always present).
    Source: Jacob et al. 2018 (arXiv:1712.05877), Sec. 3.2.
    """
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    factor = gamma / std
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    return weight * factor.reshape(-1, 1, 1, 1), (b - bn.running_mean) * factor + beta


def layer_input_shapes(model: nn.Sequential, input_shape) -> list[tuple[int, ...]]:
    """Input shape of every layer of a flat model, from a dry run at batch size 1.

    Args:
        model: a flat kwslab model.
        input_shape: (T, F) = (49, 40).
    Returns:
        One shape per layer, without the batch axis: (C, H, W) before Flatten, (features,)
        after; e.g. tiny_conv: (1, 49, 40), (1, 58, 46), (8, 25, 20), ... (4000,).
    """
    shapes = []
    x = torch.zeros(1, 1, *input_shape)
    with torch.no_grad():
        for layer in model:
            shapes.append(tuple(x.shape[1:]))
            x = layer(x)
    return shapes


MODELS: dict[str, type[KWSModel]] = {"tiny_conv": TinyConv, "ds_cnn": DSCNN, "tc_cnn": TCCNN}
"""Model registry: name -> class taking (num_classes, input_shape, dropout)."""


def build_model(name: str, num_classes: int, input_shape: tuple[int, int] = (49, 40),
                dropout: float | None = None, channels: int | None = None) -> KWSModel:
    """Build a model by registry name.

    Args:
        name: a key of MODELS ("tiny_conv", "ds_cnn", "tc_cnn").
        num_classes: C, the output logits.
        input_shape: (T, F) = (49, 40) features per clip.
        dropout: dropout probability; None uses the model's default (tiny_conv 0.5,
            ds_cnn and tc_cnn 0.2; they drop 2 * dropout before pooling).
        channels: output channels of every conv; None uses the model's default (tiny_conv 8,
            ds_cnn and tc_cnn 64).
    Returns:
        The model, mapping float32 (N, 1, T, F) (or (N, T, F)) to logits (N, C).
    Raises:
        KeyError: if name is not in MODELS (the message lists the names).
        ValueError: for a DS-CNN / TC-CNN dropout outside [0, 0.5), or channels < 1.
    """
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    kwargs = {} if dropout is None else {"dropout": dropout}
    if channels is not None:
        if channels < 1:
            raise ValueError(f"channels={channels} should be >= 1")
        kwargs["channels"] = int(channels)
    return MODELS[name](num_classes, input_shape=input_shape, **kwargs)


def model_from_config(cfg) -> KWSModel:
    """``build_model`` with a ``kwslab.config.Config``'s model name, width, dropout, classes
    and feature shape (untrained; seed torch first for repeatable weights)."""
    return build_model(cfg.model.name, cfg.data.num_classes, cfg.frontend.feature_shape,
                       cfg.model.dropout, cfg.model.channels)
