"""Quantization: qparams, (fake) quantize, minifloat, post-training quantization and QAT.

The lab simulates integer inference in float32 ("fake quantization"): a tensor is mapped
onto an integer grid and straight back, so the model runs in PyTorch while seeing exactly
the rounding and clipping an int8 kernel on the device would see.

Numeric spec (every function and test in this module follows it):

* Affine mapping, TFLite convention: ``real = (q - zero_point) * scale``;
  ``q = clamp(round(real / scale) + zero_point, quant_min, quant_max)``.
* Integers are signed. ``quant_range(num_bits)`` is the full range
  ``[-2**(num_bits-1), 2**(num_bits-1) - 1]`` (int8: [-128, 127]);
  ``quant_range(num_bits, narrow_range=True)`` drops the lowest code,
  ``[-(2**(num_bits-1) - 1), 2**(num_bits-1) - 1]`` (int8: [-127, 127]).
* Rounding is ``torch.round``, round half to even (0.5 -> 0, 1.5 -> 2, -2.5 -> -2), of
  ``x / scale`` alone; zero_point is added after rounding. This is what
  ``torch.fake_quantize_per_tensor_affine`` computes (``zero_point + nearbyint(x *
  inv_scale)``) and the order of TFLite's reference quantize kernel (which rounds ties away
  from zero instead). ``torch.quantize_per_tensor`` on x86 (FBGEMM) rounds ``x / scale +
  zero_point`` instead: the two differ only at an exact tie with an odd zero_point, e.g.
  x / scale = 0.5, zero_point 1 -> round(0.5) + 1 = 1 here, round(1.5) = 2 there. Rounding
  first keeps the grid symmetric about zero_point (x and -x get codes zero_point +- k), so
  it is the rule here.
* Asymmetric (activations, per-tensor): the range is first widened to include 0
  (``x_min = min(x_min, 0)``, ``x_max = max(x_max, 0)``, as TFLite does, so that real 0 is
  exact); ``scale = (x_max - x_min) / (quant_max - quant_min)``;
  ``zero_point = quant_min - round(x_min / scale)``, clamped to [quant_min, quant_max].
* Symmetric (weights, per output channel): ``zero_point = 0``;
  ``scale = max(|x_min|, |x_max|) / ((quant_max - quant_min) / 2)``. The default for
  symmetric is the narrow range, as TFLite's int8 weights: int8 -> [-127, 127] and
  ``scale = max_abs / 127``. With ``narrow_range=False`` it is [-128, 127] and
  ``scale = max_abs / 127.5`` (PyTorch's observers).
* ``scale`` is a float32 tensor, ``zero_point`` an int32 tensor (what
  ``torch.fake_quantize_per_channel_affine`` takes); both are 0-d for per-tensor qparams and
  of shape (C,) for per-channel qparams. ``quantize`` returns int32 codes.
* A range of width 0 (an all-zero tensor) would give ``scale = 0``: ``scale`` is clamped to
  ``SCALE_EPS = torch.finfo(torch.float32).eps`` (about 1.19e-7), as PyTorch's observers do;
  every value then quantizes to ``zero_point`` and dequantizes to exactly 0. The clamp
  applies to every scale that choose_qparams returns (so also to ``weight_qparams``, per
  channel), symmetric or not.
* ``fake_quantize`` has the clipped straight-through estimator (STE) as its gradient: the
  incoming gradient passes unchanged where ``round(x / scale) + zero_point`` lies inside
  [quant_min, quant_max] (ends included) and is 0 where the value was clipped, exactly as
  ``torch.fake_quantize_per_tensor_affine`` does. No gradient flows to scale or zero_point.
* Minifloat ExMy (``minifloat_quantize``): sign, ``exponent_bits`` E, ``mantissa_bits`` M,
  exponent ``bias`` (default ``2**(E-1) - 1``); subnormals included; no inf and no NaN codes
  (every code is a finite number, so the largest value is
  ``2**(2**E - 1 - bias) * (2 - 2**-M)``, e.g. 480 for E4M3 and 6 for E2M1); round to
  nearest, ties to even; values beyond the largest saturate to it.

Quantized layers (``QuantConv2d``, ``QuantLinear``) fake-quantize their weight (symmetric,
per output channel, narrow range) and their input activation (asymmetric, per tensor). The
bias stays float (TFLite stores it as int32 with scale = input scale * weight scale, which is
close to exact) and so do the logits. ``quantize_model_ptq`` folds BatchNorm into the
preceding convolution first (``fold_batchnorm``), as the TFLite converter does;
``prepare_qat`` leaves BatchNorm float, because training needs batch statistics.

References:
  1) Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
     Integer-Arithmetic-Only Inference" (arXiv:1712.05877), Sec. 2 and 3.
  2) TensorFlow Lite 8-bit quantization specification (tensorflow.org/lite/performance/
     quantization_spec): int8 symmetric per-channel weights in [-127, 127], asymmetric
     activations, zero_point in range.
  3) Krishnamoorthi 2018, "Quantizing deep convolutional networks for efficient inference:
     A whitepaper" (arXiv:1806.08342): PTQ, QAT, the straight-through estimator (Bengio et
     al. 2013, arXiv:1308.3432), BatchNorm folding.
  4) pytorch/ao ``torchao/quantization/quant_primitives.py``: ``choose_qparams_affine``,
     ``quantize_affine``, ``dequantize_affine`` (names); PyTorch
     ``torch.fake_quantize_per_tensor_affine`` / ``_per_channel_affine`` (reference values).
  5) Micikevicius et al. 2022, "FP8 Formats for Deep Learning" (arXiv:2209.05433); OCP
     Microscaling Formats (MX) v1.0 specification (E2M1).
"""
from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

