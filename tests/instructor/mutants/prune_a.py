"""Mutant set A for kwslab.prune: the first set of plausible wrong answers.

Each mutant is a replacement function for one student function; the harness
(``tests/instructor/mutation.py``) patches it into the real module, as
``monkeypatch.setattr`` would, and runs the graded tests that reach that function.
"""
from __future__ import annotations

import functools
import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from kwslab import prune as P

STUDENT_FUNCTIONS = [
    "magnitude_prune_mask", "apply_global_magnitude_pruning", "apply_layerwise_pruning",
    "channel_importance", "channels_to_keep", "slice_conv2d", "slice_batchnorm2d",
    "slice_linear_inputs",
]
SOLUTION = {name: getattr(P, name) for name in STUDENT_FUNCTIONS}


# ------------------------------------------------------------------ wrong implementations

def _mask(weight, sparsity, norm="l1", group_dim=None, *, signed=False, count=round,
          extra=0, prune_largest=False, fixed_norm=None, ties_high_first=False,
          no_groups=False):
    """The solution's algorithm with one knob turned (used to build the mutants)."""
    w = weight.detach()
    if no_groups:
        group_dim = None
    if group_dim is None:
        scores = (w if signed else w.abs()).flatten()
    else:
        ord_ = P.NORMS[fixed_norm or norm]
        scores = torch.linalg.vector_norm(w.movedim(group_dim, 0).flatten(1), ord=ord_, dim=1)
    n = scores.numel()
    k = min(max(count(sparsity * n) + extra, 0), n)
    if ties_high_first:
        order = n - 1 - torch.sort(scores.flip(0), stable=True).indices
    else:
        order = torch.sort(scores, descending=prune_largest, stable=True).indices
    keep = torch.ones(n, dtype=torch.bool)
    keep[order[:k]] = False
    shape = w.shape if group_dim is None else [-1 if d == group_dim % w.dim() else 1
                                               for d in range(w.dim())]
    return keep.view(shape).expand(w.shape).clone()


def _mask_mutant(**knobs) -> Callable:
    return lambda weight, sparsity, norm="l1", group_dim=None: _mask(
        weight, sparsity, norm, group_dim, **knobs)


def _apply(module, mask, how):
    if how == "reparam":
        torch_prune.custom_from_mask(module, "weight", mask)
    elif how == "gradients":  # the weights themselves are never zeroed
        module.weight.register_hook(lambda grad, m=mask: grad * m)
    elif how == "once":  # zeroed now, revived by the first optimizer step
        with torch.no_grad():
            module.weight.mul_(mask)


def _global(how="reparam", per_layer=False, with_bias=False, default_types=False):
    def apply_global(model, sparsity, layer_types=P.PRUNABLE_TYPES):
        types = P.PRUNABLE_TYPES if default_types else tuple(layer_types)
        layers = [(n, m) for n, m in model.named_modules() if isinstance(m, types)]
        if per_layer:
            masks = {n: P.magnitude_prune_mask(m.weight, sparsity) for n, m in layers}
        else:
            tensors = [m.weight for _, m in layers]
            if with_bias:
                tensors += [m.bias for _, m in layers if m.bias is not None]
            flat = P.magnitude_prune_mask(torch.cat([t.detach().flatten() for t in tensors]),
                                          sparsity)
            pieces = flat.split([t.numel() for t in tensors])
            masks = {n: p.view_as(m.weight) for (n, m), p in zip(layers, pieces)}
        for n, m in layers:
            _apply(m, masks[n], how)
        return masks
    return apply_global


def _layerwise(how="reparam", as_global=False):
    def apply_layerwise(model, sparsities):
        modules = dict(model.named_modules())
        if as_global:  # one threshold over the named layers, first sparsity
            names = list(sparsities)
            flat = P.magnitude_prune_mask(
                torch.cat([modules[n].weight.detach().flatten() for n in names]),
                sparsities[names[0]])
            pieces = flat.split([modules[n].weight.numel() for n in names])
            masks = {n: p.view_as(modules[n].weight) for n, p in zip(names, pieces)}
        else:
            masks = {n: P.magnitude_prune_mask(modules[n].weight, s)
                     for n, s in sparsities.items()}
        for n, mask in masks.items():
            _apply(modules[n], mask, how)
        return masks
    return apply_layerwise


