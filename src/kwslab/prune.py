"""Pruning: magnitude masks (unstructured and per group) and channel surgery.

Two ways to make a keyword spotter smaller:

* Fine-grained (unstructured) pruning sets the smallest-magnitude weights to zero. The
  tensors keep their shape; the zeros pay off only with sparse storage or kernels. Masks
  follow ``torch.nn.utils.prune``: a bool keep-``mask`` (True = keep), applied with
  ``prune.custom_from_mask`` so that ``module.weight = weight_orig * weight_mask`` is
  recomputed before every forward and the pruned weights stay zero through finetuning.
* Channel pruning removes whole output channels of a convolution and every tensor that
  reads them (BatchNorm statistics, a depthwise conv, the next layer's inputs). The result
  is a physically smaller dense model that any int8 kernel runs faster.

Student functions (solutions between the markers): ``magnitude_prune_mask``,
``apply_global_magnitude_pruning``, ``apply_layerwise_pruning``, ``channel_importance``,
``channels_to_keep``, ``slice_conv2d``, ``slice_batchnorm2d``, ``slice_linear_inputs``.
``prune_channels`` walks a flat ``nn.Sequential`` model and calls them.

References:
  1) Han et al. 2015, "Learning both Weights and Connections for Efficient Neural
     Networks" (arXiv:1506.02626): magnitude pruning + finetuning.
  2) Li et al. 2017, "Pruning Filters for Efficient ConvNets" (arXiv:1608.08710): per-filter
     L1 norm as channel importance.
  3) Liu et al. 2017, "Learning Efficient Convolutional Networks through Network Slimming"
     (arXiv:1708.06519): BatchNorm |gamma| as channel importance.
  4) PyTorch ``torch/nn/utils/prune.py``: ``l1_unstructured`` (number pruned =
     round(amount * numel)), ``custom_from_mask``, ``remove``.
  5) MIT 6.5940 (EfficientML) Lab 1: fine-grained pruning and channel pruning.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

NORMS: dict[str, float] = {"l1": 1.0, "l2": 2.0, "linf": math.inf}
"""Norm name -> ``ord`` of ``torch.linalg.vector_norm``."""

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
"""Layer types whose ``weight`` the magnitude-pruning functions prune by default."""



def _check_fraction(value: float, what: str) -> None:
    """Raise ValueError unless value is a real number in [0, 1] (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{what}={value!r} should be a float in the range [0, 1]")


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r} is not supported; choose one of {sorted(NORMS)}")


# ---------------------------------------------------------------------------------------
# Fine-grained (magnitude) pruning
# ---------------------------------------------------------------------------------------