SCALE_EPS = torch.finfo(torch.float32).eps
"""Smallest scale choose_qparams returns (about 1.19e-7); guards an all-zero range."""

DEFAULT_AVERAGING_CONSTANT = 0.01
"""Weight of the newest batch in the moving-average activation range during QAT."""


def _per_axis(t: torch.Tensor, ndim: int, axis: int | None) -> torch.Tensor:
    """Reshape a (C,) qparam tensor so it broadcasts along ``axis`` of an ndim-D tensor."""
    if axis is None:
        if t.numel() != 1:
            raise ValueError(f"per-tensor qparams must hold one value, got shape "
                             f"{tuple(t.shape)}; pass axis= for per-channel qparams")
        return t.reshape(())
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} is out of range for a {ndim}-D tensor")
    shape = [1] * ndim
    shape[axis] = -1
    return t.reshape(shape)


def _check_per_axis(x: torch.Tensor, scale: torch.Tensor, axis: int | None) -> None:
    if axis is None:
        return
    if not -x.dim() <= axis < x.dim():
        raise ValueError(f"axis={axis} is out of range for a {x.dim()}-D tensor")
    if scale.numel() != x.shape[axis]:
        raise ValueError(f"per-channel scale has {scale.numel()} values but x has "
                         f"{x.shape[axis]} along axis={axis} (shape {tuple(x.shape)})")


def _check_qrange(quant_min: int, quant_max: int) -> None:
    if quant_min >= quant_max:
        raise ValueError(f"quant_min={quant_min} must be < quant_max={quant_max}")


def quant_range(num_bits: int = 8, narrow_range: bool = False) -> tuple[int, int]:
    """The signed integer range of a num_bits code.

    Full range: [-2**(num_bits-1), 2**(num_bits-1) - 1]. Narrow range drops the lowest code
    so that the range is symmetric about 0: [-(2**(num_bits-1) - 1), 2**(num_bits-1) - 1].
    Example: 8 bits -> (-128, 127); narrow -> (-127, 127); 4 bits -> (-8, 7).

    Hint: 2**(num_bits - 1) is 128 for 8 bits.

    Args:
        num_bits: code width in bits, 2..16.
        narrow_range: if True, drop the most negative code (TFLite int8 weights).
    Returns:
        (quant_min, quant_max) as Python ints.
    Raises:
        ValueError: if num_bits is outside 2..16.
    Source: TFLite 8-bit quantization specification.
    """
    if not 2 <= int(num_bits) <= 16:
        raise ValueError(f"num_bits={num_bits} must be in 2..16")
    ### BEGIN SOLUTION
    quant_max = 2 ** (num_bits - 1) - 1
    quant_min = -quant_max if narrow_range else -quant_max - 1
    return quant_min, quant_max
    ### END SOLUTION


