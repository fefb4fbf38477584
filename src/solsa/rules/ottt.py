"""OTTT: online training through time (Xiao et al., NeurIPS 2022), on the layered model of docs/model.md.

OTTT keeps, per layer, one leaky trace of the layer's presynaptic input and
combines it at every step with the instantaneous error at the membrane:

    â_i[t] = λ â_i[t-1] + s_i[t]                 presynaptic trace, s[t] = F[t] (= x[t] when α = 0, β = 1)
    n[t]   = λ n[t-1] + 1                         the same trace for the bias (input 1)
    δ_j[t] = ∂ℓ_t/∂o_j[t] · ε_j[t]                error at the membrane, this step only
    ∂L/∂W_ji ≈ Σ_t Σ_b δ_j[t] â_i[t]              ∂L/∂b_j ≈ Σ_t Σ_b δ_j[t] n[t]

The error crosses layers within the step (docs/model.md §3, :func:`spatial_error`),
the reset is detached, and the membrane's own temporal path is kept only
through the leak: with one λ per layer and the reset detached, SOLSA's W trace
``e_ji[t] = d_j[t] e_ji[t-1] + F_i[t]`` has ``d_j = λ`` for every neuron j, so
it collapses to ``â_i`` — which is why OTTT needs only ``O(B · N_in)`` per layer,
never a ``[B, N_out, N_in]`` trace. For a *single* layer with subtract (or no)
reset this makes OTTT the exact gradient of the model with the reset detached.

What OTTT cannot do, and therefore refuses at construction (``ValueError``):

* one λ per neuron (``lam_granularity="neuron"``): ``â`` would differ per
  postsynaptic neuron, i.e. a ``[B, N_out, N_in]`` trace — no longer OTTT;
* the hard reset (``reset="zero"``): with the reset detached its decay is
  ``λ (1 - o_j[t-1])``, again one trace per synapse.

Only W and b are learned; α, β, λ are not adapted even when learnable (their
``.grad`` is left untouched).

On ALIF and recurrent layers (docs/memory.md) OTTT stays OTTT: the adaptive threshold enters only
through ε (its surrogate is taken at ``V - A``), the adaptation's own path is dropped, and a recurrent
layer's W_rec learns from the presynaptic trace of ``o[t-1]`` (``â`` runs over ``[F[t], o[t-1]]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..functional import (LIFState, bias_trace, decay_factor, lif_step, presynaptic, spike_derivative,
                          split_presynaptic, weight_trace)
from ..layers import LIFLayer
from ..losses import Loss
from .base import state_nbytes
from .compiled import CompiledSequence

__all__ = ["OTTT", "OTTTTraces"]


@dataclass
class OTTTTraces:
    """What OTTT keeps for one layer: the neuron state, ε[t], â and the bias trace."""

    state: LIFState
    eps: torch.Tensor  # ε[t] of the current step, [B, N_out]
    a_hat: torch.Tensor  # â [B, 1, N_in (+ N_out if recurrent)]: SOLSA's W trace, the same for every neuron j
    n: torch.Tensor | None = None  # bias trace [B, 1]

    def nbytes(self) -> int:
        return state_nbytes(*self.state, self.eps, self.a_hat, self.n)


def check_ottt_network(net) -> None:
    """Raise ``ValueError`` if OTTT's presynaptic trace would not be one ``[B, N_in]`` tensor per layer."""
    for i, layer in enumerate(net.layers):
        if layer.lam.dim() != 0:
            raise ValueError(
                f"ottt needs lam_granularity='layer' (one λ per layer), but layer {i} has one λ per neuron: "
                "its presynaptic trace â = λ â + s would differ per neuron; use model 'paper' or the rules solsa/ostl"
            )
        if layer.spiking and layer.config.reset == "zero":
            raise ValueError(
                f"ottt needs reset 'subtract' or 'none', but layer {i} has reset 'zero': with the reset "
                "detached its decay λ(1 - o[t-1]) differs per neuron, so â would be a per-synapse trace"
            )