def magnitude_prune_mask(weight: torch.Tensor, sparsity: float, norm: str = "l1",
                         group_dim: int | None = None) -> torch.Tensor:
    """Keep-mask that zeroes the fraction ``sparsity`` of weights (or groups) of least magnitude.

    Unstructured (``group_dim=None``): each weight is scored by |w|. For a single number the
    L1, L2 and L-infinity norms all equal |w|, so ``norm`` does not change the result.
    Grouped (``group_dim=d``): each index along dimension d is one group (d=0: the rows of a
    Linear weight, the filters of a Conv2d weight), scored by the norm of all its weights:
    L1 = sum |w|, L2 = sqrt(sum w^2), L-infinity = max |w|. These differ, e.g. for the rows
    [3, -3, 3, -3], [-6, 5, 0, 0] and [0, 0, -7, 0]: L1 = 12, 11, 7 (keeps the first),
    L2 = 6, 7.81, 7 (keeps the second), L-infinity = 3, 6, 7 (keeps the third).

    Exact semantics (the count is that of ``torch.nn.utils.prune.l1_unstructured`` with a
    float amount, so on a tensor without ties both give the same mask):
      * number pruned = round(sparsity * n), n = number of weights (or groups); Python's
        ``round`` rounds half to even: n = 10, sparsity 0.25 -> round(2.5) = 2 pruned;
        n = 6, sparsity 0.25 -> round(1.5) = 2 pruned.
      * the pruned ones are the first in a stable ascending sort of the scores, so ties
        are broken by index order: among equal scores the lower flat index is pruned first
        (torch leaves ties to ``topk``, whose order is not specified).
        Example: [1, -1, 1, 2] at sparsity 0.5 -> mask [False, False, True, True].
      * sparsity 0 keeps everything, sparsity 1 prunes everything.
    Unlike torch's ``amount``, an int sparsity (0 or 1) is a fraction, never a count.

    Hints:
      1. Scores: ``w.abs().flatten()``, or for groups move ``group_dim`` to the front,
         flatten the rest and take ``torch.linalg.vector_norm(..., ord=NORMS[norm], dim=1)``.
      2. Count: ``num_pruned = round(sparsity * scores.numel())`` (use ``round()``).
      3. ``torch.sort(scores, stable=True).indices[:num_pruned]`` are the pruned positions:
         set them to False in ``keep``, a bool tensor of True with one entry per score.
      4. The line after your block broadcasts ``keep`` back to the weight's shape.

    Args:
        weight: float tensor of any shape, e.g. (C_out, C_in, kh, kw) or (out, in).
        sparsity: fraction of weights (or groups) to prune, in [0, 1].
        norm: "l1", "l2" or "linf"; used only when group_dim is given.
        group_dim: dimension whose indices are the groups, or None for single weights.
    Returns:
        bool tensor of weight's shape; True = keep, False = pruned (torch's ``weight_mask``).
    Raises:
        ValueError: if sparsity is not in [0, 1], norm is unknown or group_dim is out of range.
    Source: Han et al. 2015 (arXiv:1506.02626); torch ``prune.l1_unstructured`` and
        ``prune.ln_structured``; MIT 6.5940 Lab 1 ``fine_grained_prune``.
    """
    _check_fraction(sparsity, "sparsity")
    check_norm(norm)
    if group_dim is not None and not -weight.dim() <= group_dim < weight.dim():
        raise ValueError(f"group_dim={group_dim} is out of range for a weight of shape "
                         f"{tuple(weight.shape)}")
    w = weight.detach()
    ### BEGIN SOLUTION
    if group_dim is None:
        scores = w.abs().flatten()  # (numel,)
    else:
        groups = w.movedim(group_dim, 0).flatten(1)  # (num_groups, weights per group)
        scores = torch.linalg.vector_norm(groups, ord=NORMS[norm], dim=1)  # (num_groups,)
    num_pruned = round(sparsity * scores.numel())
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=w.device)
    keep[torch.sort(scores, stable=True).indices[:num_pruned]] = False
    ### END SOLUTION
    return _broadcast_mask(keep, w.shape, group_dim)


def _broadcast_mask(keep: torch.Tensor, shape: torch.Size, group_dim: int | None
                    ) -> torch.Tensor:
    """Flat keep-mask over weights (numel,) or groups (num_groups,) -> mask of ``shape``."""
    if group_dim is None:
        return keep.view(shape)
    view = [-1 if d == group_dim % len(shape) else 1 for d in range(len(shape))]
    return keep.view(view).expand(shape).clone()


def _named_layers(model: nn.Module, layer_types: tuple[type[nn.Module], ...]
                  ) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, layer_types)]


def apply_global_magnitude_pruning(model: nn.Module, sparsity: float,
                                   layer_types: tuple[type[nn.Module], ...] = PRUNABLE_TYPES
                                   ) -> dict[str, torch.Tensor]:
    """Prune the fraction ``sparsity`` of all weights of the chosen layers with one threshold.

    All ``weight`` tensors of modules of ``layer_types`` are scored together by |w|, so a
    layer of small weights loses more than a layer of large ones (biases and BatchNorm are
    never pruned). The masks are applied in place with
    ``torch.nn.utils.prune.custom_from_mask(module, "weight", mask)``: the module gets a
    parameter ``weight_orig``, a buffer ``weight_mask`` and a forward pre-hook that sets
    ``weight = weight_orig * weight_mask``, so the pruned weights stay zero through any
    training loop. Call ``remove_pruning_reparam`` before export.

    Re-pruning: a module pruned before is scored by its current ``weight`` (= weight_orig *
    weight_mask, so its pruned weights score 0 and count among the smallest), and
    ``custom_from_mask`` makes its ``weight_mask`` the product of the old and the new mask.
    The returned masks are the masks in effect after the call (that product, as bool), the
    same as ``module.weight_mask.bool()``; for a module pruned for the first time that is
    the new mask.

    Example: Linear weights [[4, -1], [3, 0.5]] and [[-0.2, 0.3]] at sparsity 0.5:
    round(0.5 * 6) = 3 pruned, the 3 smallest |w| (0.2, 0.3, 0.5) -> masks
    [[True, True], [True, False]] and [[False, False]] (layer by layer at 0.5 it would be
    [[True, False], [True, False]] and [[False, True]]).

    Hints:
      1. Concatenate every flattened weight and call ``magnitude_prune_mask`` once.
      2. Split the flat mask back (``torch.split`` with each layer's numel) and reshape.
      3. Apply each with ``prune.custom_from_mask``; zeroing gradients is not enough.

    Args:
        model: any nn.Module.
        sparsity: fraction of the selected weights to prune, in [0, 1].
        layer_types: module types whose ``weight`` is pruned.
    Returns:
        dict module name (as in ``model.named_modules()``) -> bool keep-mask in effect, of
        its weight's shape (a new tensor, not torch's float ``weight_mask`` itself).
    Raises:
        ValueError: if sparsity is not in [0, 1] or the model has no layer of layer_types.
    Source: Han et al. 2015; torch ``prune.global_unstructured`` (which uses the same
        round(amount * numel)).
    """
    _check_fraction(sparsity, "sparsity")
    layers = _named_layers(model, tuple(layer_types))
    if not layers:
        raise ValueError(f"model has no layer of types {[t.__name__ for t in layer_types]}")
    ### BEGIN SOLUTION
    scores = torch.cat([m.weight.detach().flatten() for _, m in layers])  # (total,)
    flat_keep = magnitude_prune_mask(scores, sparsity)
    pieces = flat_keep.split([m.weight.numel() for _, m in layers])
    masks = {name: piece.view_as(m.weight) for (name, m), piece in zip(layers, pieces)}
    for name, m in layers:
        prune.custom_from_mask(m, "weight", masks[name])
    return {name: m.weight_mask.bool() for name, m in layers}  # product with any old mask
    ### END SOLUTION