def choose_qparams(x_min: float | torch.Tensor, x_max: float | torch.Tensor,
                   num_bits: int = 8, symmetric: bool = False,
                   narrow_range: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick scale and zero_point so that [x_min, x_max] fills the integer range.

    Per-tensor: x_min and x_max are numbers (or 0-d tensors) -> 0-d scale and zero_point.
    Per-channel: x_min and x_max have shape (C,) -> scale and zero_point of shape (C,).

    Asymmetric: widen the range to include 0, then
        scale = (x_max - x_min) / (quant_max - quant_min)
        zero_point = quant_min - round(x_min / scale), clamped to [quant_min, quant_max].
    Example: x in [-1, 3], 8 bits: scale = 4/255, zero_point = -128 - round(-63.75) = -64.
    Symmetric: zero_point = 0, scale = max(|x_min|, |x_max|) / ((quant_max - quant_min) / 2).
    Example: x in [-2, 1], 8 bits, narrow range [-127, 127]: scale = 2/127.

    Steps:
      1. (done for you) quant_min, quant_max = quant_range(...); x_min, x_max as float32.
      2. symmetric: max_abs of the two ends; asymmetric: torch.clamp x_min to <= 0 and
         x_max to >= 0 first.
      3. scale from the formula above, then clamp it to at least SCALE_EPS.
      4. zero_point: 0, or the formula above with torch.round and torch.clamp;
         return it as torch.int32.

    Args:
        x_min: smallest observed value(s), float or tensor of shape () or (C,).
        x_max: largest observed value(s), same shape as x_min, x_max >= x_min.
        num_bits: code width, 2..16.
        symmetric: zero_point = 0 (weights) instead of an asymmetric range (activations).
        narrow_range: use [-(2**(b-1) - 1), 2**(b-1) - 1]; default: True if symmetric.
    Returns:
        (scale, zero_point): float32 tensor > 0 and int32 tensor, both the shape of x_min.
    Raises:
        ValueError: if shapes differ, any x_min > x_max, or a value is not finite.
    Source: Jacob et al. 2018 Sec. 2.1; TFLite quantization spec; torchao
        ``choose_qparams_affine``.
    """
    if narrow_range is None:
        narrow_range = symmetric
    quant_min, quant_max = quant_range(num_bits, narrow_range)
    x_min = torch.as_tensor(x_min, dtype=torch.float32).detach()
    x_max = torch.as_tensor(x_max, dtype=torch.float32).detach()
    if x_min.shape != x_max.shape:
        raise ValueError(f"x_min shape {tuple(x_min.shape)} != x_max shape {tuple(x_max.shape)}")
    if not (torch.isfinite(x_min).all() and torch.isfinite(x_max).all()):
        raise ValueError(f"x_min={x_min} and x_max={x_max} must be finite")
    if (x_min > x_max).any():
        raise ValueError(f"x_min={x_min} must be <= x_max={x_max}")
    ### BEGIN SOLUTION
    if symmetric:
        max_abs = torch.maximum(x_min.abs(), x_max.abs())
        scale = torch.clamp(max_abs / ((quant_max - quant_min) / 2), min=SCALE_EPS)
        return scale, torch.zeros_like(scale, dtype=torch.int32)
    x_min, x_max = torch.clamp(x_min, max=0.0), torch.clamp(x_max, min=0.0)
    scale = torch.clamp((x_max - x_min) / (quant_max - quant_min), min=SCALE_EPS)
    zero_point = torch.clamp(quant_min - torch.round(x_min / scale), quant_min, quant_max)
    return scale, zero_point.to(torch.int32)
    ### END SOLUTION


def quantize(x: torch.Tensor, scale: float | torch.Tensor, zero_point: int | torch.Tensor,
             quant_min: int = -128, quant_max: int = 127,
             axis: int | None = None) -> torch.Tensor:
    """Map float values to integer codes: clamp(round(x / scale) + zero_point).

    Example: scale 0.5, zero_point 0: x = 0.25 -> round(0.5) = 0 (half to even);
    x = 0.75 -> 2; x = 70 -> 140 -> clamped to 127.

    Args:
        x: float tensor, any shape.
        scale: grid step > 0; a number / 0-d tensor (per-tensor) or shape (C,) with axis.
        zero_point: integer code of real 0, same shape as scale.
        quant_min, quant_max: integer range (see quant_range).
        axis: the channel axis of x for per-channel qparams (scale of shape (C,) with
            C = x.shape[axis]); None for per-tensor.
    Returns:
        int32 tensor of codes in [quant_min, quant_max], same shape as x.
    Raises:
        ValueError: if scale <= 0, the range is empty or the qparam shapes do not fit x.
    Source: TFLite quantization spec; torchao ``quantize_affine``.
    """
    _check_qrange(quant_min, quant_max)
    scale = torch.as_tensor(scale, dtype=torch.float32)
    zero_point = torch.as_tensor(zero_point, dtype=torch.int32)
    if (scale <= 0).any():
        raise ValueError(f"scale must be > 0, got {scale}")
    _check_per_axis(x, scale, axis)
    scale, zero_point = _per_axis(scale, x.dim(), axis), _per_axis(zero_point, x.dim(), axis)
    ### BEGIN SOLUTION
    q = torch.round(x / scale) + zero_point
    return torch.clamp(q, quant_min, quant_max).to(torch.int32)
    ### END SOLUTION


def dequantize(q: torch.Tensor, scale: float | torch.Tensor, zero_point: int | torch.Tensor,
               axis: int | None = None) -> torch.Tensor:
    """Map integer codes back to float: (q - zero_point) * scale.

    Example: scale 0.25, zero_point -10: q = -128 -> -29.5; q = -10 -> 0.0.

    Args:
        q: integer tensor of codes, any shape.
        scale, zero_point, axis: as in quantize.
    Returns:
        float32 tensor, same shape as q.
    Raises:
        ValueError: if the qparam shapes do not fit q.
    Source: TFLite quantization spec; torchao ``dequantize_affine``.
    """
    scale = torch.as_tensor(scale, dtype=torch.float32)
    zero_point = torch.as_tensor(zero_point, dtype=torch.int32)
    _check_per_axis(q, scale, axis)
    scale, zero_point = _per_axis(scale, q.dim(), axis), _per_axis(zero_point, q.dim(), axis)
    ### BEGIN SOLUTION
    return (q.to(torch.int32) - zero_point).to(torch.float32) * scale
    ### END SOLUTION


class FakeQuantizeSTE(torch.autograd.Function):
    """quantize + dequantize in float; backward is the clipped straight-through estimator.

    Forward: q = round(x / scale) + zero_point; y = (clamp(q, quant_min, quant_max)
    - zero_point) * scale. Backward: dL/dx = dL/dy where quant_min <= q <= quant_max, else 0
    (round has zero derivative almost everywhere; the STE pretends it is the identity).
    scale and zero_point arrive already shaped to broadcast against x.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                quant_min: int, quant_max: int) -> torch.Tensor:
        # Hint: save the bool mask "q inside [quant_min, quant_max]" with
        # ctx.save_for_backward for the backward pass.
        ### BEGIN SOLUTION
        q = torch.round(x / scale) + zero_point
        ctx.save_for_backward((q >= quant_min) & (q <= quant_max))
        return (torch.clamp(q, quant_min, quant_max) - zero_point) * scale
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        # Hint: return one gradient per forward input (None for scale, zero_point,
        # quant_min and quant_max).
        ### BEGIN SOLUTION
        (inside,) = ctx.saved_tensors
        return grad_output * inside, None, None, None, None
        ### END SOLUTION