def _importance(signed_gamma=False, fixed_norm=None, input_dim=False, squared=False):
    def channel_importance(module, norm="l2"):
        if isinstance(module, nn.BatchNorm2d):
            g = module.weight.detach()
            return g if signed_gamma else g.abs()
        w = module.weight.detach()
        w = w.transpose(0, 1) if input_dim else w
        value = torch.linalg.vector_norm(w.flatten(1), ord=P.NORMS[fixed_norm or norm], dim=1)
        return value ** 2 if squared else value
    return channel_importance


def _keep(count=round, extra=0, smallest=False, minimum=1, unsorted=False,
          ratio_kept=False):
    def channels_to_keep(importance, ratio):
        c = importance.numel()
        k = max(minimum, count(c * (ratio if ratio_kept else 1 - ratio)) + extra)
        order = torch.sort(importance, descending=not smallest, stable=True).indices[:k]
        return order if unsorted else torch.sort(order).values
    return channels_to_keep


def _half_up(x: float) -> int:
    return math.floor(x + 0.5)


def _conv(ignore_in=False, keep_groups=False, depthwise_as_dense=False, drop_bias=False,
          swap=False):
    def slice_conv2d(conv, out_keep=None, in_keep=None):
        depthwise = conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels
        if depthwise:
            out_keep = in_keep = out_keep if out_keep is not None else in_keep
        if swap:
            out_keep, in_keep = in_keep, out_keep
        w = conv.weight.detach()
        w = w if out_keep is None else w[out_keep]
        if in_keep is not None and not depthwise and not ignore_in:
            w = w[:, in_keep]
        if depthwise:
            groups = conv.groups if keep_groups else (1 if depthwise_as_dense else w.shape[0])
            in_ch = w.shape[0]
        else:
            groups, in_ch = 1, w.shape[1]
        bias = conv.bias is not None and not drop_bias
        new = nn.Conv2d(in_ch, w.shape[0], conv.kernel_size, conv.stride, conv.padding,
                        conv.dilation, groups, bias=bias)
        new.weight.data.copy_(w)
        if bias:
            b = conv.bias.detach()
            new.bias.data.copy_(b if out_keep is None else b[out_keep])
        return new
    return slice_conv2d


def _bn(unchanged=False, fresh_stats=False, first_stats=False, default_eps=False):
    def slice_batchnorm2d(bn, keep):
        if unchanged:
            return bn
        k = len(keep)
        new = nn.BatchNorm2d(k, 1e-5 if default_eps else bn.eps, bn.momentum)
        new.weight.data.copy_(bn.weight.detach()[keep])
        new.bias.data.copy_(bn.bias.detach()[keep])
        if first_stats:
            new.running_mean.copy_(bn.running_mean[:k])
            new.running_var.copy_(bn.running_var[:k])
        elif not fresh_stats:
            new.running_mean.copy_(bn.running_mean[keep])
            new.running_var.copy_(bn.running_var[keep])
        return new
    return slice_batchnorm2d


def _linear(order="chw"):
    def slice_linear_inputs(linear, keep, features_per_channel):
        hw = features_per_channel
        c = linear.in_features // hw
        if order == "one_per_channel":  # block of H*W forgotten
            columns = keep
        elif order == "hwc":  # channel-last flatten order
            columns = (torch.arange(hw)[:, None] * c + keep[None, :]).flatten()
        elif order == "first_blocks":  # the first k blocks, whatever keep says
            columns = torch.arange(len(keep) * hw)
        else:
            columns = (keep[:, None] * hw + torch.arange(hw)[None, :]).flatten()
        new = nn.Linear(len(columns), linear.out_features, bias=linear.bias is not None)
        new.weight.data.copy_(linear.weight.detach()[:, columns])
        if linear.bias is not None:
            new.bias.data.copy_(linear.bias.detach())
        return new
    return slice_linear_inputs


