"""The single-step dynamics of a LIF layer with exponentially decayed synapses (SOLSA.md §1).

This is the only place the neuron equations are written in Python. Every
learning rule calls :func:`lif_step`: BPTT with autograd on, the online rules
under ``torch.no_grad()``, so the rules cannot drift apart. The fused C++ step
(``solsa/fast/kernel.cpp``) writes them a second time, for speed;
``tests/test_fast_path.py`` holds it equal to this function (through SOLSA's
reference path) for every reset mode, surrogate, granularity and readout.

    F[t] = α ⊙ F[t-1] + β ⊙ x[t]                  synaptic filter
    I[t] = F[t] Wᵀ + b                            synaptic current
    V[t] = λ ⊙ V[t-1] + I[t] - θ_r o[t-1]         membrane, soft reset ("subtract")
    o[t] = H(V[t] - θ)                            spike (surrogate derivative in backward)

A non-spiking layer (``spiking=False``, the leaky-integrator readout) has no
threshold and no reset: ``o[t] = V[t]``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from ..surrogate import spike, surrogate_derivative

__all__ = [
    "RESET_MODES", "LIFParams", "LIFConfig", "LIFState", "lif_step", "synaptic_filter", "membrane_step",
    "spike_derivative",
]

RESET_MODES = ("subtract", "zero", "none")


class LIFParams(NamedTuple):
    """The tensors of one layer (learnable or fixed)."""

    weight: torch.Tensor  # W  [N_out, N_in]
    bias: Optional[torch.Tensor]  # b  [N_out] or None
    alpha: torch.Tensor  # α  [] (one per layer) or [N_in] (one per input channel)
    beta: torch.Tensor  # β  [] or [N_in]
    lam: torch.Tensor  # λ  [] (one per layer) or [N_out] (one per neuron)


class LIFConfig(NamedTuple):
    """The static settings of one layer."""

    threshold: float = 1.0  # θ
    reset_amount: float = 1.0  # θ_r
    reset: str = "subtract"  # "subtract" | "zero" | "none"
    surrogate: str = "gaussian"
    width: float = 0.5
    spiking: bool = True  # False: leaky-integrator readout, o = V, no reset


class LIFState(NamedTuple):
    """State after a step: filter F [B, N_in], membrane V [B, N_out], output o [B, N_out]."""

    F: torch.Tensor
    V: torch.Tensor
    o: torch.Tensor


def synaptic_filter(x: torch.Tensor, F: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """The synaptic filter ``F[t] = α ⊙ F[t-1] + β ⊙ x[t]`` (per layer or per input channel)."""
    return p.alpha * F + p.beta * x


def membrane_step(current: torch.Tensor, state: LIFState, F: torch.Tensor, p: LIFParams, cfg: LIFConfig) -> LIFState:
    """Membrane, reset and spike from the synaptic current ``I[t] = F[t] Wᵀ + b``; returns the new state."""
    if not cfg.spiking:
        V = p.lam * state.V + current
        return LIFState(F, V, V)
    if cfg.reset == "subtract":
        V = p.lam * state.V + current - cfg.reset_amount * state.o
    elif cfg.reset == "zero":
        V = p.lam * state.V * (1.0 - state.o) + current
    else:  # "none"
        V = p.lam * state.V + current
    o = spike(V - cfg.threshold, cfg.surrogate, cfg.width)
    return LIFState(F, V, o)


def lif_step(x: torch.Tensor, state: LIFState, p: LIFParams, cfg: LIFConfig) -> LIFState:
    """Advance one layer by one time step. ``x`` is ``[B, N_in]``; returns the new state."""
    F = synaptic_filter(x, state.F, p)
    current = F @ p.weight.t()
    if p.bias is not None:
        current = current + p.bias
    return membrane_step(current, state, F, p, cfg)


def spike_derivative(V: torch.Tensor, cfg: LIFConfig) -> torch.Tensor:
    """ε[t] = ∂o[t]/∂V[t]: the surrogate for a spiking layer, 1 for a readout."""
    if not cfg.spiking:
        return torch.ones_like(V)
    return surrogate_derivative(V - cfg.threshold, cfg.surrogate, cfg.width)