def fake_quantize(x: torch.Tensor, scale: float | torch.Tensor, zero_point: int | torch.Tensor,
                  quant_min: int = -128, quant_max: int = 127,
                  axis: int | None = None) -> torch.Tensor:
    """Round x onto the integer grid and map it back to float, with a clipped STE gradient.

    Same values as dequantize(quantize(x, ...), ...), but differentiable: the gradient is
    passed unchanged where x was inside the representable range and is 0 where it was
    clipped (the clipped straight-through estimator, as torch.fake_quantize_per_tensor_affine).
    Example: scale 1, zero_point 0, range [-2, 2]: x = [-2.4, 0.3, 2.6] -> [-2, 0, 2],
    gradient of the sum [1, 1, 0] (2.6 rounds to 3, outside the range).

    Your work is in FakeQuantizeSTE.forward and .backward above; this function checks and
    reshapes the qparams and calls FakeQuantizeSTE.apply.

    Args:
        x: float32 tensor, any shape.
        scale, zero_point, quant_min, quant_max, axis: as in quantize.
    Returns:
        float32 tensor, same shape as x.
    Raises:
        ValueError: if scale <= 0, the range is empty or the qparam shapes do not fit x.
    Source: Jacob et al. 2018 Sec. 3; Bengio et al. 2013 (STE); PyTorch
        ``torch.fake_quantize_per_tensor_affine`` and ``fake_quantize_per_channel_affine``.
    """
    _check_qrange(quant_min, quant_max)
    scale = torch.as_tensor(scale, dtype=torch.float32, device=x.device).detach()
    zero_point = torch.as_tensor(zero_point, dtype=torch.int32, device=x.device).detach()
    if (scale <= 0).any():
        raise ValueError(f"scale must be > 0, got {scale}")
    _check_per_axis(x, scale, axis)
    scale, zero_point = _per_axis(scale, x.dim(), axis), _per_axis(zero_point, x.dim(), axis)
    return FakeQuantizeSTE.apply(x, scale, zero_point, int(quant_min), int(quant_max))


