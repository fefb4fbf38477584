"""OSTL: online spatio-temporal learning (Bohnstingl et al., IEEE TNNLS 2022), on the layered model of docs/model.md.

OSTL separates the gradient into a *temporal* part, carried forward exactly
inside each layer as an eligibility trace, and a *spatial* part, the error
passed between layers within the same time step. Its spiking neuron (the SNU)
has no synapse and a multiplicative hard reset whose derivative is kept, so the
per-layer trace is the exact sensitivity ``∂V_j[t]/∂θ`` with the reset included:

    d_j[t]  = ∂V_j[t]/∂V_j[t-1]  (zero reset: λ(1 - o_j[t-1]) - λ V_j[t-1] ε_j[t-1];
                                  subtract: λ - θ_r ε_j[t-1]; none: λ)
    e_ji[t] = d_j[t] e_ji[t-1] + F_i[t]           W  (F[t] = x[t] without a synaptic filter)
    n_j[t]  = d_j[t] n_j[t-1] + 1                 b
    m_j[t]  = d_j[t] m_j[t-1] + V_j[t-1](1 - o_j[t-1])   λ, zero reset (V_j[t-1] otherwise), if learnable
    δ_j[t]  = g_j[t] ε_j[t],   g^L[t] = ∂ℓ_t/∂o^L[t],   g^{l-1}_i[t] = β^l_i Σ_j δ^l_j[t] W^l_ji
    ∂L/∂θ   ≈ Σ_t Σ_b δ_j[t] · trace_j(θ)[t]

For one layer the gradient equals BPTT's exactly (the reset included); across
layers the paths through the future states of the layers above are dropped
(OSTL's spatial/temporal separation). On the model of docs/model.md these are the
W, b, λ traces of :mod:`solsa.functional.traces` with the reset feedback — OSTL
and SOLSA differ in the neuron model (SOLSA adds the learned synaptic filter):
on the full model OSTL treats the filtered input ``F[t]`` as the layer's input
and does not adapt α, β (their ``.grad`` is left untouched).

Memory per layer: ``B · N_out · N_in`` for ``e`` plus ``O(B · (N_in + N_out))``.

ALIF and recurrent layers (docs/memory.md): OSTL's per-layer trace is kept exact for ALIF (the 2×2
recursion on (V, b) of :mod:`solsa.functional.traces`, twice the memory); a recurrent layer's W_rec is
learned with the same trace over ``o[t-1]``, truncated to the neuron's own state (the paths through the
other neurons' spikes dropped), as SOLSA does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..functional import (
    LIFState,
    adaptation_decays,
    bias_trace,
    decay_factor,
    lambda_trace,
    lif_step,
    presynaptic,
    spike_derivative,
    split_presynaptic,
    weight_trace,
)
from ..layers import LIFLayer
from ..losses import Loss
from .base import state_nbytes
from .compiled import CompiledSequence
from .online import couple_adaptation

__all__ = ["OSTL", "OSTLTraces"]


@dataclass
class OSTLTraces:
    """What OSTL keeps for one layer: the neuron state, ε[t], and the W, b, λ eligibility traces."""

    state: LIFState
    eps: torch.Tensor  # ε[t] of the last step, [B, N_out]
    e: torch.Tensor  # W trace [B, N_out, N_in] (recurrent: W and W_rec, [B, N_out, N_in + N_out])
    n: torch.Tensor | None = None  # bias trace [B, N_out]
    m: torch.Tensor | None = None  # λ trace [B, N_out]
    adapt: dict[str, torch.Tensor] | None = None  # ALIF: each trace's partner ∂b/∂θ

    def nbytes(self) -> int:
        return state_nbytes(*self.state, self.eps, self.e, self.n, self.m, *(self.adapt or {}).values())


class OSTL(CompiledSequence):
    """Online spatio-temporal learning.

    Args:
        net: the :class:`~solsa.SNN` to train (any reset mode and λ granularity).
        loss: ``"mse"`` (spiking readout), ``"ce"`` (leaky readout) or a :class:`~solsa.losses.Loss`.
        learn_lam: also learn λ where it is a parameter (its trace is exact too); False leaves it untouched.
        backend: ``"auto"``, ``"reference"`` or ``"fused"`` (the whole sequence in compiled code,
            :mod:`solsa.rules.compiled`).
    """

    name = "ostl"

    def __init__(self, net, loss: Loss | str = "mse", *, learn_lam: bool = True, backend: str = "auto") -> None:
        super().__init__(net, loss, backend=backend)
        self.learn_lam = learn_lam

    def _learned(self, layer: LIFLayer) -> list[str]:
        names = ["weight", "bias", "rec_weight"] + (["lam"] if self.learn_lam else [])
        return [n for n in names if layer.is_learnable(n)]

    def _new_traces(self, layer: LIFLayer, B: int) -> OSTLTraces:
        kw = {"device": layer.weight.device, "dtype": layer.weight.dtype}
        n_out, n_in = layer.weight.shape
        learned = self._learned(layer)
        n_pre = n_in + (n_out if layer.recurrent else 0)
        tr = OSTLTraces(layer.init_state(B), torch.zeros(B, n_out, **kw), torch.zeros(B, n_out, n_pre, **kw))
        if "bias" in learned:
            tr.n = torch.zeros(B, n_out, **kw)
        if "lam" in learned:
            tr.m = torch.zeros(B, n_out, **kw)
        if layer.adaptive:
            tr.adapt = {n: torch.zeros_like(getattr(tr, n)) for n in ("e", "n", "m") if getattr(tr, n) is not None}
        return tr

    @staticmethod
    def _accumulate(layer: LIFLayer, tr: OSTLTraces, acc: dict[str, torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
        """∂ℓ_t/∂θ = Σ_b Σ_j δ_j[t] · trace_j(θ)[t] for W, b, λ; returns this step's weight gradient."""
        grads = split_presynaptic(torch.einsum("bj,bji->ji", delta, tr.e), layer.in_features)
        for name, g in grads.items():
            acc[name] += g
        if tr.n is not None:
            acc["bias"] += (delta * tr.n).sum(0)
        if tr.m is not None:
            g_lam = (delta * tr.m).sum(0)
            acc["lam"] += g_lam.sum() if layer.lam.dim() == 0 else g_lam
        return grads["weight"]

    def _sequence_grads(self, runs, g) -> None:
        """The W, b, λ traces and their gradients over a stretch (:mod:`solsa.rules.compiled`); ALIF: each with its
        adaptation partner in the same loop; recurrent: the W trace over ``[F[t], o[t-1]]``, d with W_rec,jj."""
        from ..fast.online_seq import bias_trace_scan, decay_scan, neuron_trace_accumulate, trace_accumulate

        for layer, tr, acc, run, delta in zip(self.net.layers, self.traces, self._grads, runs,
                                              self._same_step_deltas(runs, g)):
            cfg = layer.config
            own = layer.rec_weight.diagonal() if layer.recurrent else None
            d = decay_factor(run.V_prev, run.o_prev, run.eps_prev, layer.lam, cfg, reset_feedback=True,
                             self_weight=own)
            adapt = None
            if tr.adapt:
                detached = decay_factor(run.V_prev, run.o_prev, run.eps_prev, layer.lam, cfg, False)
                d, k = adaptation_decays(d, detached, run.eps_prev, cfg)
                adapt = (k, run.eps_prev, cfg.rho)
            grad = self._presynaptic_grad(layer, acc)
            trace_accumulate(d, presynaptic(run.F, run.o_prev, layer.recurrent), delta, tr.e, grad,
                             adapt=None if adapt is None else (*adapt, tr.adapt["e"]))
            self._add_presynaptic_grad(layer, acc, grad)
            if tr.n is not None:
                if adapt is not None:
                    neuron_trace_accumulate(d, None, delta, tr.n, acc["bias"], (*adapt, tr.adapt["n"]))
                else:
                    n = bias_trace_scan(d, tr.n)
                    acc["bias"] += (delta * n).sum((0, 1))
                    tr.n = n[-1].clone()
            if tr.m is not None:
                direct = run.V_prev * (1.0 - run.o_prev) if layer.spiking and cfg.reset == "zero" else run.V_prev
                g_lam = torch.zeros_like(tr.m[0])
                if adapt is not None:
                    neuron_trace_accumulate(d, direct, delta, tr.m, g_lam, (*adapt, tr.adapt["m"]))
                else:
                    m = decay_scan(d, direct.unsqueeze(-1), tr.m.unsqueeze(-1)).squeeze(-1)
                    g_lam += (delta * m).sum((0, 1))
                    tr.m = m[-1].clone()
                acc["lam"] += g_lam.sum() if layer.lam.dim() == 0 else g_lam

    @staticmethod
    def _forward_layer(layer: LIFLayer, tr: OSTLTraces, x: torch.Tensor) -> None:
        cfg, prev = layer.config, tr.state
        state = lif_step(x, prev, layer.params(), cfg)
        own = layer.rec_weight.diagonal() if layer.recurrent else None
        d = decay_factor(prev.V, prev.o, tr.eps, layer.lam, cfg, reset_feedback=True, self_weight=own)
        before = {name: getattr(tr, name) for name in tr.adapt} if tr.adapt else {}
        if before:
            d, k = adaptation_decays(d, decay_factor(prev.V, prev.o, tr.eps, layer.lam, cfg, False), tr.eps, cfg)
        tr.e = weight_trace(tr.e, d, presynaptic(state.F, prev.o, layer.recurrent))
        if tr.n is not None:
            tr.n = bias_trace(tr.n, d)
        if tr.m is not None:
            tr.m = lambda_trace(tr.m, d, prev.V, prev.o, cfg)
        if before:
            couple_adaptation(tr, before, k, tr.eps, cfg.rho)
        tr.eps = spike_derivative(state.V, cfg, state.b)
        tr.state = state
