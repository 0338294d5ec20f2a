"""Mutant set B for kwslab.prune: plausible student mistakes, written from the docstrings and
the solution only (independently of set A). Each entry replaces one solution block."""
import textwrap

MODULE = "prune"
KIND = "mutants"


def V(name, target, code="", why="", replace=()):
    if isinstance(code, tuple):  # pieces with their own indentation
        code = "\n".join(textwrap.dedent(c).strip("\n") for c in code)
    return dict(name=name, target=target, code=code, why=why, replace=replace)


_SCORES = """
if group_dim is None:
    scores = w.abs().flatten()
else:
    groups = w.movedim(group_dim, 0).flatten(1)
    scores = torch.linalg.vector_norm(groups, ord=NORMS[norm], dim=1)
"""


def _mask(body, scores=_SCORES):
    return scores + body


_GLOBAL_APPLY = """
for name, m in layers:
    prune.custom_from_mask(m, "weight", masks[name])
return {name: m.weight_mask.bool() for name, m in layers}
"""

VARIANTS = [
    # ---------------------------------------------------------------- magnitude_prune_mask
    V("mask_unstable_sort", "magnitude_prune_mask", _mask("""
num_pruned = round(sparsity * scores.numel())
keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
keep[torch.sort(scores).indices[:num_pruned]] = False
"""), "sort without stable=True (ties in any order beyond 16 elements)"),
    V("mask_topk_keep", "magnitude_prune_mask", _mask("""
num_keep = scores.numel() - round(sparsity * scores.numel())
keep = torch.zeros(scores.numel(), dtype=torch.bool, device=w.device)
keep[torch.topk(scores, num_keep).indices] = True
"""), "topk of the kept ones: tie order unspecified"),
    V("mask_descending_tail", "magnitude_prune_mask", _mask("""
num_pruned = round(sparsity * scores.numel())
order = torch.sort(scores, descending=True, stable=True).indices
keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
keep[order[scores.numel() - num_pruned:]] = False
"""), "prunes the tail of a descending sort: ties pruned from the highest index"),
    V("mask_threshold_le", "magnitude_prune_mask", _mask("""
num_pruned = round(sparsity * scores.numel())
if num_pruned == 0:
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
else:
    threshold = torch.kthvalue(scores, num_pruned).values
    keep = scores > threshold
"""), "threshold <= kth value: prunes every tie"),
    V("mask_threshold_lt", "magnitude_prune_mask", _mask("""
num_pruned = round(sparsity * scores.numel())
if num_pruned == 0:
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
else:
    threshold = torch.kthvalue(scores, num_pruned).values
    keep = scores >= threshold
    keep[torch.argmin(scores)] = False
"""), "prunes below the kth value (too few when ties straddle it)"),
    V("mask_int_count", "magnitude_prune_mask", _mask("""
num_pruned = int(sparsity * scores.numel())
keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
keep[torch.sort(scores, stable=True).indices[:num_pruned]] = False
"""), "int() truncates the count"),
    V("mask_ceil_count", "magnitude_prune_mask", _mask("""
num_pruned = math.ceil(sparsity * scores.numel())
keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
keep[torch.sort(scores, stable=True).indices[:num_pruned]] = False
"""), "ceil count"),
    V("mask_round_half_up", "magnitude_prune_mask", _mask("""
num_pruned = int(sparsity * scores.numel() + 0.5)
keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
keep[torch.sort(scores, stable=True).indices[:num_pruned]] = False
"""), "round half up"),
    V("mask_round_kept", "magnitude_prune_mask", _mask("""
num_pruned = scores.numel() - round((1 - sparsity) * scores.numel())
keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
keep[torch.sort(scores, stable=True).indices[:num_pruned]] = False
"""), "rounds the kept count (differs at odd n)"),
    V("mask_signed_scores", "magnitude_prune_mask", _mask("""
num_pruned = round(sparsity * scores.numel())
keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
keep[torch.sort(scores, stable=True).indices[:num_pruned]] = False
""", scores="""
if group_dim is None:
    scores = w.flatten()
else:
    groups = w.movedim(group_dim, 0).flatten(1)
    scores = torch.linalg.vector_norm(groups, ord=NORMS[norm], dim=1)
"""), "signed weights as scores"),
    V("mask_group_norm_ignored", "magnitude_prune_mask", _mask("""
num_pruned = round(sparsity * scores.numel())
keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
keep[torch.sort(scores, stable=True).indices[:num_pruned]] = False
""", scores="""
if group_dim is None:
    scores = w.abs().flatten()
else:
    scores = w.movedim(group_dim, 0).flatten(1).abs().sum(1)
"""), "groups always scored by L1"),
    V("mask_linf_as_l1", "magnitude_prune_mask", _mask("""
num_pruned = round(sparsity * scores.numel())
keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
keep[torch.sort(scores, stable=True).indices[:num_pruned]] = False
""", scores="""
if group_dim is None:
    scores = w.abs().flatten()
else:
    groups = w.movedim(group_dim, 0).flatten(1)
    scores = torch.linalg.vector_norm(groups, ord=2 if norm == "l2" else 1, dim=1)
"""), "linf falls back to L1"),
    V("mask_group_per_tap_sum", "magnitude_prune_mask", _mask("""
num_pruned = round(sparsity * scores.numel())
keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
keep[torch.sort(scores, stable=True).indices[:num_pruned]] = False
""", scores="""
if group_dim is None:
    scores = w.abs().flatten()
else:
    g = w.movedim(group_dim, 0)
    scores = torch.linalg.vector_norm(g, ord=NORMS[norm], dim=1)
    scores = scores.reshape(g.shape[0], -1).sum(1)
"""), "norm over the second axis, then summed over kernel taps (right for 1x1 only)"),
    V("mask_group_dim_ignored", "magnitude_prune_mask", _mask("""
num_pruned = round(sparsity * scores.numel())
keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
keep[torch.sort(scores, stable=True).indices[:num_pruned]] = False
""", scores="""
if group_dim is None:
    scores = w.abs().flatten()
else:
    scores = torch.linalg.vector_norm(w.flatten(1), ord=NORMS[norm], dim=1)
"""), "groups always along dim 0"),
    V("mask_keeps_one", "magnitude_prune_mask", _mask("""
num_pruned = min(round(sparsity * scores.numel()), scores.numel() - 1)
keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
keep[torch.sort(scores, stable=True).indices[:num_pruned]] = False
"""), "always keeps one weight"),
    V("mask_float", "magnitude_prune_mask", _mask("""
num_pruned = round(sparsity * scores.numel())
keep = torch.ones(scores.numel(), device=w.device)
keep[torch.sort(scores, stable=True).indices[:num_pruned]] = 0
"""), "float mask"),
    # ---------------------------------------------------------------- global pruning
    V("global_per_layer", "apply_global_magnitude_pruning", ("""
        masks = {name: magnitude_prune_mask(m.weight, sparsity) for name, m in layers}
    """, _GLOBAL_APPLY), "each layer pruned at sparsity (not global)"),
    V("global_threshold_ties", "apply_global_magnitude_pruning", ("""
        scores = torch.cat([m.weight.detach().abs().flatten() for _, m in layers])
        num_pruned = round(sparsity * scores.numel())
        if num_pruned == 0:
            masks = {name: torch.ones_like(m.weight, dtype=torch.bool) for name, m in layers}
        else:
            threshold = torch.kthvalue(scores, num_pruned).values
            masks = {name: m.weight.detach().abs() > threshold for name, m in layers}
    """, _GLOBAL_APPLY), "global threshold: every tie pruned"),
    V("global_unstable", "apply_global_magnitude_pruning", ("""
        scores = torch.cat([m.weight.detach().abs().flatten() for _, m in layers])
        num_pruned = round(sparsity * scores.numel())
        flat = torch.ones(scores.numel(), dtype=torch.bool)
        flat[torch.sort(scores).indices[:num_pruned]] = False
        pieces = flat.split([m.weight.numel() for _, m in layers])
        masks = {name: p.view_as(m.weight) for (name, m), p in zip(layers, pieces)}
    """, _GLOBAL_APPLY), "own unstable sort across layers"),
    V("global_reversed_ties", "apply_global_magnitude_pruning", ("""
        scores = torch.cat([m.weight.detach().flatten() for _, m in reversed(layers)])
        flat = magnitude_prune_mask(scores, sparsity)
        pieces = flat.split([m.weight.numel() for _, m in reversed(layers)])
        masks = {name: p.view_as(m.weight) for (name, m), p in zip(reversed(layers), pieces)}
    """, _GLOBAL_APPLY), "concatenates the layers last to first: ties across layers flip"),
    V("global_normalized", "apply_global_magnitude_pruning", ("""
        scores = torch.cat([(m.weight.detach() / m.weight.detach().abs().max()).flatten()
                            for _, m in layers])
        flat = magnitude_prune_mask(scores, sparsity)
        pieces = flat.split([m.weight.numel() for _, m in layers])
        masks = {name: p.view_as(m.weight) for (name, m), p in zip(layers, pieces)}
    """, _GLOBAL_APPLY), "scores normalised per layer"),
    V("global_with_bias", "apply_global_magnitude_pruning", ("""
        weights = torch.cat([m.weight.detach().abs().flatten() for _, m in layers])
        biases = torch.cat([m.bias.detach().abs().flatten() for _, m in layers
                            if getattr(m, "bias", None) is not None] or [weights[:0]])
        everything = torch.cat([weights, biases])
        num_pruned = round(sparsity * everything.numel())
        order = torch.sort(everything, stable=True).indices[:num_pruned]
        flat = torch.ones(everything.numel(), dtype=torch.bool)
        flat[order] = False
        pieces = flat[: weights.numel()].split([m.weight.numel() for _, m in layers])
        masks = {name: p.view_as(m.weight) for (name, m), p in zip(layers, pieces)}
    """, _GLOBAL_APPLY), "biases take part in the ranking"),
    V("global_no_reparam", "apply_global_magnitude_pruning", """
        scores = torch.cat([m.weight.detach().flatten() for _, m in layers])
        flat = magnitude_prune_mask(scores, sparsity)
        pieces = flat.split([m.weight.numel() for _, m in layers])
        masks = {name: p.view_as(m.weight) for (name, m), p in zip(layers, pieces)}
        with torch.no_grad():
            for name, m in layers:
                m.weight.mul_(masks[name])
        return masks
    """, "zeroes the weights once instead of custom_from_mask"),
    V("global_scores_orig", "apply_global_magnitude_pruning", ("""
        scores = torch.cat([getattr(m, "weight_orig", m.weight).detach().flatten()
                            for _, m in layers])
        flat = magnitude_prune_mask(scores, sparsity)
        pieces = flat.split([m.weight.numel() for _, m in layers])
        masks = {name: p.view_as(m.weight) for (name, m), p in zip(layers, pieces)}
    """, _GLOBAL_APPLY), "re-pruning ranks weight_orig (ignores the old mask)"),
    V("global_returns_new_mask", "apply_global_magnitude_pruning", """
        scores = torch.cat([m.weight.detach().flatten() for _, m in layers])
        flat = magnitude_prune_mask(scores, sparsity)
        pieces = flat.split([m.weight.numel() for _, m in layers])
        masks = {name: p.view_as(m.weight) for (name, m), p in zip(layers, pieces)}
        for name, m in layers:
            prune.custom_from_mask(m, "weight", masks[name])
        return masks
    """, "returns this call's mask, not the mask in effect"),
    V("global_float_masks", "apply_global_magnitude_pruning", """
        scores = torch.cat([m.weight.detach().flatten() for _, m in layers])
        flat = magnitude_prune_mask(scores, sparsity)
        pieces = flat.split([m.weight.numel() for _, m in layers])
        masks = {name: p.view_as(m.weight) for (name, m), p in zip(layers, pieces)}
        for name, m in layers:
            prune.custom_from_mask(m, "weight", masks[name])
        return {name: m.weight_mask for name, m in layers}
    """, "returns torch's float weight_mask"),
    V("global_top_level_only", "apply_global_magnitude_pruning", ("""
        top = [(n, m) for n, m in model.named_children() if isinstance(m, tuple(layer_types))]
        layers = top or layers
        scores = torch.cat([m.weight.detach().flatten() for _, m in layers])
        flat = magnitude_prune_mask(scores, sparsity)
        pieces = flat.split([m.weight.numel() for _, m in layers])
        masks = {name: p.view_as(m.weight) for (name, m), p in zip(layers, pieces)}
    """, _GLOBAL_APPLY), "named_children: layers inside blocks escape"),
    # ---------------------------------------------------------------- layerwise pruning
    V("layer_l1_unstructured", "apply_layerwise_pruning", """
        masks = {}
        for name, sparsity in sparsities.items():
            prune.l1_unstructured(modules[name], "weight", amount=sparsity)
            masks[name] = modules[name].weight_mask.bool()
        return masks
    """, "torch l1_unstructured: an int sparsity is a count, ties by topk"),
    V("layer_no_reparam", "apply_layerwise_pruning", """
        masks = {}
        for name, sparsity in sparsities.items():
            module = modules[name]
            masks[name] = magnitude_prune_mask(module.weight, sparsity)
            with torch.no_grad():
                module.weight.mul_(masks[name])
        return masks
    """, "zeroes once instead of custom_from_mask"),
    V("layer_one_sparsity", "apply_layerwise_pruning", """
        masks = {}
        first = next(iter(sparsities.values()), 0.0)
        for name in sparsities:
            module = modules[name]
            masks[name] = magnitude_prune_mask(module.weight, first)
            prune.custom_from_mask(module, "weight", masks[name])
        return {name: modules[name].weight_mask.bool() for name in sparsities}
    """, "the first sparsity for every layer"),
    V("layer_scores_orig", "apply_layerwise_pruning", """
        for name, sparsity in sparsities.items():
            module = modules[name]
            mask = magnitude_prune_mask(getattr(module, "weight_orig", module.weight), sparsity)
            prune.custom_from_mask(module, "weight", mask)
        return {name: modules[name].weight_mask.bool() for name in sparsities}
    """, "re-pruning ranks weight_orig"),
    V("layer_returns_new_mask", "apply_layerwise_pruning", """
        masks = {}
        for name, sparsity in sparsities.items():
            module = modules[name]
            masks[name] = magnitude_prune_mask(module.weight, sparsity)
            prune.custom_from_mask(module, "weight", masks[name])
        return masks
    """, "returns this call's mask, not the mask in effect"),
    V("layer_replaces_old_mask", "apply_layerwise_pruning", """
        for name, sparsity in sparsities.items():
            module = modules[name]
            if prune.is_pruned(module) and hasattr(module, "weight_orig"):
                prune.remove(module, "weight")
            mask = magnitude_prune_mask(module.weight, sparsity)
            prune.custom_from_mask(module, "weight", mask)
        return {name: modules[name].weight_mask.bool() for name in sparsities}
    """, "removes the old reparametrization first (old mask forgotten, zeros kept)"),
    # ---------------------------------------------------------------- channel_importance
    V("imp_norm_ignored", "channel_importance", """
        if isinstance(module, nn.BatchNorm2d):
            return module.weight.detach().abs()
        return torch.linalg.vector_norm(module.weight.detach().flatten(1), dim=1)
    """, "always L2"),
    V("imp_bn_signed", "channel_importance", """
        if isinstance(module, nn.BatchNorm2d):
            return module.weight.detach().clone()
        return torch.linalg.vector_norm(module.weight.detach().flatten(1), ord=NORMS[norm], dim=1)
    """, "BatchNorm gamma not abs"),
    V("imp_with_bias", "channel_importance", """
        if isinstance(module, nn.BatchNorm2d):
            return module.weight.detach().abs()
        w = module.weight.detach().flatten(1)
        if module.bias is not None:
            w = torch.cat([w, module.bias.detach()[:, None]], dim=1)
        return torch.linalg.vector_norm(w, ord=NORMS[norm], dim=1)
    """, "bias counted in the norm"),
    V("imp_per_tap_sum", "channel_importance", """
        if isinstance(module, nn.BatchNorm2d):
            return module.weight.detach().abs()
        w = module.weight.detach()
        per_tap = torch.linalg.vector_norm(w, ord=NORMS[norm], dim=1)
        return per_tap.reshape(w.shape[0], -1).sum(1)
    """, "norm over input channels, summed over kernel taps (right for 1x1 or L1)"),
    V("imp_first_tap", "channel_importance", """
        if isinstance(module, nn.BatchNorm2d):
            return module.weight.detach().abs()
        w = module.weight.detach()
        if w.dim() == 4:
            w = w[:, :, 0, 0]
        return torch.linalg.vector_norm(w, ord=NORMS[norm], dim=1)
    """, "kernel not flattened (1x1 view)"),
    V("imp_input_axis", "channel_importance", """
        if isinstance(module, nn.BatchNorm2d):
            return module.weight.detach().abs()
        w = module.weight.detach().transpose(0, 1).flatten(1)
        return torch.linalg.vector_norm(w, ord=NORMS[norm], dim=1)
    """, "norm per input channel"),
    V("imp_not_detached", "channel_importance", """
        if isinstance(module, nn.BatchNorm2d):
            return module.weight.abs()
        return torch.linalg.vector_norm(module.weight.flatten(1), ord=NORMS[norm], dim=1)
    """, "not detached"),
    # ---------------------------------------------------------------- channels_to_keep
    V("ctk_keeps_fraction", "channels_to_keep", """
        num_keep = max(1, round(importance.numel() * channel_sparsity))
        order = torch.sort(importance, descending=True, stable=True).indices
        return torch.sort(order[:num_keep]).values
    """, "keeps the fraction instead of removing it"),
    V("ctk_can_keep_none", "channels_to_keep", """
        num_keep = round(importance.numel() * (1 - channel_sparsity))
        order = torch.sort(importance, descending=True, stable=True).indices
        return torch.sort(order[:num_keep]).values
    """, "no max(1, ...)"),
    V("ctk_unstable", "channels_to_keep", """
        num_keep = max(1, round(importance.numel() * (1 - channel_sparsity)))
        order = torch.sort(importance, descending=True).indices
        return torch.sort(order[:num_keep]).values
    """, "unstable sort"),
    V("ctk_ascending_tail", "channels_to_keep", """
        num_keep = max(1, round(importance.numel() * (1 - channel_sparsity)))
        order = torch.sort(importance, stable=True).indices
        return torch.sort(order[importance.numel() - num_keep:]).values
    """, "tail of an ascending sort: ties keep the higher index"),
    V("ctk_unsorted", "channels_to_keep", """
        num_keep = max(1, round(importance.numel() * (1 - channel_sparsity)))
        return torch.sort(importance, descending=True, stable=True).indices[:num_keep]
    """, "indices in importance order"),
    V("ctk_int_count", "channels_to_keep", """
        num_keep = max(1, int(importance.numel() * (1 - channel_sparsity)))
        order = torch.sort(importance, descending=True, stable=True).indices
        return torch.sort(order[:num_keep]).values
    """, "int() truncation"),
    V("ctk_round_removed", "channels_to_keep", """
        num_keep = max(1, importance.numel() - round(importance.numel() * channel_sparsity))
        order = torch.sort(importance, descending=True, stable=True).indices
        return torch.sort(order[:num_keep]).values
    """, "rounds the removed count (differs at odd C)"),
    V("ctk_topk", "channels_to_keep", """
        num_keep = max(1, round(importance.numel() * (1 - channel_sparsity)))
        return torch.sort(torch.topk(importance, num_keep).indices).values
    """, "topk: tie order unspecified"),
    V("ctk_int32", "channels_to_keep", """
        num_keep = max(1, round(importance.numel() * (1 - channel_sparsity)))
        order = torch.sort(importance, descending=True, stable=True).indices
        return torch.sort(order[:num_keep]).values.to(torch.int32)
    """, "int32 indices"),
    # ---------------------------------------------------------------- slice_conv2d
    V("sc_bias_unsliced", "slice_conv2d", """
        w = conv.weight.detach()
        b = None if conv.bias is None else conv.bias.detach()
        if out_keep is not None:
            w = w[out_keep]
            if b is not None and len(out_keep) != b.numel():
                b = b[: len(out_keep)]
        if in_keep is not None and not depthwise:
            w = w[:, in_keep]
        groups = w.shape[0] if depthwise else 1
    """, "bias cut to length, not indexed"),
    V("sc_depthwise_groups_1", "slice_conv2d", """
        w = conv.weight.detach()
        b = None if conv.bias is None else conv.bias.detach()
        if out_keep is not None:
            w, b = w[out_keep], (None if b is None else b[out_keep])
        if in_keep is not None and not depthwise:
            w = w[:, in_keep]
        groups = conv.groups if depthwise else 1
    """, "depthwise keeps the old groups"),
    V("sc_in_before_out_swapped", "slice_conv2d", """
        w = conv.weight.detach()
        b = None if conv.bias is None else conv.bias.detach()
        if in_keep is not None and not depthwise:
            w = w[in_keep] if w.shape[0] == w.shape[1] else w[:, in_keep]
        if out_keep is not None:
            w = w[:, out_keep] if w.shape[0] == w.shape[1] and not depthwise else w[out_keep]
            b = None if b is None else b[out_keep]
        groups = w.shape[0] if depthwise else 1
    """, "axes swapped for square weights"),
    V("sc_drops_bias", "slice_conv2d", """
        w = conv.weight.detach()
        b = None
        if out_keep is not None:
            w = w[out_keep]
        if in_keep is not None and not depthwise:
            w = w[:, in_keep]
        groups = w.shape[0] if depthwise else 1
    """, "bias dropped"),
    # ---------------------------------------------------------------- slice_batchnorm2d
    V("sbn_var_reset", "slice_batchnorm2d", """
        new = nn.BatchNorm2d(len(keep), bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        for name in ("weight", "bias", "running_mean"):
            if getattr(bn, name) is not None:
                getattr(new, name).data.copy_(getattr(bn, name).detach()[keep])
        if bn.track_running_stats:
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
        return new.to(device=keep.device, dtype=bn.weight.dtype if bn.weight is not None else None).train(bn.training)
    """, "running_var not copied"),
    V("sbn_default_eps", "slice_batchnorm2d", """
        new = nn.BatchNorm2d(len(keep), momentum=bn.momentum, affine=bn.affine,
                             track_running_stats=bn.track_running_stats)
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(bn, name) is not None:
                getattr(new, name).data.copy_(getattr(bn, name).detach()[keep])
        if bn.track_running_stats:
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
        return new.to(keep.device).train(bn.training)
    """, "eps not copied"),
    V("sbn_default_momentum", "slice_batchnorm2d", """
        new = nn.BatchNorm2d(len(keep), bn.eps, affine=bn.affine,
                             track_running_stats=bn.track_running_stats)
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(bn, name) is not None:
                getattr(new, name).data.copy_(getattr(bn, name).detach()[keep])
        if bn.track_running_stats:
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
        return new.to(keep.device).train(bn.training)
    """, "momentum not copied"),
    V("sbn_no_batches_tracked", "slice_batchnorm2d", """
        new = nn.BatchNorm2d(len(keep), bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(bn, name) is not None:
                getattr(new, name).data.copy_(getattr(bn, name).detach()[keep])
        return new.to(keep.device).train(bn.training)
    """, "num_batches_tracked not copied"),
    V("sbn_no_beta", "slice_batchnorm2d", """
        new = nn.BatchNorm2d(len(keep), bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        for name in ("weight", "running_mean", "running_var"):
            if getattr(bn, name) is not None:
                getattr(new, name).data.copy_(getattr(bn, name).detach()[keep])
        if bn.track_running_stats:
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
        return new.to(keep.device).train(bn.training)
    """, "beta (bias) not copied"),
    V("sbn_train_mode", "slice_batchnorm2d", """
        new = nn.BatchNorm2d(len(keep), bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(bn, name) is not None:
                getattr(new, name).data.copy_(getattr(bn, name).detach()[keep])
        if bn.track_running_stats:
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
        return new.to(keep.device)
    """, "new layer always in train mode"),
    V("sbn_float32", "slice_batchnorm2d", """
        new = nn.BatchNorm2d(len(keep), bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(bn, name) is not None:
                getattr(new, name).data.copy_(getattr(bn, name).detach()[keep])
        if bn.track_running_stats:
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
        return new.to(keep.device).train(bn.training)
    """, "float32 whatever bn's dtype"),
    # ---------------------------------------------------------------- slice_linear_inputs
    V("sl_channels_last", "slice_linear_inputs", """
        num_channels = linear.in_features // features_per_channel
        offsets = torch.arange(features_per_channel, device=keep.device)
        columns = (offsets[:, None] * num_channels + keep[None, :]).flatten()
        new = nn.Linear(len(columns), linear.out_features, bias=linear.bias is not None)
        new.weight.data.copy_(linear.weight.detach()[:, columns])
        if linear.bias is not None:
            new.bias.data.copy_(linear.bias.detach())
        return new.to(linear.weight.device)
    """, "(H, W, C) feature order"),
    V("sl_repeat_interleave", "slice_linear_inputs", """
        columns = keep.repeat_interleave(features_per_channel)
        columns = columns + torch.arange(len(columns), device=keep.device) % features_per_channel
        new = nn.Linear(len(columns), linear.out_features, bias=linear.bias is not None)
        new.weight.data.copy_(linear.weight.detach()[:, columns])
        if linear.bias is not None:
            new.bias.data.copy_(linear.bias.detach())
        return new.to(linear.weight.device)
    """, "channel index not multiplied by features_per_channel"),
    V("sl_no_bias", "slice_linear_inputs", """
        offsets = torch.arange(features_per_channel, device=keep.device)
        columns = (keep[:, None] * features_per_channel + offsets[None, :]).flatten()
        new = nn.Linear(len(columns), linear.out_features, bias=linear.bias is not None)
        new.weight.data.copy_(linear.weight.detach()[:, columns])
        return new.to(linear.weight.device)
    """, "bias left at its random init"),
    V("sl_first_feature_only", "slice_linear_inputs", """
        columns = keep * features_per_channel
        columns = torch.cat([columns + j for j in range(features_per_channel)])
        new = nn.Linear(len(columns), linear.out_features, bias=linear.bias is not None)
        new.weight.data.copy_(linear.weight.detach()[:, columns])
        if linear.bias is not None:
            new.bias.data.copy_(linear.bias.detach())
        return new.to(linear.weight.device)
    """, "columns grouped by position instead of by channel"),
    V("sl_float32", "slice_linear_inputs", """
        offsets = torch.arange(features_per_channel, device=keep.device)
        columns = (keep[:, None] * features_per_channel + offsets[None, :]).flatten()
        new = nn.Linear(len(columns), linear.out_features, bias=linear.bias is not None)
        new.weight.data.copy_(linear.weight.detach()[:, columns].float())
        if linear.bias is not None:
            new.bias.data.copy_(linear.bias.detach().float())
        return new.to(linear.weight.device)
    """, "float32 whatever the layer's dtype"),
]