def weight_qparams(weight: torch.Tensor, num_bits: int = 8,
                   axis: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-channel qparams of a weight, one (scale, zero_point) per output channel.

    The range of channel c is the min and max of weight over every axis except ``axis``
    (Conv2d weight (C_out, C_in/groups, kh, kw) and Linear weight (C_out, C_in): axis 0).
    Narrow range: int8 codes in [-127, 127], scale[c] = max |weight[c]| / 127; in general
    scale[c] = max |weight[c]| / (2**(num_bits-1) - 1), e.g. / 7 for 4 bits. A channel of
    all zeros gets scale[c] = SCALE_EPS (about 1.19e-7), as in choose_qparams, and codes 0.
    Example: rows [-1.27, 0.5] and [0.1, 2.54] -> scale [0.01, 0.02], zero_point [0, 0].

    Hint: Tensor.amin / Tensor.amax accept a tuple of dims; then call choose_qparams.

    Args:
        weight: float tensor with at least one axis.
        num_bits: code width, 2..16.
        axis: the output-channel axis.
    Returns:
        (scale, zero_point): float32 and int32 tensors of shape (weight.shape[axis],).
    Source: TFLite quantization spec (per-axis int8 weights); Krishnamoorthi 2018 Sec. 3.1.
    """
    if weight.dim() < 1:
        raise ValueError("weight must have at least one axis for per-channel qparams")
    axis = axis % weight.dim()
    dims = tuple(d for d in range(weight.dim()) if d != axis)
    w = weight.detach()
    ### BEGIN SOLUTION
    w_min = w.amin(dim=dims) if dims else w
    w_max = w.amax(dim=dims) if dims else w
    return choose_qparams(w_min, w_max, num_bits, symmetric=True)
    ### END SOLUTION


def update_min_max(x: torch.Tensor, running_min: torch.Tensor, running_max: torch.Tensor,
                   averaging_constant: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Update an observed activation range with a new batch.

    Calibration (averaging_constant None): the running range keeps the extremes of every
    batch seen, min(running_min, x.min()) and max(running_max, x.max()).
    QAT (averaging_constant c in (0, 1]): a moving average of the batch extremes,
    running + c * (batch - running). The first batch (running_min = +inf, nothing observed
    yet) sets the range directly in both modes.
    Example: running (-1, 2), batch [-3, 4], c = 0.25 -> (-1.5, 2.5).

    Args:
        x: float tensor, any shape (its values, not gradients, are used).
        running_min, running_max: 0-d float tensors; +inf and -inf before any observation.
        averaging_constant: None for the min/max of all batches, else the moving-average
            weight of the new batch.
    Returns:
        (new_min, new_max): 0-d float32 tensors.
    Raises:
        ValueError: if x is empty or averaging_constant is outside (0, 1].
    Source: PyTorch ``MinMaxObserver`` and ``MovingAverageMinMaxObserver``; Jacob et al.
        2018 Sec. 3 (EMA of activation ranges during training).
    """
    if x.numel() == 0:
        raise ValueError("cannot observe the range of an empty tensor")
    if averaging_constant is not None and not 0 < averaging_constant <= 1:
        raise ValueError(f"averaging_constant={averaging_constant} must be in (0, 1]")
    running_min = torch.as_tensor(running_min, dtype=torch.float32)
    running_max = torch.as_tensor(running_max, dtype=torch.float32)
    if not torch.isfinite(running_min):
        averaging_constant = None  # first observation: take the batch range as it is
    x = x.detach().to(torch.float32)
    ### BEGIN SOLUTION
    batch_min, batch_max = x.min(), x.max()
    if averaging_constant is None:
        return torch.minimum(running_min, batch_min), torch.maximum(running_max, batch_max)
    c = averaging_constant
    return running_min + c * (batch_min - running_min), running_max + c * (batch_max - running_max)
    ### END SOLUTION


def minifloat_quantize(x: torch.Tensor, exponent_bits: int, mantissa_bits: int,
                       bias: int | None = None) -> torch.Tensor:
    """Round x to the nearest value of a sign + ExMy minifloat format (extra credit).

    A code is (sign s, exponent e in 0..2**E - 1, mantissa m in 0..2**M - 1):
    normal (e >= 1): (-1)**s * 2**(e - bias) * (1 + m / 2**M);
    subnormal (e = 0): (-1)**s * 2**(1 - bias) * (m / 2**M).
    No code is inf or NaN, so the largest value is 2**(2**E - 1 - bias) * (2 - 2**-M) and
    values beyond it saturate to it (OCP FP8 E4M3 instead reserves its top code for NaN and
    stops at 448; below that the two grids are the same). Rounding: nearest, ties to even.
    Example, E2M1 (bias 1): the values are 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives;
    0.25 -> 0, 0.75 -> 1, 5 -> 4, 7 -> 6.

    Steps: inside [2**k, 2**(k+1)) the grid step is 2**(k - M); below the smallest normal
    2**(1 - bias) the step stays 2**(1 - bias - M) (subnormals).
      1. k = floor(log2 |x|), but at least 1 - bias (torch.frexp gives it exactly:
         |x| = m * 2**e with m in [0.5, 1), so k = e - 1).
      2. step = 2**(k - M); round x / step with torch.round and multiply back.
      3. clamp to [-largest, largest].

    Args:
        x: float32 tensor, any shape (NaN stays NaN, +-inf saturates).
        exponent_bits: E >= 1.
        mantissa_bits: M >= 0.
        bias: exponent bias; default 2**(E - 1) - 1 (7 for E4M3, 15 for E5M2, 1 for E2M1).
    Returns:
        float32 tensor of representable values, same shape as x.
    Raises:
        ValueError: if exponent_bits < 1 or mantissa_bits < 0.
    Source: Micikevicius et al. 2022 (arXiv:2209.05433); OCP MX v1.0 spec (E2M1); IEEE 754
        round-to-nearest-even.
    """
    if exponent_bits < 1 or mantissa_bits < 0:
        raise ValueError(f"need exponent_bits >= 1 and mantissa_bits >= 0, got "
                         f"E={exponent_bits}, M={mantissa_bits}")
    if bias is None:
        bias = 2 ** (exponent_bits - 1) - 1
    x = x.to(torch.float32)
    ### BEGIN SOLUTION
    largest = 2.0 ** (2 ** exponent_bits - 1 - bias) * (2 - 2.0 ** -mantissa_bits)
    _, e = torch.frexp(x)
    k = torch.clamp(e - 1, min=1 - bias)
    step = torch.pow(2.0, (k - mantissa_bits).to(torch.float32))
    return torch.clamp(torch.round(x / step) * step, -largest, largest)
    ### END SOLUTION


class _FakeQuantMixin:
    """Weight and input fake quantization shared by QuantConv2d and QuantLinear.

    Buffers act_min / act_max hold the observed input range (+inf / -inf until observed).
    The range is updated in train mode (moving average, QAT) and while ``calibrating`` is
    True (min/max of all batches, PTQ); in eval mode it is frozen.
    """

    num_bits: int
    averaging_constant: float
    calibrating: bool

    def _init_quant(self, num_bits: int, averaging_constant: float) -> None:
        quant_range(num_bits)  # validates num_bits
        self.num_bits = int(num_bits)
        self.averaging_constant = averaging_constant
        self.calibrating = False
        self.register_buffer("act_min", torch.tensor(float("inf")))
        self.register_buffer("act_max", torch.tensor(float("-inf")))

    def fake_quantize_weight(self) -> torch.Tensor:
        """The weight on its int grid (symmetric, per output channel, narrow range)."""
        scale, zero_point = weight_qparams(self.weight, self.num_bits)
        quant_min, quant_max = quant_range(self.num_bits, narrow_range=True)
        return fake_quantize(self.weight, scale, zero_point, quant_min, quant_max, axis=0)

    def activation_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero_point) of the input from the observed range (asymmetric, per tensor)."""
        if not torch.isfinite(self.act_min):
            raise RuntimeError(f"{type(self).__name__} has no observed input range: run "
                               "calibrate(model, loader) or a training step first")
        return choose_qparams(self.act_min, self.act_max, self.num_bits)

    def fake_quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating or self.training:
            c = None if self.calibrating else self.averaging_constant
            self.act_min, self.act_max = update_min_max(x, self.act_min, self.act_max, c)
        scale, zero_point = self.activation_qparams()
        quant_min, quant_max = quant_range(self.num_bits)
        return fake_quantize(x, scale, zero_point, quant_min, quant_max)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_bits={self.num_bits}"


class QuantConv2d(_FakeQuantMixin, nn.Conv2d):
    """nn.Conv2d that fake-quantizes its weight (per channel) and its input (per tensor)."""

    def __init__(self, *args, num_bits: int = 8,
                 averaging_constant: float = DEFAULT_AVERAGING_CONSTANT, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quant(num_bits, averaging_constant)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, num_bits: int = 8) -> "QuantConv2d":
        """A QuantConv2d with the same configuration and a copy of conv's weight and bias."""
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                bias=conv.bias is not None, padding_mode=conv.padding_mode,
                num_bits=num_bits, device=conv.weight.device, dtype=conv.weight.dtype)
        q.load_state_dict(conv.state_dict(), strict=False)  # copies, never shares
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.fake_quantize_input(x), self.fake_quantize_weight(),
                                  self.bias)


