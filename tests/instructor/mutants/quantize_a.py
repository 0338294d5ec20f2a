"""Mutant set A for kwslab.quantize: the first set of plausible wrong answers.

Each mutant is a replacement function for one student function; the harness
(``tests/instructor/mutation.py``) patches it into the real module, as
``monkeypatch.setattr`` would, and runs the graded tests that reach that function.
"""
from __future__ import annotations

import copy
import importlib.util
import inspect
import re
import types
import warnings
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from kwslab import quantize as Q


STUDENT_FUNCTIONS = ("quant_range", "choose_qparams", "quantize", "dequantize",
                     "fake_quantize", "weight_qparams", "update_min_max",
                     "minifloat_quantize", "prepare_qat", "quantize_model_ptq")

SOLUTION = {name: getattr(Q, name) for name in STUDENT_FUNCTIONS}
"""The solution functions, kept for mutants that wrap them (the patched name is the mutant)."""


# ---- mutants: one plausible mistake each ---------------------------------------------------

def _qparams_in(x, scale, zero_point, axis):
    scale = torch.as_tensor(scale, dtype=torch.float32)
    zero_point = torch.as_tensor(zero_point, dtype=torch.int32)
    return Q._per_axis(scale, x.dim(), axis), Q._per_axis(zero_point, x.dim(), axis)


def quant_range_2b(num_bits=8, narrow_range=False):
    # quant_max = 2**(b-1) instead of 2**(b-1) - 1
    quant_max = 2 ** (num_bits - 1)
    return (-quant_max + 1 if narrow_range else -quant_max), quant_max


def quant_range_ignores_narrow(num_bits=8, narrow_range=False):
    return -(2 ** (num_bits - 1)), 2 ** (num_bits - 1) - 1


def _choose(x_min, x_max, num_bits=8, symmetric=False, narrow_range=None, *, levels=None,
            zp_sign=1, sym_max_only=False, widen=True, per_tensor=False, rnd=torch.round):
    if narrow_range is None:
        narrow_range = symmetric
    quant_min, quant_max = Q.quant_range(num_bits, narrow_range)
    x_min = torch.as_tensor(x_min, dtype=torch.float32)
    x_max = torch.as_tensor(x_max, dtype=torch.float32)
    if per_tensor:
        x_min, x_max = x_min.min().expand_as(x_min), x_max.max().expand_as(x_max)
    levels = quant_max - quant_min if levels is None else levels(num_bits)
    if symmetric:
        max_abs = x_max.abs() if sym_max_only else torch.maximum(x_min.abs(), x_max.abs())
        scale = torch.clamp(max_abs / (levels / 2), min=Q.SCALE_EPS)
        return scale, torch.zeros_like(scale, dtype=torch.int32)
    if widen:
        x_min, x_max = torch.clamp(x_min, max=0.0), torch.clamp(x_max, min=0.0)
    scale = torch.clamp((x_max - x_min) / levels, min=Q.SCALE_EPS)
    zero_point = quant_min - zp_sign * rnd(x_min / scale)
    return scale, torch.clamp(zero_point, quant_min, quant_max).to(torch.int32)


def choose_qparams_2b_levels(*a, **k):
    return _choose(*a, levels=lambda b: 2 ** b, **k)


def choose_qparams_zero_point_sign(*a, **k):
    return _choose(*a, zp_sign=-1, **k)


def choose_qparams_symmetric_max_not_max_abs(*a, **k):
    return _choose(*a, sym_max_only=True, **k)


def choose_qparams_range_not_widened(*a, **k):
    return _choose(*a, widen=False, **k)


def choose_qparams_per_tensor(*a, **k):
    return _choose(*a, per_tensor=True, **k)


def choose_qparams_floor(*a, **k):
    return _choose(*a, rnd=torch.floor, **k)


def choose_qparams_no_eps(x_min, x_max, num_bits=8, symmetric=False, narrow_range=None):
    scale, zero_point = SOLUTION["choose_qparams"](
        x_min, x_max, num_bits, symmetric, narrow_range)
    all_zero = torch.as_tensor(x_max, dtype=torch.float32) == torch.as_tensor(x_min)
    return torch.where(all_zero, torch.zeros_like(scale), scale), zero_point


