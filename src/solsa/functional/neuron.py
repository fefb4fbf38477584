"""The single-step dynamics of a LIF layer with exponentially decayed synapses (docs/model.md §1).

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

Two options of a spiking layer (docs/memory.md):

    recurrent:  I[t] = F[t] Wᵀ + b + o[t-1] W_recᵀ          weights within the layer (``LIFParams.rec_weight``)
    ALIF:       b[t] = ρ b[t-1] + o[t-1]                     adaptation, one per neuron (``LIFState.b``)
                o[t] = H(V[t] - θ - β_a b[t])                the threshold rises by β_a per spike, decays with ρ

(``neuron="alif"``, ``adapt`` = β_a, ``rho`` = ρ in :class:`LIFConfig`; the form of Bellec et al. 2020
without the ``1 - ρ`` factor, so β_a is the rise per spike.) The reset stays ``θ_r o[t-1]``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from ..surrogate import spike, surrogate_derivative

__all__ = [
    "RESET_MODES", "LIFParams", "LIFConfig", "LIFState", "lif_step", "synaptic_filter", "membrane_step",
    "spike_derivative", "firing_threshold", "adaptation_step", "NEURONS", "lif_sequence",
]

RESET_MODES = ("subtract", "zero", "none")
NEURONS = ("lif", "alif")  # plain LIF, or LIF with an adaptive threshold


class LIFParams(NamedTuple):
    """The tensors of one layer (learnable or fixed)."""

    weight: torch.Tensor  # W  [N_out, N_in]
    bias: Optional[torch.Tensor]  # b  [N_out] or None
    alpha: torch.Tensor  # α  [] (one per layer) or [N_in] (one per input channel)
    beta: torch.Tensor  # β  [] or [N_in]
    lam: torch.Tensor  # λ  [] (one per layer) or [N_out] (one per neuron)
    rec_weight: Optional[torch.Tensor] = None  # W_rec [N_out, N_out] of a recurrent layer, else None


class LIFConfig(NamedTuple):
    """The static settings of one layer."""

    threshold: float = 1.0  # θ
    reset_amount: float = 1.0  # θ_r
    reset: str = "subtract"  # "subtract" | "zero" | "none"
    surrogate: str = "gaussian"
    width: float = 0.5
    spiking: bool = True  # False: leaky-integrator readout, o = V, no reset
    neuron: str = "lif"  # "lif" | "alif" (adaptive threshold; spiking layers only)
    adapt: float = 0.0  # β_a: threshold rise per spike (ALIF)
    rho: float = 0.0  # ρ: decay of the adaptation b (ALIF)


class LIFState(NamedTuple):
    """State after a step: filter F [B, N_in], membrane V [B, N_out], output o [B, N_out], and the
    adaptation b [B, N_out] of an ALIF layer (None otherwise)."""

    F: torch.Tensor
    V: torch.Tensor
    o: torch.Tensor
    b: Optional[torch.Tensor] = None


def synaptic_filter(x: torch.Tensor, F: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """The synaptic filter ``F[t] = α ⊙ F[t-1] + β ⊙ x[t]`` (per layer or per input channel)."""
    return p.alpha * F + p.beta * x


def adaptation_step(state: LIFState, cfg: LIFConfig) -> Optional[torch.Tensor]:
    """ALIF: ``b[t] = ρ b[t-1] + o[t-1]``; None for a LIF layer."""
    if cfg.neuron != "alif" or not cfg.spiking:
        return None
    return cfg.rho * state.b + state.o


def firing_threshold(b: Optional[torch.Tensor], cfg: LIFConfig) -> torch.Tensor | float:
    """``A[t] = θ + β_a b[t]`` (ALIF), θ otherwise."""
    return cfg.threshold if b is None else cfg.threshold + cfg.adapt * b


def membrane_step(current: torch.Tensor, state: LIFState, F: torch.Tensor, p: LIFParams, cfg: LIFConfig) -> LIFState:
    """Membrane, reset and spike from the synaptic current ``I[t]``; returns the new state."""
    if not cfg.spiking:
        V = p.lam * state.V + current
        return LIFState(F, V, V)
    if cfg.reset == "subtract":
        V = p.lam * state.V + current - cfg.reset_amount * state.o
    elif cfg.reset == "zero":
        V = p.lam * state.V * (1.0 - state.o) + current
    else:  # "none"
        V = p.lam * state.V + current
    b = adaptation_step(state, cfg)
    o = spike(V - firing_threshold(b, cfg), cfg.surrogate, cfg.width)
    return LIFState(F, V, o, b)


def lif_step(x: torch.Tensor, state: LIFState, p: LIFParams, cfg: LIFConfig) -> LIFState:
    """Advance one layer by one time step. ``x`` is ``[B, N_in]``; returns the new state."""
    F = synaptic_filter(x, state.F, p)
    current = F @ p.weight.t()
    if p.bias is not None:
        current = current + p.bias
    if p.rec_weight is not None:
        current = current + state.o @ p.rec_weight.t()
    return membrane_step(current, state, F, p, cfg)


def lif_sequence(x: torch.Tensor, state: LIFState, p: LIFParams, cfg: LIFConfig) -> tuple[torch.Tensor, LIFState]:
    """Advance one layer over a whole sequence ``x`` ``[T, B, N_in]``; returns (outputs ``[T, B, N_out]``, last state).

    The same equations as ``T`` calls of :func:`lif_step` (its helpers, in the same order per step), with the
    synaptic current of all steps taken in one matrix product: the filter does not depend on the layer's
    output, so ``F[t] Wᵀ + b`` can wait until every ``F[t]`` is known. Fewer operations per step, which is
    what a small network spends its time on (docs/benchmarks.md, "Per-step overhead").
    """
    filtered = []
    F = state.F
    for x_t in x.unbind(0):
        F = synaptic_filter(x_t, F, p)
        filtered.append(F)
    current = torch.stack(filtered) @ p.weight.t()
    if p.bias is not None:
        current = current + p.bias
    outputs = []
    for F_t, current_t in zip(filtered, current.unbind(0)):
        if p.rec_weight is not None:
            current_t = current_t + state.o @ p.rec_weight.t()
        state = membrane_step(current_t, state, F_t, p, cfg)
        outputs.append(state.o)
    return torch.stack(outputs), state


def spike_derivative(V: torch.Tensor, cfg: LIFConfig, b: Optional[torch.Tensor] = None) -> torch.Tensor:
    """ε[t] = ∂o[t]/∂V[t]: the surrogate at ``V - A`` (``b``: the ALIF adaptation) for a spiking layer, 1 for
    a readout. For ALIF, ``∂o[t]/∂b[t] = -β_a ε[t]``."""
    if not cfg.spiking:
        return torch.ones_like(V)
    return surrogate_derivative(V - firing_threshold(b, cfg), cfg.surrogate, cfg.width)