MUTANTS: list[tuple[str, str, Callable]] = [
    ("prune by value, not magnitude", "magnitude_prune_mask", _mask_mutant(signed=True)),
    ("number pruned floor(s*n)", "magnitude_prune_mask", _mask_mutant(count=math.floor)),
    ("number pruned ceil(s*n)", "magnitude_prune_mask", _mask_mutant(count=math.ceil)),
    ("number pruned half-up", "magnitude_prune_mask", _mask_mutant(count=_half_up)),
    ("one weight too many pruned", "magnitude_prune_mask", _mask_mutant(extra=1)),
    ("one weight too few pruned", "magnitude_prune_mask", _mask_mutant(extra=-1)),
    ("smallest kept, largest pruned", "magnitude_prune_mask",
     _mask_mutant(prune_largest=True)),
    ("group norm always L1", "magnitude_prune_mask", _mask_mutant(fixed_norm="l1")),
    ("group norm always L2", "magnitude_prune_mask", _mask_mutant(fixed_norm="l2")),
    ("ties: higher index pruned first", "magnitude_prune_mask",
     _mask_mutant(ties_high_first=True)),
    ("group_dim ignored", "magnitude_prune_mask", _mask_mutant(no_groups=True)),
    ("mask inverted (True = pruned)", "magnitude_prune_mask",
     lambda w, s, norm="l1", group_dim=None: ~_mask(w, s, norm, group_dim)),
    ("float mask", "magnitude_prune_mask",
     lambda w, s, norm="l1", group_dim=None: _mask(w, s, norm, group_dim).float()),
    ("global: mask applied to gradients only", "apply_global_magnitude_pruning",
     _global(how="gradients")),
    ("global: weights zeroed once, not kept", "apply_global_magnitude_pruning",
     _global(how="once")),
    ("global: per-layer threshold", "apply_global_magnitude_pruning",
     _global(per_layer=True)),
    ("global: biases in the pool", "apply_global_magnitude_pruning", _global(with_bias=True)),
    ("global: layer_types ignored", "apply_global_magnitude_pruning",
     _global(default_types=True)),
    ("layerwise: mask applied to gradients only", "apply_layerwise_pruning",
     _layerwise(how="gradients")),
    ("layerwise: weights zeroed once, not kept", "apply_layerwise_pruning",
     _layerwise(how="once")),
    ("layerwise: one global threshold", "apply_layerwise_pruning", _layerwise(as_global=True)),
    ("importance: signed gamma", "channel_importance", _importance(signed_gamma=True)),
    ("importance: norm ignored (always L1)", "channel_importance", _importance(fixed_norm="l1")),
    ("importance: per input channel", "channel_importance", _importance(input_dim=True)),
    ("importance: squared L2", "channel_importance", _importance(squared=True)),
    ("keep: floor", "channels_to_keep", _keep(count=math.floor)),
    ("keep: half-up rounding", "channels_to_keep", _keep(count=_half_up)),
    ("keep: one channel too many", "channels_to_keep", _keep(extra=1)),
    ("keep: one channel too few", "channels_to_keep", _keep(extra=-1)),
    ("keep: smallest importance kept", "channels_to_keep", _keep(smallest=True)),
    ("keep: no minimum of one", "channels_to_keep", _keep(minimum=0)),
    ("keep: indices in importance order", "channels_to_keep", _keep(unsorted=True)),
    ("keep: ratio read as fraction kept", "channels_to_keep", _keep(ratio_kept=True)),
    ("conv: next layer's inputs forgotten", "slice_conv2d", _conv(ignore_in=True)),
    ("conv: depthwise groups forgotten", "slice_conv2d", _conv(keep_groups=True)),
    ("conv: depthwise rebuilt as dense (groups 1)", "slice_conv2d",
     _conv(depthwise_as_dense=True)),
    ("conv: bias dropped", "slice_conv2d", _conv(drop_bias=True)),
    ("conv: out and in indices swapped", "slice_conv2d", _conv(swap=True)),
    ("BatchNorm forgotten", "slice_batchnorm2d", _bn(unchanged=True)),
    ("BatchNorm: running stats reset", "slice_batchnorm2d", _bn(fresh_stats=True)),
    ("BatchNorm: running stats of first k", "slice_batchnorm2d", _bn(first_stats=True)),
    ("BatchNorm: eps not copied", "slice_batchnorm2d", _bn(default_eps=True)),
    ("linear: one feature per channel (H*W block forgotten)", "slice_linear_inputs",
     _linear("one_per_channel")),
    ("linear: (H, W, C) flatten order", "slice_linear_inputs", _linear("hwc")),
    ("linear: first k blocks", "slice_linear_inputs", _linear("first_blocks")),
]


MODULE = "prune"
KIND = "mutants"
VARIANTS = [dict(name=label, target=function, function=impl, why=label)
            for label, function, impl in MUTANTS]