def apply_layerwise_pruning(model: nn.Module, sparsities: Mapping[str, float]
                            ) -> dict[str, torch.Tensor]:
    """Prune each named layer's weight to its own sparsity (unstructured, by |w|).

    Layers not named in ``sparsities`` are left alone. Masks are applied exactly as in
    ``apply_global_magnitude_pruning`` (``prune.custom_from_mask``), so they persist, and
    re-pruning works the same way: a pruned layer is scored by its current ``weight``, its
    ``weight_mask`` becomes the product of the old and the new mask, and that product is
    what is returned. A sparsity of 1 (int or float) prunes the whole layer: it is a
    fraction, never torch's integer count.

    Hints:
      1. For each (name, sparsity): ``magnitude_prune_mask(module.weight, sparsity)``.
      2. Apply it with ``prune.custom_from_mask(module, "weight", mask)``.
      3. Return ``module.weight_mask.bool()`` for each name (the mask in effect).

    Args:
        model: any nn.Module.
        sparsities: module name (as in ``model.named_modules()``) -> sparsity in [0, 1].
    Returns:
        dict module name -> bool keep-mask in effect, of its weight's shape.
    Raises:
        KeyError: if a name is not a module of the model (the message lists the names).
        ValueError: if the module has no weight tensor or a sparsity is not in [0, 1].
    Source: Han et al. 2015; MIT 6.5940 Lab 1 sensitivity scan.
    """
    modules = dict(model.named_modules())
    for name, sparsity in sparsities.items():
        if name not in modules:
            raise KeyError(f"no module named {name!r}; modules with a weight: "
                           f"{[n for n, m in modules.items() if _has_weight(m)]}")
        if not _has_weight(modules[name]):
            raise ValueError(f"module {name!r} ({type(modules[name]).__name__}) has no weight")
        _check_fraction(sparsity, f"sparsities[{name!r}]")
    ### BEGIN SOLUTION
    masks = {}
    for name, sparsity in sparsities.items():
        module = modules[name]
        prune.custom_from_mask(module, "weight", magnitude_prune_mask(module.weight, sparsity))
        masks[name] = module.weight_mask.bool()  # product with any old mask
    return masks
    ### END SOLUTION


def _has_weight(module: nn.Module) -> bool:
    return isinstance(getattr(module, "weight", None), torch.Tensor)