def _quantize(x, scale, zero_point, quant_min=-128, quant_max=127, axis=None, *,
              rnd=torch.round, zp_sign=1, clamp=True, ignore_axis=False):
    if ignore_axis and axis is not None:
        scale, zero_point = torch.as_tensor(scale).max(), torch.as_tensor(zero_point)[0]
        axis = None
    scale, zero_point = _qparams_in(x, scale, zero_point, axis)
    q = rnd(x / scale) + zp_sign * zero_point
    return (torch.clamp(q, quant_min, quant_max) if clamp else q).to(torch.int32)


def quantize_floor(*a, **k):
    return _quantize(*a, rnd=torch.floor, **k)


def quantize_round_half_away(*a, **k):
    return _quantize(*a, rnd=lambda v: torch.sign(v) * torch.floor(v.abs() + 0.5), **k)


def quantize_zero_point_sign(*a, **k):
    return _quantize(*a, zp_sign=-1, **k)


def quantize_no_clamp(*a, **k):
    return _quantize(*a, clamp=False, **k)


def quantize_per_tensor(*a, **k):
    return _quantize(*a, ignore_axis=True, **k)


def dequantize_zero_point_sign(q, scale, zero_point, axis=None):
    scale, zero_point = _qparams_in(q, scale, zero_point, axis)
    return (q.float() + zero_point) * scale


def dequantize_no_zero_point(q, scale, zero_point, axis=None):
    scale, zero_point = _qparams_in(q, scale, zero_point, axis)
    return q.float() * scale


def _fake_quantize(x, scale, zero_point, quant_min=-128, quant_max=127, axis=None, *,
                   rnd=torch.round, clamp=True, grad="clipped"):
    scale, zero_point = _qparams_in(x, scale, zero_point, axis)
    q = rnd(x / scale) + zero_point
    y = ((torch.clamp(q, quant_min, quant_max) if clamp else q) - zero_point) * scale
    if grad == "none":  # no STE: autograd sees round, whose gradient is 0
        return y
    if grad == "identity":  # STE without clipping
        return x + (y - x).detach()
    inside = ((q >= quant_min) & (q <= quant_max)).float()
    return x * inside + (y - x * inside).detach()


def fake_quantize_floor(*a, **k):
    return _fake_quantize(*a, rnd=torch.floor, **k)


def fake_quantize_no_clamp(*a, **k):
    return _fake_quantize(*a, clamp=False, **k)


def fake_quantize_zero_gradient(*a, **k):
    return _fake_quantize(*a, grad="none", **k)


def fake_quantize_unclipped_ste(*a, **k):
    return _fake_quantize(*a, grad="identity", **k)


def fake_quantize_per_tensor(x, scale, zero_point, quant_min=-128, quant_max=127, axis=None):
    if axis is not None:
        scale, zero_point, axis = torch.as_tensor(scale).max(), torch.as_tensor(zero_point)[0], None
    return _fake_quantize(x, scale, zero_point, quant_min, quant_max, axis)


def weight_qparams_per_tensor(weight, num_bits=8, axis=0):
    channels = weight.shape[axis]
    scale, zero_point = Q.choose_qparams(weight.min(), weight.max(), num_bits, symmetric=True)
    return scale.expand(channels).clone(), zero_point.expand(channels).clone()


def weight_qparams_asymmetric(weight, num_bits=8, axis=0):
    dims = tuple(d for d in range(weight.dim()) if d != axis)
    return Q.choose_qparams(weight.amin(dims), weight.amax(dims), num_bits)


def update_min_max_last_batch(x, running_min, running_max, averaging_constant=None):
    if averaging_constant is None:
        return x.min().detach(), x.max().detach()
    c = averaging_constant
    return running_min + c * (x.min() - running_min), running_max + c * (x.max() - running_max)