class QuantLinear(_FakeQuantMixin, nn.Linear):
    """nn.Linear that fake-quantizes its weight (per row) and its input (per tensor)."""

    def __init__(self, *args, num_bits: int = 8,
                 averaging_constant: float = DEFAULT_AVERAGING_CONSTANT, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quant(num_bits, averaging_constant)

    @classmethod
    def from_float(cls, linear: nn.Linear, num_bits: int = 8) -> "QuantLinear":
        """A QuantLinear with the same shape and a copy of linear's weight and bias."""
        q = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                num_bits=num_bits, device=linear.weight.device, dtype=linear.weight.dtype)
        q.load_state_dict(linear.state_dict(), strict=False)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.fake_quantize_input(x), self.fake_quantize_weight(), self.bias)


QUANT_LAYERS: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv2d: QuantConv2d, nn.Linear: QuantLinear}
"""Float layer type -> its fake-quantized twin (exact type match; subclasses are left)."""


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of a flat model with every Conv2d -> BatchNorm2d pair merged into one Conv2d.

    With g = gamma / sqrt(running_var + eps): w' = w * g (per output channel) and
    b' = (b - running_mean) * g + beta. The BatchNorm entries are removed, the other layers
    keep their names. Exact in eval mode (BatchNorm uses running statistics); the input
    model is not modified.

    Args:
        model: a flat nn.Sequential (kwslab.models) of layers.
    Returns:
        a new model of the same class, without BatchNorm2d layers that follow a Conv2d.
    Source: Jacob et al. 2018 Sec. 3.2; Krishnamoorthi 2018 Sec. 3.2.
    """
    model = copy.deepcopy(model)
    names = list(model._modules)
    for prev_name, name in zip(names, names[1:]):
        conv, bn = model._modules.get(prev_name), model._modules.get(name)
        if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
            continue
        with torch.no_grad():
            g = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                               stride=conv.stride, padding=conv.padding,
                               dilation=conv.dilation, groups=conv.groups, bias=True,
                               padding_mode=conv.padding_mode)
            folded.weight.copy_(conv.weight * g.reshape(-1, 1, 1, 1))
            folded.bias.copy_((bias - bn.running_mean) * g + bn.bias)
        setattr(model, prev_name, folded)
        delattr(model, name)
    return model


def prepare_qat(model: nn.Module, num_bits: int = 8) -> nn.Module:
    """A NEW model in which every Conv2d and Linear is its fake-quantized twin.

    The float model is left untouched: not its layers, not its weights (quantization-aware
    training updates the copy's weights). Each layer in QUANT_LAYERS becomes
    ``QUANT_LAYERS[type(layer)].from_float(layer, num_bits)``; the other layers
    (BatchNorm, ReLU, padding, pooling) stay as they are. Every module of the returned model
    is in the train/eval mode of the module it copies (``from_float`` makes a layer in train
    mode, so the twin is set to its float layer's mode): a model in eval mode gives a model
    in eval mode whose layers observe nothing until ``calibrate`` or ``train()``; in train
    mode the input ranges are observed with a moving average.

    Steps: 1. copy the whole model (copy.deepcopy); 2. for each (name, layer) of the copy's
    named_children() whose type is exactly a key of QUANT_LAYERS, make the twin, give it the
    layer's mode (``twin.train(layer.training)``) and setattr it in its place.

    Args:
        model: a flat nn.Sequential (kwslab.models).
        num_bits: code width of weights and activations, 2..16.
    Returns:
        the new model (same class as model).
    Source: Jacob et al. 2018 Sec. 3; PyTorch ``torch.ao.quantization.prepare_qat``.
    """
    quant_range(num_bits)  # validates num_bits
    ### BEGIN SOLUTION
    model = copy.deepcopy(model)
    for name, layer in list(model.named_children()):
        if type(layer) in QUANT_LAYERS:
            twin = QUANT_LAYERS[type(layer)].from_float(layer, num_bits)
            setattr(model, name, twin.train(layer.training))
    return model
    ### END SOLUTION


def _batches(loader: Iterable, num_batches: int | None) -> Iterable[torch.Tensor]:
    for i, batch in enumerate(loader):
        if num_batches is not None and i >= num_batches:
            break
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def calibrate(model: nn.Module, loader: Iterable, num_batches: int | None = None) -> nn.Module:
    """Observe the input range of every fake-quantized layer on some batches (PTQ).

    Runs the model in eval mode without gradients; each layer keeps the min and max of its
    input over all batches (update_min_max without averaging). Ranges observed before are
    kept and widened. The model is modified in place, left in eval mode and returned.

    Args:
        model: a model from prepare_qat.
        loader: iterable of input tensors (N, 1, T, F) or of (inputs, labels) pairs.
        num_batches: stop after this many batches (None: all).
    Returns:
        model.
    Raises:
        ValueError: if model has no fake-quantized layer or loader gave no batch.
    """
    layers = [m for m in model.modules() if isinstance(m, _FakeQuantMixin)]
    if not layers:
        raise ValueError("model has no QuantConv2d/QuantLinear layer; call prepare_qat first")
    model.eval()
    seen = 0
    try:
        for layer in layers:
            layer.calibrating = True
        with torch.no_grad():
            for x in _batches(loader, num_batches):
                model(x)
                seen += 1
    finally:
        for layer in layers:
            layer.calibrating = False
    if seen == 0:
        raise ValueError("loader gave no batch to calibrate on")
    return model


def quantize_model_ptq(model: nn.Module, loader: Iterable, num_bits: int = 8,
                       num_batches: int | None = None) -> nn.Module:
    """Post-training quantization: a NEW fake-quantized model calibrated on loader.

    The float model is not modified. BatchNorm is folded into the convolutions first, as
    the TFLite converter does, so the quantized weights are those the device would use.

    Steps: 1. fold_batchnorm; 2. prepare_qat with num_bits; 3. calibrate on loader
    (num_batches); 4. return the new model in eval mode.

    Args:
        model: a float flat model (kwslab.models), trained.
        loader: calibration batches, as in calibrate (a few hundred examples suffice).
        num_bits: code width of weights and activations, 2..16.
        num_batches: batches to calibrate on (None: all).
    Returns:
        the quantized model (eval mode), same class as model.
    Source: Krishnamoorthi 2018 Sec. 3 (post-training quantization); TFLite
        post-training integer quantization with a representative dataset.
    """
    ### BEGIN SOLUTION
    qmodel = prepare_qat(fold_batchnorm(model), num_bits)
    calibrate(qmodel, loader, num_batches)
    return qmodel.eval()
    ### END SOLUTION


# ----------------------------------------------------------------------------- QAT convert, qparams, weight sharing (not graded)


def _quant_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))]


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
            if isinstance(q, QuantConv2d):
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
        w_scale, _ = weight_qparams(q.weight, q.num_bits)
        rows.append({"layer": name, "num_bits": q.num_bits,
                     "input_min": float(q.act_min), "input_max": float(q.act_max),
                     "input_scale": float(in_scale), "input_zero_point": int(in_zp),
                     "weight_scale_min": float(w_scale.min()),
                     "weight_scale_max": float(w_scale.max()), "channels": int(w_scale.numel())})
    return rows


def layer_weights(model: nn.Module, layer: str, channel: int | None = None) -> "numpy.ndarray":
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
    import numpy as np

    modules = dict(model.named_modules())
    if layer not in modules or not hasattr(modules[layer], "weight"):
        names = [n for n, m in modules.items() if isinstance(getattr(m, "weight", None), torch.Tensor)]
        raise KeyError(f"no weighted layer {layer!r}; layers with weights: {names}")
    m = modules[layer]
    with torch.no_grad():
        w = m.fake_quantize_weight() if hasattr(m, "fake_quantize_weight") else m.weight
    w = w.detach().cpu()
    return (w if channel is None else w[channel]).reshape(-1).numpy().astype(np.float32)


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
    Pruning reparametrizations (``torch.nn.utils.prune``) are made permanent first.

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
    _remove_pruning_reparam(model)
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


def _remove_pruning_reparam(model: nn.Module) -> None:
    """Make every torch.nn.utils.prune mask permanent (weight = weight_orig * weight_mask)."""
    from torch.nn.utils import prune as torch_prune

    for m in model.modules():
        for name in [k[:-len("_mask")] for k, _ in m.named_buffers(recurse=False) if k.endswith("_mask")]:
            torch_prune.remove(m, name)