def effective_parameters(model: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    """(name, tensor) for every parameter as the forward pass sees it.

    A pruned ``weight`` is reparametrized as ``weight_orig`` * ``weight_mask``; it is
    yielded as ``weight`` = orig * mask (``module.weight`` itself may be one step stale
    after an optimizer step, until the next forward).
    """
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for name, param in module.named_parameters(recurse=False):
            if name.endswith("_orig") and hasattr(module, name[:-5] + "_mask"):
                base = name[:-5]
                yield prefix + base, (param * getattr(module, base + "_mask")).detach()
            else:
                yield prefix + name, param.detach()


def count_nonzero_parameters(model: nn.Module) -> int:
    """Number of nonzero parameter values (pruned weights count as zero).

    Args:
        model: any nn.Module, pruned (torch reparametrization) or not.
    Returns:
        int, over all parameters (weights, biases, BatchNorm gamma/beta); buffers such as
        ``running_mean`` are not parameters and are not counted.
    """
    return int(sum(torch.count_nonzero(t).item() for _, t in effective_parameters(model)))


def sparsity_of(model: nn.Module, layer_types: tuple[type[nn.Module], ...] = PRUNABLE_TYPES
                ) -> float:
    """Fraction of zeros among the weights of the layers of ``layer_types`` (biases excluded).

    Returns:
        float in [0, 1]: zeros / total over those weights, as the forward pass sees them.
    Raises:
        ValueError: if the model has no layer of layer_types.
    """
    weights = [t for name, t in effective_parameters(model)
               if name.rsplit(".", 1)[-1] == "weight"
               and isinstance(model.get_submodule(name.rpartition(".")[0]), layer_types)]
    if not weights:
        raise ValueError(f"model has no layer of types {[t.__name__ for t in layer_types]}")
    total = sum(t.numel() for t in weights)
    return sum(t.numel() - torch.count_nonzero(t).item() for t in weights) / total


def remove_pruning_reparam(model: nn.Module) -> nn.Module:
    """Make pruning permanent: ``weight_orig`` * ``weight_mask`` becomes a plain ``weight``.

    Needed before export or ``state_dict`` loading into an unpruned model. The zeros stay;
    the masks and hooks go, so later training can revive the pruned weights.

    Returns:
        the same model, modified in place.
    """
    for module in model.modules():
        names = [hook._tensor_name for hook in module._forward_pre_hooks.values()
                 if isinstance(hook, prune.BasePruningMethod)]
        for name in names:
            prune.remove(module, name)
    return model


def finetune(model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
             epochs: int, lr: float = 1e-3, masks: Mapping[str, torch.Tensor] | None = None
             ) -> list[float]:
    """Train a pruned model for a few epochs with Adam and cross-entropy.

    Models pruned with ``prune.custom_from_mask`` keep their zeros by themselves. ``masks``
    (module name -> keep-mask, e.g. for a model whose weights were zeroed by hand) are
    multiplied into the weights before training and after every optimizer step, so those
    weights are zero whenever the model runs.

    Args:
        model: classifier mapping x to logits (N, C).
        loader: iterable of (x, y) batches; y int64 class indices of shape (N,).
        epochs: number of passes over loader, >= 1.
        lr: Adam learning rate.
        masks: optional module name -> bool keep-mask of that module's weight shape.
    Returns:
        mean training loss of each epoch (list of epochs floats). The model is left in
        eval mode.
    Raises:
        ValueError: if epochs < 1 or a mask names no module / does not match its weight.
    """
    if epochs < 1:
        raise ValueError(f"epochs={epochs} should be >= 1")
    modules = dict(model.named_modules())
    targets = []
    for name, mask in (masks or {}).items():
        if name not in modules or not _has_weight(modules[name]):
            raise ValueError(f"mask for {name!r}: the model has no module with a weight of "
                             f"that name")
        module = modules[name]
        param = getattr(module, "weight_orig", module.weight)
        if mask.shape != param.shape:
            raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, the weight "
                             f"has {tuple(param.shape)}")
        targets.append((param, mask.to(device=param.device, dtype=param.dtype)))

    def zero_pruned() -> None:
        with torch.no_grad():
            for param, mask in targets:
                param.mul_(mask)

    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    zero_pruned()
    losses = []
    for _ in range(epochs):
        model.train()
        total, count = 0.0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            zero_pruned()
            total, count = total + loss.item() * len(y), count + len(y)
        losses.append(total / max(count, 1))
    model.eval()
    return losses


# ---------------------------------------------------------------------------------------
# Channel pruning (model surgery)
# ---------------------------------------------------------------------------------------

def _is_depthwise(conv: nn.Conv2d) -> bool:
    return conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels


