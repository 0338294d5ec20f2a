"""Training-time regularizers on feature batches: SpecAugment masks and mixup.

Both act on a float feature batch of shape (N, 1, T, F) inside the training loop and draw
all their randomness from a ``torch.Generator`` the loop seeds, so a run is repeatable.
They are off by default (``TrainConfig``) and are measured one at a time by
``benchmarks/bench_accuracy.py``.

References:
  1) Park et al. 2019, "SpecAugment: A Simple Data Augmentation Method for Automatic Speech
     Recognition" (arXiv:1904.08779), Sec. 2: time and frequency masking.
  2) Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization" (arXiv:1710.09412),
     Sec. 2: convex combinations of pairs of inputs and their one-hot labels.
"""
from __future__ import annotations

import torch


def spec_augment(x: torch.Tensor, generator: torch.Generator, *, time_masks: int = 0,
                 max_frames: int = 0, freq_masks: int = 0, max_channels: int = 0,
                 fill: float = 0.0) -> torch.Tensor:
    """Mask random bands of frames and channels, each clip on its own.

    For each clip and each of ``time_masks`` masks: a width w ~ U{0..max_frames} and a start
    t0 ~ U{0..T - w}; frames t0..t0 + w - 1 are set to ``fill``. The same for
    ``freq_masks`` over channels with ``max_channels``. Masks may overlap. Example: T = 49,
    one time mask of width 3 starting at frame 10 sets x[n, :, 10:13, :] = fill.

    Args:
        x: float32 features, shape (N, 1, T, F).
        generator: the only source of randomness (CPU generator).
        time_masks, max_frames: masks per clip along T and their largest width (frames).
        freq_masks, max_channels: masks per clip along F and their largest width (channels).
        fill: value of masked features; 0.0 is the frontend's floor (int8 -128).
    Returns:
        A new tensor, same shape and dtype; x is not changed.
    Raises:
        ValueError: if a count or width is negative or a width exceeds its axis.
    Source: Park et al. 2019 (arXiv:1904.08779) Sec. 2 (no time warping).
    """
    n, _, t, f = x.shape
    for name, v, limit in (("time_masks", time_masks, None), ("max_frames", max_frames, t),
                           ("freq_masks", freq_masks, None), ("max_channels", max_channels, f)):
        if v < 0 or (limit is not None and v > limit):
            raise ValueError(f"{name}={v} must be in 0..{limit if limit is not None else 'inf'}")
    keep = torch.ones(n, 1, t, f, dtype=torch.bool)
    for count, width, size, axis in ((time_masks, max_frames, t, 2), (freq_masks, max_channels, f, 3)):
        if count == 0 or width == 0:
            continue
        pos = torch.arange(size)
        for _ in range(count):
            w = torch.randint(0, width + 1, (n,), generator=generator)
            start = (torch.rand(n, generator=generator) * (size - w + 1)).long()
            band = (pos[None] >= start[:, None]) & (pos[None] < (start + w)[:, None])  # (N, size)
            band = band[:, None, :, None] if axis == 2 else band[:, None, None, :]
            keep &= ~band
    return torch.where(keep.to(x.device), x, torch.as_tensor(fill, dtype=x.dtype, device=x.device))


def mixup(x: torch.Tensor, y: torch.Tensor, num_classes: int, alpha: float,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each clip with another clip of the batch: lam * a + (1 - lam) * b.

    One lam ~ Beta(alpha, alpha) per batch, folded to max(lam, 1 - lam) so the first clip
    dominates; the partner of clip i is clip perm[i] of a random permutation. Labels become
    the same mix of one-hot vectors. Example: lam 0.7, y_i = 2, y_perm[i] = 5 -> target
    0.7 at class 2 and 0.3 at class 5.

    Args:
        x: float32 features, shape (N, ...).
        y: int64 labels, shape (N,).
        num_classes: C.
        alpha: Beta parameter, > 0.
        generator: the only source of randomness (CPU generator).
    Returns:
        (mixed x, same shape; soft targets float32 of shape (N, C), rows summing to 1).
    Raises:
        ValueError: if alpha <= 0.
    Source: Zhang et al. 2018 (arXiv:1710.09412), Sec. 2.
    """
    if alpha <= 0:
        raise ValueError(f"mixup alpha={alpha} must be > 0")
    # Beta(a, a) from two Gammas, drawn from the seeded generator (torch.distributions has none)
    g = torch._standard_gamma(torch.full((2,), float(alpha)), generator=generator)
    lam = float(g[0] / g.sum())
    lam = max(lam, 1.0 - lam)
    perm = torch.randperm(len(x), generator=generator).to(x.device)
    onehot = torch.nn.functional.one_hot(y, num_classes).float()
    return lam * x + (1 - lam) * x[perm], lam * onehot + (1 - lam) * onehot[perm]
