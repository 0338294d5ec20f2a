"""Correct alternatives for kwslab.prune: other right answers the graded tests must accept
(numpy stable argsort, Python sorted, transpose instead of movedim, torch's l1_unstructured
with tie-free importance scores, deepcopy-and-slice layers, a view for the linear columns)."""
import textwrap

MODULE = "prune"
KIND = "alternatives"


def V(name, target, code="", why="", replace=()):
    if isinstance(code, tuple):
        code = "\n".join(textwrap.dedent(c).strip("\n") for c in code)
    return dict(name=name, target=target, code=code, why=why, replace=replace)


VARIANTS = [
    V("mask_numpy_stable", "magnitude_prune_mask", """
        import numpy as np
        if group_dim is None:
            scores = w.abs().flatten().cpu().numpy()
        else:
            groups = w.transpose(0, group_dim).reshape(w.shape[group_dim], -1).cpu().numpy()
            order = {"l1": 1, "l2": 2, "linf": np.inf}[norm]
            scores = np.linalg.norm(groups, ord=order, axis=1)
        num_pruned = round(sparsity * scores.size)
        keep_np = np.ones(scores.size, dtype=bool)
        keep_np[np.argsort(scores, kind="stable")[:num_pruned]] = False
        keep = torch.from_numpy(keep_np).to(w.device)
    """, "numpy: np.argsort(kind='stable'), np.linalg.norm, transpose"),
    V("mask_python_sorted", "magnitude_prune_mask", """
        if group_dim is None:
            scores = w.abs().flatten().tolist()
        else:
            g = w.movedim(group_dim, 0)
            scores = [torch.linalg.vector_norm(g[i], ord=NORMS[norm]).item() for i in range(g.shape[0])]
        num_pruned = round(sparsity * len(scores))
        pruned = sorted(range(len(scores)), key=lambda i: (scores[i], i))[:num_pruned]
        keep = torch.ones(len(scores), dtype=torch.bool, device=w.device)
        keep[pruned] = False
    """, "Python sorted with (score, index) keys; a norm per group"),
    V("mask_argsort_rank", "magnitude_prune_mask", """
        if group_dim is None:
            scores = w.abs().reshape(-1)
        else:
            dims = [d for d in range(w.dim()) if d != group_dim % w.dim()]
            scores = torch.linalg.vector_norm(w, ord=NORMS[norm], dim=dims)
        rank = torch.empty_like(scores, dtype=torch.long)
        rank[torch.argsort(scores, stable=True)] = torch.arange(scores.numel(), device=w.device)
        keep = rank >= round(sparsity * scores.numel())
    """, "rank of each score from a stable argsort; vector_norm over several dims"),
    V("global_rank_l1_unstructured", "apply_global_magnitude_pruning", """
        flat = torch.cat([m.weight.detach().abs().flatten() for _, m in layers])
        rank = torch.empty(flat.numel())
        rank[torch.argsort(flat, stable=True)] = torch.arange(flat.numel(), dtype=torch.float32)
        fresh = all(not hasattr(m, "weight_mask") for _, m in layers)
        if fresh:  # torch's own global pruning with tie-free scores (ranks)
            pieces = rank.split([m.weight.numel() for _, m in layers])
            prune.global_unstructured(
                [(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured,
                importance_scores={(m, "weight"): p.view_as(m.weight) for (_, m), p in zip(layers, pieces)},
                amount=float(sparsity))
        else:  # re-pruning multiplies masks: custom_from_mask, as the spec says
            keep = rank >= round(sparsity * flat.numel())
            for (_, m), piece in zip(layers, keep.split([m.weight.numel() for _, m in layers])):
                prune.custom_from_mask(m, "weight", piece.view_as(m.weight))
        return {name: m.weight_mask.bool() for name, m in layers}
    """, "prune.global_unstructured with importance_scores = stable ranks"),
    V("layer_loop_masks", "apply_layerwise_pruning", """
        result = {}
        for name in sparsities:
            module = modules[name]
            prune.CustomFromMask.apply(module, "weight",
                                       magnitude_prune_mask(module.weight, sparsities[name]))
            result[name] = module.weight_mask != 0
        return result
    """, "prune.CustomFromMask.apply; mask != 0"),
    V("imp_sums", "channel_importance", """
        w = module.weight.detach()
        if isinstance(module, nn.BatchNorm2d):
            return w.abs().clone()
        rows = w.reshape(w.shape[0], -1)
        if norm == "l1":
            return rows.abs().sum(dim=1)
        if norm == "l2":
            return rows.pow(2).sum(dim=1).sqrt()
        return rows.abs().amax(dim=1)
    """, "explicit sums, sqrt and amax"),
    V("ctk_python_sorted", "channels_to_keep", """
        values = importance.tolist()
        num_keep = max(1, round(len(values) * (1 - channel_sparsity)))
        best = sorted(range(len(values)), key=lambda i: (-values[i], i))[:num_keep]
        return torch.tensor(sorted(best), dtype=torch.int64)
    """, "Python sorted by (-importance, index)"),
    V("ctk_numpy", "channels_to_keep", """
        import numpy as np
        num_keep = max(1, round(importance.numel() * (1 - channel_sparsity)))
        order = np.argsort(-importance.detach().cpu().numpy(), kind="stable")
        return torch.from_numpy(np.sort(order[:num_keep]).astype(np.int64))
    """, "numpy stable argsort of -importance"),
    V("sc_index_select", "slice_conv2d", """
        w = conv.weight.detach().clone()
        b = conv.bias.detach().clone() if conv.bias is not None else None
        if out_keep is not None:
            w = w.index_select(0, out_keep)
            if b is not None:
                b = b.index_select(0, out_keep)
        if not depthwise and in_keep is not None:
            w = w.index_select(1, in_keep)
        groups = 1 if not depthwise else len(w)
    """, "index_select"),
    V("sbn_deepcopy", "slice_batchnorm2d", """
        new = copy.deepcopy(bn)
        new.num_features = len(keep)
        if bn.affine:
            new.weight = nn.Parameter(bn.weight.detach()[keep].clone())
            new.bias = nn.Parameter(bn.bias.detach()[keep].clone())
        if bn.track_running_stats:
            new.running_mean = bn.running_mean[keep].clone()
            new.running_var = bn.running_var[keep].clone()
    """, "deepcopy of bn, tensors replaced by their slices"),
    V("sl_view", "slice_linear_inputs", """
        out_features = linear.out_features
        w = linear.weight.detach().view(out_features, -1, features_per_channel)  # (out, C, HW)
        w = w[:, keep].reshape(out_features, -1)
        new = nn.Linear(w.shape[1], out_features, bias=linear.bias is not None, **factory)
        with torch.no_grad():
            new.weight.copy_(w)
            if linear.bias is not None:
                new.bias.copy_(linear.bias)
    """, "view (out, C, H*W), index channels, reshape back"),
    V("layer_rank_l1_unstructured", "apply_layerwise_pruning", """
        masks = {}
        for name, sparsity in sparsities.items():
            module = modules[name]
            scores = module.weight.detach().abs().flatten()
            rank = torch.empty(scores.numel())
            rank[torch.argsort(scores, stable=True)] = torch.arange(scores.numel(), dtype=torch.float32)
            if not hasattr(module, "weight_mask"):  # torch's l1_unstructured, tie-free scores
                prune.l1_unstructured(module, "weight", amount=float(sparsity),
                                      importance_scores=rank.view_as(module.weight))
            else:  # re-pruning multiplies masks: custom_from_mask, as the spec says
                keep = (rank >= round(sparsity * scores.numel())).view_as(module.weight)
                prune.custom_from_mask(module, "weight", keep)
            masks[name] = module.weight_mask.bool()
        return masks
    """, "prune.l1_unstructured with importance_scores = stable ranks, float amount"),
    V("sbn_state_dict", "slice_batchnorm2d", """
        new = nn.BatchNorm2d(len(keep), eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                             track_running_stats=bn.track_running_stats, **factory)
        state = {k: (v[keep] if v.dim() == 1 else v) for k, v in bn.state_dict().items()}
        new.load_state_dict(state)
    """, "load_state_dict of the sliced state dict"),
]