def channel_importance(module: nn.Module, norm: str = "l2") -> torch.Tensor:
    """Importance of each output channel: the norm of its weights, or |gamma| for BatchNorm.

    Conv2d weight (C_out, C_in / groups, kh, kw) or Linear weight (out, in): the norm of
    each output channel's weights (row of the flattened weight); the bias is ignored.
    BatchNorm2d: |gamma| (``bn.weight``), as in network slimming; ``norm`` is ignored.
    Example: a Conv2d with filters [[3, -4]] and [[-1, 1]] (1 x 1 kernels, 2 inputs) ->
    L1 [7, 2], L2 [5, 1.414], L-infinity [4, 1].

    Hints:
      1. BatchNorm: ``module.weight.abs()``.
      2. Otherwise flatten the weight from dim 1 and take ``torch.linalg.vector_norm``
         along dim 1 with ``ord=NORMS[norm]``.

    Args:
        module: nn.Conv2d, nn.Linear or nn.BatchNorm2d (affine).
        norm: "l1", "l2" or "linf".
    Returns:
        float tensor (C_out,) (detached).
    Raises:
        TypeError: for other module types.
        ValueError: for an unknown norm or a BatchNorm without affine parameters.
    Source: Li et al. 2017 (arXiv:1608.08710); Liu et al. 2017 (arXiv:1708.06519).
    """
    check_norm(norm)
    if not isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
        raise TypeError(f"channel_importance needs Conv2d, Linear or BatchNorm2d, got "
                        f"{type(module).__name__}")
    if isinstance(module, nn.BatchNorm2d) and module.weight is None:
        raise ValueError("BatchNorm2d without affine parameters has no gamma to rank channels")
    ### BEGIN SOLUTION
    if isinstance(module, nn.BatchNorm2d):
        return module.weight.detach().abs()
    return torch.linalg.vector_norm(module.weight.detach().flatten(1), ord=NORMS[norm], dim=1)
    ### END SOLUTION


def channels_to_keep(importance: torch.Tensor, channel_sparsity: float) -> torch.Tensor:
    """Indices of the channels that survive removing the fraction ``channel_sparsity`` of C.

    keep = max(1, round(C * (1 - channel_sparsity))) channels with the largest importance
    (Python's ``round``, half to even; at least one channel survives). Ties are broken by
    index order (a stable descending sort: among equal importances the lower index is kept).
    The indices are returned in ascending order, so the surviving channels keep their order.
    Example: importance [0.5, 3, 1, 2, 0.1, 4, 2.5, 0.2], channel_sparsity 0.5 -> keep
    round(4.0) = 4 -> the channels of importance 4, 3, 2.5, 2 -> [1, 3, 5, 6]. C = 64,
    channel_sparsity 0.3 -> keep round(44.8) = 45; C = 10, channel_sparsity 0.75 -> keep
    round(2.5) = 2.

    Hints:
      1. ``num_keep = max(1, round(C * (1 - channel_sparsity)))``.
      2. ``torch.sort(importance, descending=True, stable=True)``; take the first num_keep
         indices and sort them.

    Args:
        importance: float tensor (C,), larger = more important.
        channel_sparsity: fraction of channels to remove, in [0, 1].
    Returns:
        int64 tensor (keep,), ascending channel indices.
    Raises:
        ValueError: if channel_sparsity is not in [0, 1] or importance is not 1-D and non-empty.
    Source: Li et al. 2017 (arXiv:1608.08710); MIT 6.5940 Lab 1 ``get_num_channels_to_keep``.
    """
    _check_fraction(channel_sparsity, "channel_sparsity")
    if importance.dim() != 1 or importance.numel() == 0:
        raise ValueError(f"importance should be a non-empty 1-D tensor, got shape "
                         f"{tuple(importance.shape)}")
    ### BEGIN SOLUTION
    num_keep = max(1, round(importance.numel() * (1 - channel_sparsity)))
    order = torch.sort(importance, descending=True, stable=True).indices
    return torch.sort(order[:num_keep]).values
    ### END SOLUTION


