"""Mutant set A for kwslab.size_estimate: the first set of plausible wrong answers.

Each mutant is a replacement function for one student function; the harness
(``tests/instructor/mutation.py``) patches it into the real module, as
``monkeypatch.setattr`` would, and runs the graded tests that reach that function.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from kwslab import size_estimate as S

STUDENT_FUNCTIONS = ("count_parameters", "flash_bytes", "estimate_flash_bytes",
                     "activation_sizes", "ram_naive_bytes", "ram_peak_bytes", "layer_macs",
                     "count_macs", "count_flops")


def params_state_dict(model, trainable_only=True):  # counts BN running stats too
    return sum(t.numel() for t in model.state_dict().values())


def params_ignore_trainable(model, trainable_only=True):
    return sum(p.numel() for p in model.parameters())


def params_no_bias(model, trainable_only=True):  # bias forgotten: only tensors with dim > 1
    return sum(p.numel() for p in model.parameters()
               if p.dim() > 1 and (p.requires_grad or not trainable_only))


def flash_bits(model, bytes_per_weight):  # bits instead of bytes
    return 8 * sum(p.numel() for p in model.parameters()) * bytes_per_weight


def flash_trainable_only(model, bytes_per_weight):
    return sum(p.numel() for p in model.parameters() if p.requires_grad) * bytes_per_weight


def flash_with_buffers(model, bytes_per_weight):
    return sum(t.numel() for t in model.state_dict().values()) * bytes_per_weight


def flash_no_bias(model, bytes_per_weight):
    return sum(p.numel() for p in model.parameters() if p.dim() > 1) * bytes_per_weight


_BASE, _LAYER = S.FLATBUFFER_BASE_BYTES, S.FLATBUFFER_LAYER_BYTES


def _estimate(model, dtype, base, layer, *, bias_bytes=4, qparam_tensors=2, per_channel=True,
              int8_weight_bytes=1, batchnorm_bytes=0):
    total = base + layer * len(S.weighted_layers(model))
    for _, m in S.weighted_layers(model):
        w, c = m.weight.numel(), m.weight.shape[0]
        if dtype == "int8":
            entries = c if per_channel else 1
            total += int8_weight_bytes * w + bias_bytes * c + qparam_tensors * 12 * entries
        else:
            total += 4 * (w + c)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            total += batchnorm_bytes * sum(p.numel() for p in m.parameters())
    return total


def est_no_bias(model, dtype="int8", base_overhead_bytes=_BASE, layer_overhead_bytes=_LAYER):
    return _estimate(model, dtype, base_overhead_bytes, layer_overhead_bytes, bias_bytes=0)


def est_bias_int8(model, dtype="int8", base_overhead_bytes=_BASE, layer_overhead_bytes=_LAYER):
    return _estimate(model, dtype, base_overhead_bytes, layer_overhead_bytes, bias_bytes=1)


def est_batchnorm_not_folded(model, dtype="int8", base_overhead_bytes=_BASE,
                             layer_overhead_bytes=_LAYER):
    return _estimate(model, dtype, base_overhead_bytes, layer_overhead_bytes, batchnorm_bytes=4)


def est_per_tensor_qparams(model, dtype="int8", base_overhead_bytes=_BASE,
                           layer_overhead_bytes=_LAYER):
    return _estimate(model, dtype, base_overhead_bytes, layer_overhead_bytes, per_channel=False)


def est_weight_qparams_only(model, dtype="int8", base_overhead_bytes=_BASE,
                            layer_overhead_bytes=_LAYER):
    return _estimate(model, dtype, base_overhead_bytes, layer_overhead_bytes, qparam_tensors=1)


def est_dtype_ignored(model, dtype="int8", base_overhead_bytes=_BASE, layer_overhead_bytes=_LAYER):
    return _estimate(model, "float32", base_overhead_bytes, layer_overhead_bytes)


def est_all_parameters(model, dtype="int8", base_overhead_bytes=_BASE, layer_overhead_bytes=_LAYER):
    # walks model.parameters(): BN parameters stay, bias only where the layer has one
    n = S.count_parameters(model, trainable_only=False)
    return base_overhead_bytes + layer_overhead_bytes * len(S.weighted_layers(model)) + \
        n * S.BYTES_PER_ELEMENT[dtype]


def est_overheads_hard_coded(model, dtype="int8", base_overhead_bytes=0, layer_overhead_bytes=0):
    # uses the module constants instead of the arguments
    return _estimate(model, dtype, S.FLATBUFFER_BASE_BYTES, S.FLATBUFFER_LAYER_BYTES)


def _activation_sizes_with(model, input_shape=None, bytes_per_element=1, *, leaves=True,
                           remove=True, batch=1, bpe=None, swap=False):
    shape = S._example_shape(model, input_shape)
    bpe = bytes_per_element if bpe is None else bpe
    sizes = []
    named = S._leaf_modules(model) if leaves else list(model.named_modules())

    def hook(mod, inp, out, name):
        if swap:  # records the input as the output
            sizes.append(S._record(name, mod, (out,), inp[0], bpe))
        else:
            sizes.append(S._record(name, mod, inp, out, bpe))

    handles = [m.register_forward_hook(lambda mod, i, o, n=n: hook(mod, i, o, n))
               for n, m in named]
    model.eval()
    with torch.no_grad():
        model(torch.zeros((batch, *shape)))
    if remove:
        for h in handles:
            h.remove()
    return sizes


def act_all_modules(model, input_shape=None, bytes_per_element=1):  # root/containers too
    return _activation_sizes_with(model, input_shape, bytes_per_element, leaves=False)


def act_hooks_left(model, input_shape=None, bytes_per_element=1):  # never removes hooks
    return _activation_sizes_with(model, input_shape, bytes_per_element, remove=False)


def act_batch_two(model, input_shape=None, bytes_per_element=1):
    return _activation_sizes_with(model, input_shape, bytes_per_element, batch=2)


def act_bytes_ignored(model, input_shape=None, bytes_per_element=1):
    return _activation_sizes_with(model, input_shape, bytes_per_element, bpe=1)


def act_input_output_swapped(model, input_shape=None, bytes_per_element=1):
    return _activation_sizes_with(model, input_shape, bytes_per_element, swap=True)


def naive_no_input(sizes):
    return sum(s.output_bytes for s in sizes)


def naive_allocating_only(sizes):
    return sizes[0].input_bytes + sum(s.output_bytes for s in sizes if s.allocates)


def _peak_solution(sizes):
    current = peak = sizes[0].input_bytes
    for s in sizes:
        if s.allocates:
            peak, current = max(peak, current + s.output_bytes), s.output_bytes
    return peak


def peak_is_naive_sum(sizes):
    return sizes[0].input_bytes + sum(s.output_bytes for s in sizes)


def peak_max_output(sizes):
    return max(s.output_bytes for s in sizes)


def peak_padded_input(sizes):  # uses the padded tensor the conv receives as its input
    return max(s.input_bytes + s.output_bytes for s in sizes if s.allocates)


def peak_ignores_allocates(sizes):
    return max(s.input_bytes + s.output_bytes for s in sizes)


def peak_sum_of_allocating_outputs(sizes):
    return sizes[0].input_bytes + sum(s.output_bytes for s in sizes if s.allocates)


def _macs(module, output_shape, *, groups=True, kernel=True, bn=0, pool=False, input_shape=None,
          linear_in_plus_out=False):
    out = math.prod(output_shape)
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size if kernel else (1, 1)
        return out * (module.in_channels // (module.groups if groups else 1)) * kh * kw
    if isinstance(module, nn.Linear):
        if linear_in_plus_out:
            return module.in_features + module.out_features
        return out * module.in_features
    if isinstance(module, nn.BatchNorm2d):
        return bn * out
    if pool and isinstance(module, nn.AvgPool2d):
        return math.prod(input_shape)
    return 0


def macs_groups_ignored(module, input_shape, output_shape):
    return _macs(module, output_shape, groups=False)


def macs_no_kernel(module, input_shape, output_shape):
    return _macs(module, output_shape, kernel=False)


def macs_linear_in_plus_out(module, input_shape, output_shape):
    return _macs(module, output_shape, linear_in_plus_out=True)


def macs_batchnorm_counted(module, input_shape, output_shape):
    return _macs(module, output_shape, bn=2)


def macs_avgpool_adds(module, input_shape, output_shape):
    return _macs(module, output_shape, pool=True, input_shape=input_shape)


def macs_input_elements(module, input_shape, output_shape):  # per input instead of output
    return _macs(module, input_shape)


def _count_with(model, input_shape, layer_fn, keep=lambda s: True):
    modules = dict(model.named_modules())
    per_layer = [(s.name, layer_fn(modules[s.name], s.input_shape, s.output_shape))
                 for s in S.activation_sizes(model, input_shape) if keep(s)]
    return per_layer, sum(m for _, m in per_layer)


def count_conv_only(model, input_shape=None):  # forgets the Linear layers
    return _count_with(model, input_shape, lambda m, i, o: S.layer_macs(m, i, o)
                       if isinstance(m, nn.Conv2d) else 0)


def count_allocating_only(model, input_shape=None):  # drops zero-MAC layers from the list
    return _count_with(model, input_shape, S.layer_macs, keep=lambda s: s.allocates)


def count_returns_flops(model, input_shape=None):
    per_layer, total = _count_with(model, input_shape, S.layer_macs)
    return [(n, 2 * m) for n, m in per_layer], 2 * total


def count_groups_ignored(model, input_shape=None):
    return _count_with(model, input_shape, macs_groups_ignored)


def flops_one_per_mac(model, input_shape=None):
    return S.count_macs(model, input_shape)[1]


def flops_with_bias_adds(model, input_shape=None):
    _, macs = S.count_macs(model, input_shape)
    sizes = S.activation_sizes(model, input_shape)
    modules = dict(model.named_modules())
    bias_adds = sum(s.output_elements for s in sizes
                    if getattr(modules[s.name], "bias", None) is not None
                    and isinstance(modules[s.name], (nn.Conv2d, nn.Linear)))
    return 2 * macs + bias_adds


def flops_four_per_mac(model, input_shape=None):
    return 4 * S.count_macs(model, input_shape)[1]


MUTANTS = [
    ("params: state_dict with BN buffers", "count_parameters", params_state_dict),
    ("params: trainable_only ignored", "count_parameters", params_ignore_trainable),
    ("params: bias forgotten", "count_parameters", params_no_bias),
    ("flash: bits not bytes", "flash_bytes", flash_bits),
    ("flash: trainable only", "flash_bytes", flash_trainable_only),
    ("flash: buffers counted", "flash_bytes", flash_with_buffers),
    ("flash: bias forgotten", "flash_bytes", flash_no_bias),
    ("estimate: bias forgotten", "estimate_flash_bytes", est_no_bias),
    ("estimate: int8 bias", "estimate_flash_bytes", est_bias_int8),
    ("estimate: BatchNorm not folded", "estimate_flash_bytes", est_batchnorm_not_folded),
    ("estimate: per-tensor qparams", "estimate_flash_bytes", est_per_tensor_qparams),
    ("estimate: qparams for weights only", "estimate_flash_bytes", est_weight_qparams_only),
    ("estimate: dtype ignored (4 bytes)", "estimate_flash_bytes", est_dtype_ignored),
    ("estimate: all parameters, no folding", "estimate_flash_bytes", est_all_parameters),
    ("estimate: overhead arguments ignored", "estimate_flash_bytes", est_overheads_hard_coded),
    ("activations: all modules incl. root", "activation_sizes", act_all_modules),
    ("activations: hooks left behind", "activation_sizes", act_hooks_left),
    ("activations: batch of two", "activation_sizes", act_batch_two),
    ("activations: bytes_per_element ignored", "activation_sizes", act_bytes_ignored),
    ("activations: input/output swapped", "activation_sizes", act_input_output_swapped),
    ("naive: input forgotten", "ram_naive_bytes", naive_no_input),
    ("naive: allocating layers only", "ram_naive_bytes", naive_allocating_only),
    ("naive: peak instead", "ram_naive_bytes", _peak_solution),
    ("peak: naive sum", "ram_peak_bytes", peak_is_naive_sum),
    ("peak: largest output only", "ram_peak_bytes", peak_max_output),
    ("peak: padded input", "ram_peak_bytes", peak_padded_input),
    ("peak: allocates ignored", "ram_peak_bytes", peak_ignores_allocates),
    ("peak: sum of allocating outputs", "ram_peak_bytes", peak_sum_of_allocating_outputs),
    ("macs: groups ignored", "layer_macs", macs_groups_ignored),
    ("macs: kernel size forgotten", "layer_macs", macs_no_kernel),
    ("macs: linear in + out", "layer_macs", macs_linear_in_plus_out),
    ("macs: BatchNorm as 2 ops/element", "layer_macs", macs_batchnorm_counted),
    ("macs: AvgPool adds counted", "layer_macs", macs_avgpool_adds),
    ("macs: input elements", "layer_macs", macs_input_elements),
    ("count_macs: conv only", "count_macs", count_conv_only),
    ("count_macs: weighted layers only", "count_macs", count_allocating_only),
    ("count_macs: returns FLOPs", "count_macs", count_returns_flops),
    ("count_macs: groups ignored", "count_macs", count_groups_ignored),
    ("flops: 1 per MAC", "count_flops", flops_one_per_mac),
    ("flops: bias adds counted", "count_flops", flops_with_bias_adds),
    ("flops: 4 per MAC", "count_flops", flops_four_per_mac),
]


MODULE = "size_estimate"
KIND = "mutants"
VARIANTS = [dict(name=label, target=function, function=impl, why=label)
            for label, function, impl in MUTANTS]