def update_min_max_weights_swapped(x, running_min, running_max, averaging_constant=None):
    if averaging_constant is None or not torch.isfinite(torch.as_tensor(running_min)):
        return SOLUTION["update_min_max"](x, running_min, running_max, None)
    c = 1 - averaging_constant
    return running_min + c * (x.min() - running_min), running_max + c * (x.max() - running_max)


def prepare_qat_in_place(model, num_bits=8):
    # forgets the copy: swaps the layers of the float model itself
    for name, layer in list(model.named_children()):
        if type(layer) in Q.QUANT_LAYERS:
            setattr(model, name, Q.QUANT_LAYERS[type(layer)].from_float(layer, num_bits))
    return model


def prepare_qat_overwrites_float_weights(model, num_bits=8):
    # copies, but first rounds the float model's own weights onto the grid
    with torch.no_grad():
        for layer in model.children():
            if type(layer) in Q.QUANT_LAYERS:
                scale, zero_point = Q.weight_qparams(layer.weight, num_bits)
                quant_min, quant_max = Q.quant_range(num_bits, narrow_range=True)
                layer.weight.copy_(Q.fake_quantize(layer.weight, scale, zero_point,
                                                   quant_min, quant_max, axis=0))
    return SOLUTION["prepare_qat"](model, num_bits)


def prepare_qat_shares_weights(model, num_bits=8):
    # copies the structure but hands the float Parameters to the new layers
    new = copy.deepcopy(model)
    for name, layer in list(model.named_children()):
        if type(layer) in Q.QUANT_LAYERS:
            twin = Q.QUANT_LAYERS[type(layer)].from_float(layer, num_bits)
            twin.weight = layer.weight
            setattr(new, name, twin)
    return new


def quantize_model_ptq_in_place(model, loader, num_bits=8, num_batches=None):
    # quantizes the float model's weights in place, then builds the quantized copy
    prepare_qat_overwrites_float_weights(model, num_bits)
    qmodel = Q.prepare_qat(Q.fold_batchnorm(model), num_bits)
    Q.calibrate(qmodel, loader, num_batches)
    return qmodel.eval()


def quantize_model_ptq_all_batches(model, loader, num_bits=8, num_batches=None):
    qmodel = Q.prepare_qat(Q.fold_batchnorm(model), num_bits)
    Q.calibrate(qmodel, loader)
    return qmodel.eval()


def quantize_model_ptq_train_mode(model, loader, num_bits=8, num_batches=None):
    # forgets calibration: the ranges come from a forward pass in train mode (moving average)
    qmodel = Q.prepare_qat(Q.fold_batchnorm(model), num_bits).train()
    with torch.no_grad():
        for x in Q._batches(loader, num_batches):
            qmodel(x)
    return qmodel


def _minifloat(x, exponent_bits, mantissa_bits, bias=None, *, subnormals=True,
               saturate=True, rnd=torch.round, ieee_top=False):
    if bias is None:
        bias = 2 ** (exponent_bits - 1) - 1
    top = 2 ** exponent_bits - (2 if ieee_top else 1)
    largest = 2.0 ** (top - bias) * (2 - 2.0 ** -mantissa_bits)
    _, e = torch.frexp(x)
    k = torch.clamp(e - 1, min=1 - bias)
    step = torch.pow(2.0, (k - mantissa_bits).float())
    y = rnd(x / step) * step
    if not subnormals:
        y = torch.where(x.abs() < 2.0 ** (1 - bias), torch.zeros_like(y), y)
    return torch.clamp(y, -largest, largest) if saturate else y


def minifloat_no_subnormals(*a, **k):
    return _minifloat(*a, subnormals=False, **k)


def minifloat_no_saturation(*a, **k):
    return _minifloat(*a, saturate=False, **k)


def minifloat_ties_away(*a, **k):
    return _minifloat(*a, rnd=lambda v: torch.sign(v) * torch.floor(v.abs() + 0.5), **k)


def minifloat_ieee_inf_reserved(*a, **k):
    return _minifloat(*a, ieee_top=True, **k)


def minifloat_ignores_bias(x, exponent_bits, mantissa_bits, bias=None):
    return _minifloat(x, exponent_bits, mantissa_bits)