def slice_conv2d(conv: nn.Conv2d, out_keep: torch.Tensor | None = None,
                 in_keep: torch.Tensor | None = None) -> nn.Conv2d:
    """A new Conv2d holding only the output channels ``out_keep`` and input channels ``in_keep``.

    Weight (C_out, C_in / groups, kh, kw) -> (len(out_keep), len(in_keep), kh, kw); the bias
    keeps ``out_keep``; kernel size, stride, padding and dilation are copied. ``None`` keeps
    all channels of that side. A depthwise conv (groups == C_in == C_out) has one input
    channel per group, channel c feeding output c only: it keeps the same channels on both
    sides (pass either index set), its weight (C, 1, kh, kw) -> (keep, 1, kh, kw), and its
    ``groups`` becomes the number of kept channels. Only ordinary (groups == 1) and
    depthwise convs are supported. The new layer has conv's device and dtype and is in
    conv's train/eval mode.

    Hints:
      1. Slice the weight ``w`` and bias ``b`` (None without bias) at ``out_keep``.
      2. Then the weight's inputs at ``in_keep`` -- but not for a depthwise conv, whose
         weight has a single input channel per group.
      3. ``groups``: 1 for an ordinary conv; for depthwise, the number of kept channels.
      4. The line after your block builds the new Conv2d from ``w``, ``b`` and ``groups``.

    Args:
        conv: the layer to slice (not modified).
        out_keep: int64 (k_out,) output channel indices, or None.
        in_keep: int64 (k_in,) input channel indices, or None.
    Returns:
        a new nn.Conv2d (conv's device, dtype and train/eval mode).
    Raises:
        ValueError: for grouped convs that are not depthwise, or a depthwise conv given two
            different index sets.
    Source: MIT 6.5940 Lab 1 ``channel_prune``; Li et al. 2017 Sec. 3.2.
    """
    if conv.groups != 1 and not _is_depthwise(conv):
        raise ValueError(f"slice_conv2d supports groups == 1 or depthwise convs, got "
                         f"groups={conv.groups}, in_channels={conv.in_channels}, "
                         f"out_channels={conv.out_channels}")
    if _is_depthwise(conv):
        if out_keep is not None and in_keep is not None and not torch.equal(out_keep, in_keep):
            raise ValueError("a depthwise conv keeps the same channels on both sides; got "
                             f"out_keep={out_keep.tolist()}, in_keep={in_keep.tolist()}")
        out_keep = in_keep = out_keep if out_keep is not None else in_keep
    if conv.padding_mode != "zeros":
        raise ValueError(f"padding_mode={conv.padding_mode!r} is not supported")
    depthwise = _is_depthwise(conv)
    ### BEGIN SOLUTION
    w = conv.weight.detach()  # (C_out, C_in / groups, kh, kw)
    b = None if conv.bias is None else conv.bias.detach()  # (C_out,)
    if out_keep is not None:
        w, b = w[out_keep], (None if b is None else b[out_keep])
    if in_keep is not None and not depthwise:
        w = w[:, in_keep]
    groups = w.shape[0] if depthwise else 1
    ### END SOLUTION
    return _new_conv2d(conv, w, b, groups)


def _new_conv2d(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None,
                groups: int) -> nn.Conv2d:
    """A Conv2d like ``conv`` (kernel, stride, padding, dilation, device, dtype, train/eval
    mode) holding weight and bias."""
    new = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], conv.kernel_size, conv.stride,
                    conv.padding, conv.dilation, groups, bias=bias is not None,
                    device=conv.weight.device, dtype=conv.weight.dtype)
    new.weight.data.copy_(weight)
    if bias is not None:
        new.bias.data.copy_(bias)
    return new.train(conv.training)


def _factory(module: nn.Module) -> dict:
    """{"device": ..., "dtype": ...} of module's first floating-point tensor ({} if none)."""
    for t in list(module.parameters()) + list(module.buffers()):
        if t.is_floating_point():
            return {"device": t.device, "dtype": t.dtype}
    return {}


def slice_batchnorm2d(bn: nn.BatchNorm2d, keep: torch.Tensor) -> nn.BatchNorm2d:
    """A new BatchNorm2d for the channels ``keep``: gamma, beta, running_mean, running_var.

    eps, momentum, affine, track_running_stats and num_batches_tracked are copied, so in
    eval mode new(x[:, keep]) == bn(x)[:, keep]. The new layer has bn's device and dtype
    (``factory``) and is in bn's train/eval mode (the line after the block sets it).

    Hints:
      1. ``nn.BatchNorm2d(len(keep), bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
         **factory)``.
      2. Copy ``weight``, ``bias`` (if affine) and ``running_mean``, ``running_var`` (if
         tracked) at ``keep``, and ``num_batches_tracked``.

    Args:
        bn: the layer to slice (not modified).
        keep: int64 (k,) channel indices.
    Returns:
        a new nn.BatchNorm2d with k features (bn's device, dtype and train/eval mode).
    Source: Liu et al. 2017 (arXiv:1708.06519); MIT 6.5940 Lab 1 ``channel_prune``.
    """
    factory = _factory(bn)
    ### BEGIN SOLUTION
    new = nn.BatchNorm2d(len(keep), bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
                         **factory)
    for name in ("weight", "bias", "running_mean", "running_var"):
        if getattr(bn, name) is not None:
            getattr(new, name).data.copy_(getattr(bn, name).detach()[keep])
    if bn.track_running_stats:
        new.num_batches_tracked.copy_(bn.num_batches_tracked)
    ### END SOLUTION
    return new.train(bn.training)