class OTTT(CompiledSequence):
    """Online training through time.

    Args:
        net: the :class:`~solsa.SNN` to train (one λ per layer, reset ``subtract`` or ``none``).
        loss: ``"mse"`` (spiking readout), ``"ce"`` (leaky readout) or a :class:`~solsa.losses.Loss`.
        backend: ``"auto"``, ``"reference"`` or ``"fused"`` (the whole sequence in compiled code,
            :mod:`solsa.rules.compiled`).

    Raises:
        ValueError: if the network has a per-neuron λ or a hard reset (see the module docstring).
    """

    name = "ottt"

    def __init__(self, net, loss: Loss | str = "mse", *, backend: str = "auto") -> None:
        super().__init__(net, loss, backend=backend)
        check_ottt_network(net)

    def _learned(self, layer: LIFLayer) -> list[str]:
        return [n for n in ("weight", "bias", "rec_weight") if layer.is_learnable(n)]

    @staticmethod
    def _new_traces(layer: LIFLayer, B: int) -> OTTTTraces:
        kw = {"device": layer.weight.device, "dtype": layer.weight.dtype}
        n = torch.zeros(B, 1, **kw) if layer.is_learnable("bias") else None
        n_pre = layer.in_features + (layer.out_features if layer.recurrent else 0)
        return OTTTTraces(layer.init_state(B), torch.zeros(B, layer.out_features, **kw), torch.zeros(B, 1, n_pre, **kw), n)

    @staticmethod
    def _accumulate(layer: LIFLayer, tr: OTTTTraces, acc: dict[str, torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
        """Σ_b δ_j[t] â_i[t] (and Σ_b δ_j[t] n[t] for b); returns this step's weight gradient."""
        grads = split_presynaptic(delta.t() @ tr.a_hat[:, 0], layer.in_features)
        for name, g in grads.items():
            if name in acc:
                acc[name] += g
        if "bias" in acc:
            acc["bias"] += (delta * tr.n).sum(0)
        return grads["weight"]

    def _sequence_grads(self, runs, g) -> None:
        """â, n and their gradients over a stretch (:mod:`solsa.rules.compiled`): â of every step is only
        ``[T, B, N_in]`` (recurrent: over ``[F[t], o[t-1]]``), so Σ_t Σ_b δ â is one matrix product."""
        from ..fast.online_seq import bias_trace_scan, decay_scan

        for layer, tr, acc, run, delta in zip(self.net.layers, self.traces, self._grads, runs,
                                              self._same_step_deltas(runs, g)):
            d = decay_factor(run.V_prev[..., :1], run.o_prev[..., :1], run.eps_prev[..., :1], layer.lam,
                             layer.config, reset_feedback=False)  # [T, B, 1]: one decay for the layer
            pre = presynaptic(run.F, run.o_prev, layer.recurrent)
            a_hat = decay_scan(d, pre.unsqueeze(2), tr.a_hat)  # [T, B, 1, N_in (+ N_out)]
            grad = self._presynaptic_grad(layer, acc)
            grad += delta.flatten(0, 1).t() @ a_hat.flatten(0, 2)
            self._add_presynaptic_grad(layer, acc, grad)
            tr.a_hat = a_hat[-1].clone()
            if tr.n is not None:
                n = bias_trace_scan(d, tr.n)  # [T, B, 1]
                acc["bias"] += (delta * n).sum((0, 1))
                tr.n = n[-1].clone()

    @staticmethod
    def _forward_layer(layer: LIFLayer, tr: OTTTTraces, x: torch.Tensor) -> None:
        cfg, prev = layer.config, tr.state
        state = lif_step(x, prev, layer.params(), cfg)
        # the detached decay is the layer's λ, the same for every neuron: evaluate it on one column
        d = decay_factor(prev.V[:, :1], prev.o[:, :1], tr.eps[:, :1], layer.lam, cfg, reset_feedback=False)
        tr.a_hat = weight_trace(tr.a_hat, d, presynaptic(state.F, prev.o, layer.recurrent))  # â = λ â + F[t]
        if tr.n is not None:
            tr.n = bias_trace(tr.n, d)
        tr.eps = spike_derivative(state.V, cfg, state.b)
        tr.state = state