MUTANTS: list[tuple[str, str, object]] = [
    ("quant_range: 2**(b-1) for 2**(b-1) - 1 (off by one)", "quant_range", quant_range_2b),
    ("quant_range: narrow_range ignored", "quant_range", quant_range_ignores_narrow),
    ("choose_qparams: 2**b levels for 2**b - 1", "choose_qparams", choose_qparams_2b_levels),
    ("choose_qparams: zero_point sign flipped", "choose_qparams",
     choose_qparams_zero_point_sign),
    ("choose_qparams: symmetric scale from max, not max-abs", "choose_qparams",
     choose_qparams_symmetric_max_not_max_abs),
    ("choose_qparams: range not widened to include 0", "choose_qparams",
     choose_qparams_range_not_widened),
    ("choose_qparams: per-tensor where per-channel asked", "choose_qparams",
     choose_qparams_per_tensor),
    ("choose_qparams: floor for round in zero_point", "choose_qparams", choose_qparams_floor),
    ("choose_qparams: no epsilon guard for an all-zero range", "choose_qparams",
     choose_qparams_no_eps),
    ("quantize: floor for round", "quantize", quantize_floor),
    ("quantize: round half away from zero", "quantize", quantize_round_half_away),
    ("quantize: zero_point sign flipped", "quantize", quantize_zero_point_sign),
    ("quantize: no clamp", "quantize", quantize_no_clamp),
    ("quantize: per-tensor where per-channel asked", "quantize", quantize_per_tensor),
    ("dequantize: zero_point sign flipped", "dequantize", dequantize_zero_point_sign),
    ("dequantize: zero_point ignored", "dequantize", dequantize_no_zero_point),
    ("fake_quantize: floor for round", "fake_quantize", fake_quantize_floor),
    ("fake_quantize: no clamp", "fake_quantize", fake_quantize_no_clamp),
    ("fake_quantize: gradient not passed (no STE)", "fake_quantize",
     fake_quantize_zero_gradient),
    ("fake_quantize: gradient passed outside the range too", "fake_quantize",
     fake_quantize_unclipped_ste),
    ("fake_quantize: per-tensor where per-channel asked", "fake_quantize",
     fake_quantize_per_tensor),
    ("weight_qparams: per-tensor where per-channel asked", "weight_qparams",
     weight_qparams_per_tensor),
    ("weight_qparams: asymmetric", "weight_qparams", weight_qparams_asymmetric),
    ("update_min_max: keeps only the last batch", "update_min_max", update_min_max_last_batch),
    ("update_min_max: moving-average weights swapped", "update_min_max",
     update_min_max_weights_swapped),
    ("prepare_qat: swaps the float model's layers in place", "prepare_qat",
     prepare_qat_in_place),
    ("prepare_qat: overwrites the float weights in place", "prepare_qat",
     prepare_qat_overwrites_float_weights),
    ("prepare_qat: shares the float weights", "prepare_qat", prepare_qat_shares_weights),
    ("quantize_model_ptq: quantizes the float weights in place", "quantize_model_ptq",
     quantize_model_ptq_in_place),
    ("quantize_model_ptq: num_batches ignored", "quantize_model_ptq",
     quantize_model_ptq_all_batches),
    ("quantize_model_ptq: no calibration (train-mode moving average)", "quantize_model_ptq",
     quantize_model_ptq_train_mode),
    ("minifloat_quantize: no subnormals (flush to zero)", "minifloat_quantize",
     minifloat_no_subnormals),
    ("minifloat_quantize: no saturation", "minifloat_quantize", minifloat_no_saturation),
    ("minifloat_quantize: ties away from zero", "minifloat_quantize", minifloat_ties_away),
    ("minifloat_quantize: top exponent reserved for inf/NaN", "minifloat_quantize",
     minifloat_ieee_inf_reserved),
    ("minifloat_quantize: bias argument ignored", "minifloat_quantize", minifloat_ignores_bias),
]


MODULE = "quantize"
KIND = "mutants"
VARIANTS = [dict(name=label, target=function, function=impl, why=label)
            for label, function, impl in MUTANTS]
