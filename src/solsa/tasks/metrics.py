"""Distances between spike trains."""

from __future__ import annotations

import math

import torch

__all__ = ["van_rossum_distance"]


def van_rossum_distance(
    a: torch.Tensor,
    b: torch.Tensor,
    tau: float = 5.0,
    mask: torch.Tensor | None = None,
    squared: bool = False,
) -> torch.Tensor:
    """Discrete van Rossum distance between spike trains ``a`` and ``b`` (``[T, N, C]``), one value per sample.

    The difference ``d = a - b`` is filtered causally with an exponential kernel,
    ``f[t] = lam * f[t-1] + d[t]`` with ``lam = exp(-1 / tau)`` and ``f[-1] = 0``, and

        ``D[n]^2 = (1 - lam^2) * sum_t sum_c f[t, n, c]^2``

    (summed over valid steps only when a ``[T, N]`` ``mask`` is given). The factor
    ``1 - lam^2 = 1 / sum_k lam^(2k)`` normalises the kernel so that a single unmatched spike
    (far from the end of the trial) contributes 1 to ``D^2``: ``D^2`` approximately counts
    unmatched spikes, two identical trains give 0, and a spike shifted by ``s`` steps costs
    ``2 (1 - lam^s)``. This mirrors the continuous definition
    ``D^2 = (2 / tau) * integral (f_a - f_b)^2 dt``. With ``squared=True`` returns ``D^2``
    (a smooth loss). Differentiable in ``a`` and ``b``, with a zero gradient where ``D = 0``.
    """
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"a and b must be [T, N, C] tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    lam = math.exp(-1.0 / tau)
    d = a.to(torch.float32) - b.to(torch.float32)
    f = torch.zeros_like(d[0])
    total = torch.zeros(d.shape[1], dtype=d.dtype, device=d.device)
    for t in range(d.shape[0]):
        f = lam * f + d[t]
        sq = (f * f).sum(dim=-1)
        if mask is not None:
            sq = sq * mask[t].to(sq.dtype)
        total = total + sq
    sq_dist = (1.0 - lam * lam) * total
    if squared:
        return sq_dist
    # sqrt with a finite gradient at 0 (identical trains)
    return torch.where(sq_dist > 0, sq_dist.clamp_min(1e-12).sqrt(), torch.zeros_like(sq_dist))
