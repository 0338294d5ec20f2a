"""Mutant set B for kwslab.size_estimate: plausible student mistakes, written from the
docstrings and the solution only (independently of set A). Each entry replaces one block."""
import textwrap

MODULE = "size_estimate"
KIND = "mutants"


def V(name, target, code="", why="", replace=()):
    if isinstance(code, tuple):  # pieces with their own indentation
        code = "\n".join(textwrap.dedent(c).strip("\n") for c in code)
    return dict(name=name, target=target, code=code, why=why, replace=replace)


_HOOKED_RUN = """
try:
    with torch.no_grad():
        model(x)
finally:
    for h in handles:
        h.remove()
"""

VARIANTS = [
    # ---------------------------------------------------------------- count_parameters
    V("params_with_buffers", "count_parameters", """
        total = sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
        return total + sum(b.numel() for b in model.buffers())
    """, "buffers counted"),
    V("params_state_dict", "count_parameters", """
        if trainable_only:
            frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        else:
            frozen = 0
        return sum(t.numel() for t in model.state_dict().values()) - frozen
    """, "state_dict: buffers and tied weights counted"),
    V("params_trainable_ignored", "count_parameters", """
        return sum(p.numel() for p in model.parameters())
    """, "trainable_only ignored"),
    V("params_trainable_inverted", "count_parameters", """
        return sum(p.numel() for p in model.parameters() if not p.requires_grad or trainable_only)
    """, "condition inverted"),
    V("params_per_module", "count_parameters", """
        return sum(p.numel() for m in model.modules() for p in m.parameters(recurse=False)
                   if p.requires_grad or not trainable_only)
    """, "a parameter shared by two modules counted twice"),
    V("params_weights_only", "count_parameters", """
        return sum(p.numel() for n, p in model.named_parameters()
                   if n.endswith("weight") and (p.requires_grad or not trainable_only))
    """, "biases not counted"),
    V("params_tensors", "count_parameters", """
        return len([p for p in model.parameters() if p.requires_grad or not trainable_only])
    """, "counts tensors, not elements"),
    V("params_children_only", "count_parameters", """
        return sum(p.numel() for c in model.children() for p in c.parameters(recurse=False)
                   if p.requires_grad or not trainable_only)
    """, "only direct children's own parameters"),
    # ---------------------------------------------------------------- flash_bytes
    V("flash_trainable_only", "flash_bytes", """
        return count_parameters(model) * bytes_per_weight
    """, "frozen parameters left out"),
    V("flash_with_buffers", "flash_bytes", """
        buffers = sum(b.numel() for b in model.buffers())
        return (count_parameters(model, trainable_only=False) + buffers) * bytes_per_weight
    """, "buffers stored too"),
    V("flash_bits", "flash_bytes", """
        return count_parameters(model, trainable_only=False) * bytes_per_weight * 8
    """, "bits"),
    # ---------------------------------------------------------------- estimate_flash_bytes
    V("ef_bias_if_present", "estimate_flash_bytes", """
        total = base_overhead_bytes + layer_overhead_bytes * len(layers)
        for _, m in layers:
            weights, channels = m.weight.numel(), m.weight.shape[0]
            bias = channels if m.bias is not None else 0
            if dtype == "int8":
                total += weights + BIAS_BYTES * bias + 2 * QPARAM_BYTES_PER_CHANNEL * channels
            else:
                total += 4 * (weights + bias)
        return total
    """, "bias counted only when the layer has one"),
    V("ef_one_qparam_set", "estimate_flash_bytes", """
        total = base_overhead_bytes + layer_overhead_bytes * len(layers)
        for _, m in layers:
            weights, channels = m.weight.numel(), m.weight.shape[0]
            if dtype == "int8":
                total += weights + BIAS_BYTES * channels + QPARAM_BYTES_PER_CHANNEL * channels
            else:
                total += 4 * (weights + channels)
        return total
    """, "qparams for the weight only"),
    V("ef_float_no_bias", "estimate_flash_bytes", """
        total = base_overhead_bytes + layer_overhead_bytes * len(layers)
        for _, m in layers:
            weights, channels = m.weight.numel(), m.weight.shape[0]
            if dtype == "int8":
                total += weights + BIAS_BYTES * channels + 2 * QPARAM_BYTES_PER_CHANNEL * channels
            else:
                total += 4 * weights
        return total
    """, "float32 bias forgotten"),
    V("ef_input_channels", "estimate_flash_bytes", """
        total = base_overhead_bytes + layer_overhead_bytes * len(layers)
        for _, m in layers:
            weights, channels = m.weight.numel(), m.weight.shape[1]
            if dtype == "int8":
                total += weights + BIAS_BYTES * channels + 2 * QPARAM_BYTES_PER_CHANNEL * channels
            else:
                total += 4 * (weights + channels)
        return total
    """, "channels = weight.shape[1]"),
    V("ef_no_layer_overhead", "estimate_flash_bytes", """
        total = base_overhead_bytes
        for _, m in layers:
            weights, channels = m.weight.numel(), m.weight.shape[0]
            if dtype == "int8":
                total += weights + BIAS_BYTES * channels + 2 * QPARAM_BYTES_PER_CHANNEL * channels
            else:
                total += 4 * (weights + channels)
        return total
    """, "per-layer overhead forgotten"),
    V("ef_int8_bias_1_byte", "estimate_flash_bytes", """
        total = base_overhead_bytes + layer_overhead_bytes * len(layers)
        for _, m in layers:
            weights, channels = m.weight.numel(), m.weight.shape[0]
            if dtype == "int8":
                total += weights + channels + 2 * QPARAM_BYTES_PER_CHANNEL * channels
            else:
                total += 4 * (weights + channels)
        return total
    """, "int8 bias at 1 byte"),
    V("ef_float_with_qparams", "estimate_flash_bytes", """
        total = base_overhead_bytes + layer_overhead_bytes * len(layers)
        for _, m in layers:
            weights, channels = m.weight.numel(), m.weight.shape[0]
            size = 1 if dtype == "int8" else 4
            total += size * weights + 4 * channels + 2 * QPARAM_BYTES_PER_CHANNEL * channels
        return total
    """, "float32 also pays qparams"),
    V("ef_base_per_layer", "estimate_flash_bytes", """
        total = (base_overhead_bytes + layer_overhead_bytes) * len(layers)
        for _, m in layers:
            weights, channels = m.weight.numel(), m.weight.shape[0]
            if dtype == "int8":
                total += weights + BIAS_BYTES * channels + 2 * QPARAM_BYTES_PER_CHANNEL * channels
            else:
                total += 4 * (weights + channels)
        return total
    """, "base overhead per layer"),
    V("ef_children_only", "estimate_flash_bytes", """
        layers = [(n, m) for n, m in model.named_children() if isinstance(m, (nn.Conv2d, nn.Linear))]
        total = base_overhead_bytes + layer_overhead_bytes * len(layers)
        for _, m in layers:
            weights, channels = m.weight.numel(), m.weight.shape[0]
            if dtype == "int8":
                total += weights + BIAS_BYTES * channels + 2 * QPARAM_BYTES_PER_CHANNEL * channels
            else:
                total += 4 * (weights + channels)
        return total
    """, "named_children: nested layers missed"),
    # ---------------------------------------------------------------- activation_sizes
    V("act_all_modules", "activation_sizes", ("""
        def hook(module, inputs, output, name):
            sizes.append(_record(name, module, inputs, output, bytes_per_element))

        handles = [m.register_forward_hook(functools.partial(hook, name=name))
                   for name, m in model.named_modules() if name]
    """, _HOOKED_RUN), "containers recorded too"),
    V("act_children", "activation_sizes", ("""
        def hook(module, inputs, output, name):
            sizes.append(_record(name, module, inputs, output, bytes_per_element))

        handles = [m.register_forward_hook(functools.partial(hook, name=name))
                   for name, m in model.named_children()]
    """, _HOOKED_RUN), "named_children: blocks recorded instead of their leaves"),
    V("act_late_binding", "activation_sizes", ("""
        handles = []
        for name, m in _leaf_modules(model):
            handles.append(m.register_forward_hook(
                lambda module, inputs, output: sizes.append(
                    _record(name, module, inputs, output, bytes_per_element))))
    """, _HOOKED_RUN), "closure sees the last name"),
    V("act_hooks_left", "activation_sizes", """
        def hook(module, inputs, output, name):
            sizes.append(_record(name, module, inputs, output, bytes_per_element))

        for name, m in _leaf_modules(model):
            m.register_forward_hook(functools.partial(hook, name=name))
        with torch.no_grad():
            model(x)
    """, "hooks never removed"),
    V("act_no_finally", "activation_sizes", """
        def hook(module, inputs, output, name):
            sizes.append(_record(name, module, inputs, output, bytes_per_element))

        handles = [m.register_forward_hook(functools.partial(hook, name=name))
                   for name, m in _leaf_modules(model)]
        with torch.no_grad():
            model(x)
        for h in handles:
            h.remove()
    """, "hooks stay when the forward raises"),
    V("act_output_as_input", "activation_sizes", ("""
        def hook(module, inputs, output, name):
            sizes.append(_record(name, module, (output,), output, bytes_per_element))

        handles = [m.register_forward_hook(functools.partial(hook, name=name))
                   for name, m in _leaf_modules(model)]
    """, _HOOKED_RUN), "input shape recorded from the output"),
    V("act_one_per_module", "activation_sizes", """
        seen = {}

        def hook(module, inputs, output, name):
            seen[name] = _record(name, module, inputs, output, bytes_per_element)

        handles = [m.register_forward_hook(functools.partial(hook, name=name))
                   for name, m in _leaf_modules(model)]
        try:
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
        sizes.extend(seen.values())
    """, "a dict: one record per module, not per call"),
    V("act_bytes_dropped", "activation_sizes", ("""
        def hook(module, inputs, output, name):
            sizes.append(_record(name, module, inputs, output, 1))

        handles = [m.register_forward_hook(functools.partial(hook, name=name))
                   for name, m in _leaf_modules(model)]
    """, _HOOKED_RUN), "bytes_per_element not passed on"),
    V("act_skips_root_leaf", "activation_sizes", ("""
        def hook(module, inputs, output, name):
            sizes.append(_record(name, module, inputs, output, bytes_per_element))

        leaves = [(n, m) for n, m in model.named_modules() if n and next(m.children(), None) is None]
        handles = [m.register_forward_hook(functools.partial(hook, name=name)) for name, m in leaves]
    """, _HOOKED_RUN), "a model that is a single leaf records nothing"),
    V("act_module_order", "activation_sizes", """
        records = {}

        def hook(module, inputs, output, name):
            records.setdefault(name, []).append(
                _record(name, module, inputs, output, bytes_per_element))

        leaves = _leaf_modules(model)
        handles = [m.register_forward_hook(functools.partial(hook, name=name)) for name, m in leaves]
        try:
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
        for name, _ in leaves:
            sizes.extend(records.get(name, []))
    """, "definition order instead of call order"),
    # ---------------------------------------------------------------- ram_naive_bytes
    V("naive_no_input", "ram_naive_bytes", """
        return sum(s.output_bytes for s in sizes)
    """, "input not counted"),
    V("naive_allocating_only", "ram_naive_bytes", """
        return sizes[0].input_bytes + sum(s.output_bytes for s in sizes if s.allocates)
    """, "allocates honoured"),
    V("naive_inputs_and_outputs", "ram_naive_bytes", """
        return sum(s.input_bytes + s.output_bytes for s in sizes)
    """, "every input and output"),
    V("naive_inputs_plus_last", "ram_naive_bytes", """
        return sum(s.input_bytes for s in sizes) + sizes[-1].output_bytes
    """, "inputs of every layer plus the last output"),
    # ---------------------------------------------------------------- ram_peak_bytes
    V("peak_layer_input", "ram_peak_bytes", """
        peak = sizes[0].input_bytes
        for s in sizes:
            if s.allocates:
                peak = max(peak, s.input_bytes + s.output_bytes)
        return peak
    """, "the layer's own input instead of the current buffer"),
    V("peak_ignores_allocates", "ram_peak_bytes", """
        current = peak = sizes[0].input_bytes
        for s in sizes:
            peak = max(peak, current + s.output_bytes)
            current = s.output_bytes
        return peak
    """, "every layer allocates"),
    V("peak_max_output", "ram_peak_bytes", """
        return max([sizes[0].input_bytes] + [s.output_bytes for s in sizes if s.allocates])
    """, "largest single tensor"),
    V("peak_zero_start", "ram_peak_bytes", """
        current, peak = sizes[0].input_bytes, 0
        for s in sizes:
            if s.allocates:
                peak = max(peak, current + s.output_bytes)
                current = s.output_bytes
        return peak
    """, "peak starts at 0, not the input"),
    V("peak_current_not_moved", "ram_peak_bytes", """
        current = peak = sizes[0].input_bytes
        for s in sizes:
            if s.allocates:
                peak = max(peak, current + s.output_bytes)
        return peak
    """, "current buffer never advances"),
    V("peak_sum", "ram_peak_bytes", """
        return sizes[0].input_bytes + sum(s.output_bytes for s in sizes if s.allocates)
    """, "sum of allocations"),
    # ---------------------------------------------------------------- layer_macs
    V("macs_ignore_groups", "layer_macs", """
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            return math.prod(output_shape) * module.in_channels * kh * kw
        if isinstance(module, nn.Linear):
            return math.prod(output_shape) * module.in_features
        return 0
    """, "groups ignored"),
    V("macs_out_channels", "layer_macs", """
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            return math.prod(output_shape) * (module.out_channels // module.groups) * kh * kw
        if isinstance(module, nn.Linear):
            return math.prod(output_shape) * module.in_features
        return 0
    """, "out_channels in place of in_channels"),
    V("macs_linear_no_batch", "layer_macs", """
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            return math.prod(output_shape) * (module.in_channels // module.groups) * kh * kw
        if isinstance(module, nn.Linear):
            return module.in_features * module.out_features
        return 0
    """, "Linear ignores the batch (and extra leading axes)"),
    V("macs_square_kernel", "layer_macs", """
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0]
            return math.prod(output_shape) * (module.in_channels // module.groups) * k * k
        if isinstance(module, nn.Linear):
            return math.prod(output_shape) * module.in_features
        return 0
    """, "kernel assumed square"),
    V("macs_batchnorm", "layer_macs", """
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            return math.prod(output_shape) * (module.in_channels // module.groups) * kh * kw
        if isinstance(module, nn.Linear):
            return math.prod(output_shape) * module.in_features
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return math.prod(output_shape)
        return 0
    """, "BatchNorm costs a MAC per element"),
    V("macs_no_batch_conv", "layer_macs", """
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            return math.prod(output_shape[1:]) * (module.in_channels // module.groups) * kh * kw
        if isinstance(module, nn.Linear):
            return math.prod(output_shape) * module.in_features
        return 0
    """, "conv drops the batch axis"),
    V("macs_with_bias", "layer_macs", """
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs = math.prod(output_shape) * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            macs = math.prod(output_shape) * module.in_features
        else:
            return 0
        return macs + (math.prod(output_shape) if module.bias is not None else 0)
    """, "bias adds counted"),
    V("macs_float", "layer_macs", """
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            return math.prod(output_shape) * (module.in_channels / module.groups) * kh * kw
        if isinstance(module, nn.Linear):
            return math.prod(output_shape) * module.in_features
        return 0
    """, "true division: a float"),
    V("macs_pool", "layer_macs", """
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            return math.prod(output_shape) * (module.in_channels // module.groups) * kh * kw
        if isinstance(module, nn.Linear):
            return math.prod(output_shape) * module.in_features
        if isinstance(module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            return math.prod(input_shape)
        return 0
    """, "average pooling counted"),
    # ---------------------------------------------------------------- count_macs / count_flops
    V("cm_children", "count_macs", """
        modules = dict(model.named_modules())
        per_layer = [(name, layer_macs(m, s.input_shape, s.output_shape))
                     for (name, m), s in zip(model.named_children(), activation_sizes(model, shape))]
        return per_layer, sum(macs for _, macs in per_layer)
    """, "zips children with records: wrong for nested models"),
    V("cm_nonzero_only", "count_macs", """
        modules = dict(model.named_modules())
        per_layer = [(s.name, layer_macs(modules[s.name], s.input_shape, s.output_shape))
                     for s in activation_sizes(model, shape)]
        per_layer = [(n, m) for n, m in per_layer if m]
        return per_layer, sum(macs for _, macs in per_layer)
    """, "zero-MAC layers dropped"),
    V("cm_per_module", "count_macs", """
        modules = dict(model.named_modules())
        merged = {}
        for s in activation_sizes(model, shape):
            merged[s.name] = merged.get(s.name, 0) + layer_macs(modules[s.name], s.input_shape, s.output_shape)
        per_layer = list(merged.items())
        return per_layer, sum(macs for _, macs in per_layer)
    """, "one entry per module, not per call"),
    V("cm_default_shape", "count_macs", """
        modules = dict(model.named_modules())
        per_layer = [(s.name, layer_macs(modules[s.name], s.input_shape, s.output_shape))
                     for s in activation_sizes(model)]
        return per_layer, sum(macs for _, macs in per_layer)
    """, "input_shape not passed on"),
    V("flops_equal_macs", "count_flops", """
        return count_macs(model, input_shape)[1]
    """, "FLOPs = MACs"),
    V("flops_default_shape", "count_flops", """
        return 2 * count_macs(model)[1]
    """, "input_shape not passed on"),
]
