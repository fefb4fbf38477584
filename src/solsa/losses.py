"""Per-step losses ``ℓ_t(y[t], target)``, weighted per sample, with their analytic gradient.

A loss is called two ways: ``loss(y, target, weight)`` returns a differentiable
scalar (BPTT backpropagates it), and ``loss.grad(y, target, weight)`` returns
``(value, ∂ℓ_t/∂y)`` without autograd (the online rules use it). The tests
check that both agree.

``weight`` is ``[B]``: the factor of each sample's loss at this step. The rules
use ``mask[t, b] / (length_b · B)`` so that the sequence loss is the batch mean
of each sample's time-averaged loss.

Targets: class labels ``[B]`` (int64), or a per-step target ``[B, C]`` (float,
e.g. a target spike train at step t).
"""

from __future__ import annotations

import torch
import torch.nn.functional as fn

from .layers import READOUT_SCORES
from .validation import check_choice

__all__ = ["Loss", "SpikeMSE", "CrossEntropy", "LOSSES", "make_loss", "sequence_weights", "target_at"]


class Loss:
    name = "loss"

    def __call__(self, y: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def grad(self, y: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def _as_dense(target: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if target.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
        return fn.one_hot(target.long(), y.shape[-1]).to(y.dtype)
    return target.to(y.dtype)


class SpikeMSE(Loss):
    """ℓ_t = Σ_b w_b · mean_c (y_bc[t] - ŷ_bc)²; ŷ is the one-hot label or a target spike train."""

    name = "mse"

    def __call__(self, y, target, weight):
        diff = y - _as_dense(target, y)
        return (weight * diff.pow(2).mean(-1)).sum()

    def grad(self, y, target, weight):
        diff = y - _as_dense(target, y)
        value = (weight * diff.pow(2).mean(-1)).sum()
        return value, diff * (2.0 / y.shape[-1]) * weight.unsqueeze(-1)


class CrossEntropy(Loss):
    """ℓ_t = Σ_b w_b · CE(softmax(y_b[t]), label_b): for the non-spiking readout."""

    name = "ce"

    def __call__(self, y, target, weight):
        logp = fn.log_softmax(y, -1)
        return -(weight * (logp * _as_dense(target, y)).sum(-1)).sum()

    def grad(self, y, target, weight):
        logp = fn.log_softmax(y, -1)
        dense = _as_dense(target, y)
        value = -(weight * (logp * dense).sum(-1)).sum()
        return value, (logp.exp() * dense.sum(-1, keepdim=True) - dense) * weight.unsqueeze(-1)


LOSSES = {"mse": SpikeMSE, "ce": CrossEntropy}


def make_loss(name: str) -> Loss:
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name]()


def sequence_weights(mask: torch.Tensor, score: str = "mean") -> torch.Tensor:
    """Per-step sample weights ``[T, B]`` for the network's ``readout_score`` (:data:`~solsa.layers.READOUT_SCORES`).

    ``"mean"`` and ``"max"``: ``mask[t, b] / (length_b · B)``, so the summed per-step losses are the batch
    mean of each sample's time-averaged loss, whatever the lengths (for ``"max"`` a per-step surrogate: no
    rule trains the loss of the maximum itself, docs/memory.md §3). ``"last"``: ``1 / B`` at each sample's
    last valid step and 0 elsewhere, the loss of the output that is scored.
    """
    check_choice("readout_score", score, READOUT_SCORES)
    if score == "last":
        steps = torch.arange(mask.shape[0], device=mask.device).unsqueeze(1)
        last = torch.where(mask > 0, steps, torch.full_like(steps, -1)).amax(0)
        return (steps == last).to(mask.dtype) / mask.shape[1]
    lengths = mask.sum(0).clamp(min=1.0)
    return mask / (lengths * mask.shape[1])


def target_at(target: torch.Tensor, t: int) -> torch.Tensor:
    """The target at step ``t``: labels ``[B]`` are constant; ``[T, B]`` labels and ``[T, B, C]`` trains are per step."""
    return target if target.dim() == 1 else target[t]