def slice_linear_inputs(linear: nn.Linear, keep: torch.Tensor,
                        features_per_channel: int) -> nn.Linear:
    """A new Linear reading only the flattened features of the channels ``keep``.

    ``nn.Flatten`` of (N, C, H, W) puts channel c's H*W values at features
    c*H*W .. c*H*W + H*W - 1 ((C, H, W) order), so features_per_channel = H*W and
    in_features = C * H*W. Example: C = 3, H*W = 2, keep [0, 2] -> input features
    [0, 1, 4, 5]. After global average pooling H*W = 1: one feature per channel.
    Output features and the bias are unchanged; the new layer has linear's device and dtype
    (``factory``) and is in linear's train/eval mode (the line after the block sets it).

    Hints:
      1. Feature index of (channel c, position j) = c * features_per_channel + j.
      2. Build the (k * features_per_channel,) index list in channel order and slice the
         weight's columns.

    Args:
        linear: the layer to slice (not modified), in_features = C * features_per_channel.
        keep: int64 (k,) channel indices, ascending.
        features_per_channel: H*W of the flattened activation, >= 1.
    Returns:
        a new nn.Linear(k * features_per_channel, linear.out_features) (linear's device,
        dtype and train/eval mode).
    Raises:
        ValueError: if in_features is not a multiple of features_per_channel.
    Source: MIT 6.5940 Lab 1 (channel pruning ends at the classifier's input).
    """
    if features_per_channel < 1 or linear.in_features % features_per_channel:
        raise ValueError(f"in_features={linear.in_features} is not a multiple of "
                         f"features_per_channel={features_per_channel}")
    factory = _factory(linear)
    ### BEGIN SOLUTION
    offsets = torch.arange(features_per_channel, device=keep.device)
    columns = (keep[:, None] * features_per_channel + offsets[None, :]).flatten()  # (k*HW,)
    new = nn.Linear(len(columns), linear.out_features, bias=linear.bias is not None, **factory)
    new.weight.data.copy_(linear.weight.detach()[:, columns])
    if linear.bias is not None:
        new.bias.data.copy_(linear.bias.detach())
    ### END SOLUTION
    return new.train(linear.training)


def copy_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy`` that also works on models pruned with torch's reparametrization.

    A pruned ``module.weight`` is ``weight_orig * weight_mask``, a non-leaf tensor that
    ``deepcopy`` refuses; the copy gets a detached clone of it (the hook recomputes it).
    """
    memo = {}
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                tensor = getattr(module, hook._tensor_name)
                memo[id(tensor)] = tensor.detach().clone()
    return copy.deepcopy(model, memo)


def _layer_input_shapes(model: nn.Sequential, input_shape: tuple[int, ...]
                        ) -> list[tuple[int, ...]]:
    """Shape of each layer's input in one dry forward pass of a zero batch (N = 1)."""
    was_training = model.training
    model.eval()  # no BatchNorm statistics update, no dropout
    shapes = []
    try:
        with torch.no_grad():
            param = next(model.parameters(), None)
            x = torch.zeros((1, 1, *input_shape), device=None if param is None else param.device)
            for layer in model:
                shapes.append(tuple(x.shape))
                x = layer(x)
    finally:
        model.train(was_training)
    return shapes


