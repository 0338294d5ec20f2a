"""Correct alternatives for kwslab.size_estimate: other right answers the graded tests must
accept (loops instead of comprehensions, numpy, torch's own FLOP counter and global hooks)."""
import textwrap

MODULE = "size_estimate"
KIND = "alternatives"


def V(name, target, code="", why="", replace=()):
    if isinstance(code, tuple):
        code = "\n".join(textwrap.dedent(c).strip("\n") for c in code)
    return dict(name=name, target=target, code=code, why=why, replace=replace)


VARIANTS = [
    V("params_named_loop", "count_parameters", """
        total = 0
        for _, p in model.named_parameters():
            if p.requires_grad or not trainable_only:
                total += p.numel()
        return total
    """, "loop over named_parameters"),
    V("params_vector", "count_parameters", """
        params = [p for p in model.parameters() if p.requires_grad or not trainable_only]
        return int(torch.nn.utils.parameters_to_vector(params).numel()) if params else 0
    """, "torch.nn.utils.parameters_to_vector"),
    V("flash_numpy", "flash_bytes", """
        sizes = [p.numel() for p in model.parameters()]
        return int(np.sum(sizes, dtype=np.int64)) * bytes_per_weight
    """, "numpy sum"),
    V("ef_out_channels", "estimate_flash_bytes", """
        per_weight = BYTES_PER_ELEMENT[dtype]
        total = base_overhead_bytes
        for _, m in layers:
            channels = m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
            total += layer_overhead_bytes + per_weight * m.weight.numel()
            total += (BIAS_BYTES if dtype == "int8" else 4) * channels
            if dtype == "int8":
                total += 2 * channels * QPARAM_BYTES_PER_CHANNEL
        return total
    """, "out_channels / out_features, one overhead per layer in the loop"),
    V("act_global_hook", "activation_sizes", """
        names = {id(m): name for name, m in _leaf_modules(model)}

        def hook(module, inputs, output):
            if id(module) in names:
                sizes.append(_record(names[id(module)], module, inputs, output,
                                     bytes_per_element))

        handle = torch.nn.modules.module.register_module_forward_hook(hook)
        try:
            with torch.no_grad():
                model(x)
        finally:
            handle.remove()
    """, "one global forward hook (torch.nn.modules.module.register_module_forward_hook)"),
    V("act_default_arg_closure", "activation_sizes", """
        handles = []
        for name, m in _leaf_modules(model):
            handles.append(m.register_forward_hook(
                lambda module, inputs, output, name=name: sizes.append(
                    _record(name, module, inputs, output, bytes_per_element))))
        try:
            with torch.no_grad():
                model(x)
        finally:
            while handles:
                handles.pop().remove()
    """, "default-argument closure instead of functools.partial"),
    V("naive_loop", "ram_naive_bytes", """
        total = sizes[0].input_bytes
        for s in sizes:
            total += s.output_elements * s.bytes_per_element
        return total
    """, "loop with output_elements"),
    V("peak_reduce", "ram_peak_bytes", """
        outputs = [s.output_bytes for s in sizes if s.allocates]
        buffers = [sizes[0].input_bytes] + outputs
        pairs = [a + b for a, b in zip(buffers, buffers[1:])]
        return max([sizes[0].input_bytes] + pairs)
    """, "pairs of consecutive buffers"),
    V("macs_flop_counter", "layer_macs", """
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            return 0
        from torch.utils.flop_counter import FlopCounterMode
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            module(torch.zeros(tuple(input_shape)))
        return counter.get_total_flops() // 2
    """, "torch.utils.flop_counter.FlopCounterMode on zeros, flops / 2"),
    V("macs_explicit", "layer_macs", """
        if isinstance(module, nn.Conv2d):
            per_output = (module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3])
            return int(np.prod(output_shape)) * per_output
        if isinstance(module, nn.Linear):
            return int(np.prod(output_shape[:-1])) * module.weight.numel()
        return 0
    """, "from the weight shape (C_in / groups = weight.shape[1]); numpy prod"),
    V("count_macs_loop", "count_macs", """
        modules = dict(model.named_modules())
        per_layer, total = [], 0
        for s in activation_sizes(model, shape):
            macs = layer_macs(modules[s.name], s.input_shape, s.output_shape)
            per_layer.append((s.name, macs))
            total += macs
        return per_layer, total
    """, "loop with a running total"),
    V("flops_per_layer", "count_flops", """
        per_layer, _ = count_macs(model, input_shape)
        return sum(2 * macs for _, macs in per_layer)
    """, "sum of per-layer FLOPs"),
    V("params_set", "count_parameters", """
        unique = {id(p): p for p in model.parameters()}.values()
        return sum(p.numel() for p in unique if p.requires_grad or not trainable_only)
    """, "dict of unique parameters"),
    V("peak_events", "ram_peak_bytes", """
        live, costs = sizes[0].input_bytes, [sizes[0].input_bytes]
        for s in filter(lambda s: s.allocates, sizes):
            costs.append(live + s.output_bytes)
            live = s.output_bytes
        return max(costs)
    """, "list of costs and filter"),
]