def prune_channels(model: nn.Sequential, channel_sparsity: float, norm: str = "l2"
                   ) -> nn.Sequential:
    """A physically smaller copy of a flat model with the fraction ``channel_sparsity`` of
    channels removed.

    Walks the layers in order (the model must be a flat ``nn.Sequential`` with an
    ``input_shape`` (T, F) attribute, like ``kwslab.models.TinyConv`` and ``DSCNN``):
      * every ordinary Conv2d that some later Conv2d or Linear reads keeps
        ``channels_to_keep(channel_importance(conv, norm), channel_sparsity)`` output
        channels (the last conv or linear layer, whose outputs are the logits, is never
        pruned);
      * a BatchNorm2d keeps the current channels (``slice_batchnorm2d``);
      * a depthwise Conv2d follows its input: same channels, groups = kept count;
      * the next ordinary Conv2d drops those input channels;
      * a Linear after Flatten drops the H*W features of each removed channel, H*W taken
        from a dry forward pass at ``model.input_shape`` (1 after global average pooling);
      * layers without parameters (padding, ReLU, Dropout, pooling) pass channels through
        unchanged; any other layer with parameters between a pruned conv and its consumer
        raises TypeError.
    Channel importance is the norm of the conv's own filters (a following BatchNorm is not
    consulted). If the removed channels' filters (and bias) were zero, or their consumers'
    weights were, the smaller model computes the same outputs in eval mode. Pruning
    reparametrizations on the input model are read through ``module.weight``; the result
    has plain parameters. The input model is not modified.

    Example: tiny_conv (8 filters, 4 classes), channel_sparsity 0.5: 4 filters, conv 4*80 + 4 = 324
    and fully connected 4*25*20*4 + 4 = 8,004 parameters (16,652 -> 8,328).

    Args:
        model: flat nn.Sequential with ``input_shape``.
        channel_sparsity: fraction of channels to remove from each pruned conv, in [0, 1].
        norm: "l1", "l2" or "linf" for ``channel_importance``.
    Returns:
        a new model of the same class.
    Raises:
        TypeError: if the model is not an nn.Sequential or a layer between a pruned conv
            and its consumer is of a type the walk does not know.
        ValueError: for a bad channel_sparsity or norm, or a model without ``input_shape``.
    Source: Li et al. 2017 (arXiv:1608.08710); MIT 6.5940 Lab 1 ``channel_prune``.
    """
    _check_fraction(channel_sparsity, "channel_sparsity")
    check_norm(norm)
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"prune_channels needs a flat nn.Sequential, got {type(model).__name__}")
    if not hasattr(model, "input_shape"):
        raise ValueError("model has no input_shape attribute (T, F) for the dry forward pass")
    new_model = copy_model(model)
    remove_pruning_reparam(new_model)
    layers = list(new_model.named_children())
    input_shapes = _layer_input_shapes(new_model, tuple(new_model.input_shape))
    consumers = [i for i, (_, m) in enumerate(layers) if isinstance(m, (nn.Conv2d, nn.Linear))]

    kept = None  # channel indices of the current activation that survive (None = all)
    features_per_channel = 1
    for i, (name, layer) in enumerate(layers):
        if isinstance(layer, nn.Conv2d) and _is_depthwise(layer):
            if kept is not None:
                setattr(new_model, name, slice_conv2d(layer, kept, kept))
        elif isinstance(layer, nn.Conv2d):
            prunable = any(j > i for j in consumers)
            out_keep = (channels_to_keep(channel_importance(layer, norm), channel_sparsity)
                        if prunable else None)
            setattr(new_model, name, slice_conv2d(layer, out_keep, kept))
            kept = out_keep
        elif isinstance(layer, nn.BatchNorm2d):
            if kept is not None:
                setattr(new_model, name, slice_batchnorm2d(layer, kept))
        elif isinstance(layer, nn.Flatten):
            shape = input_shapes[i]  # (1, C, H, W)
            features_per_channel = math.prod(shape[2:])
        elif isinstance(layer, nn.Linear):
            if kept is not None:
                setattr(new_model, name,
                        slice_linear_inputs(layer, kept, features_per_channel))
            kept = None
        elif kept is not None and any(True for _ in layer.parameters()):
            raise TypeError(f"prune_channels cannot pass pruned channels through layer "
                            f"{name!r} ({type(layer).__name__})")
    return new_model


# ----------------------------------------------------------------------------- grouped pruning (not graded)


def group_dims(model: nn.Module) -> dict[str, int]:
    """Which dimension of each layer's weight forms the groups of grouped pruning.

    Conv2d: dim 0 (whole filters = output channels), except the model's last conv/linear
    layer, whose outputs are the classes; Linear: dim 1 (input columns, so no class is
    ever removed).

    Returns:
        dict module name -> group dimension.
    """
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    dims = {}
    for i, (name, m) in enumerate(layers):
        if isinstance(m, nn.Linear):
            dims[name] = 1
        elif i < len(layers) - 1:
            dims[name] = 0
    return dims


def apply_group_pruning(model: nn.Module, sparsity: float, norm: str = "l1"
                        ) -> dict[str, torch.Tensor]:
    """Prune the fraction ``sparsity`` of the groups (``group_dims``) of every layer by norm.

    Each layer is pruned on its own (``prune.magnitude_prune_mask`` with ``group_dim``),
    the masks applied with ``torch.nn.utils.prune.custom_from_mask`` so they persist.

    Returns:
        dict module name -> bool keep-mask of its weight's shape.
    """
    from torch.nn.utils import prune as torch_prune

    modules = dict(model.named_modules())
    masks = {}
    for name, dim in group_dims(model).items():
        mask = magnitude_prune_mask(modules[name].weight, sparsity, norm=norm, group_dim=dim)
        torch_prune.custom_from_mask(modules[name], "weight", mask)
        masks[name] = mask
    return masks
