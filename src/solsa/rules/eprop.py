"""e-prop: eligibility propagation (Bellec et al., Nat. Commun. 11:3625, 2020), on the layered model of docs/model.md.

e-prop factorises the gradient into an *eligibility trace*, computed forward in
time from quantities local to the synapse, and a *learning signal*, the output
error fed back to each neuron at the same time step. For LIF neurons the reset
is not part of the gradient, so the membrane's own Jacobian is the leak
(``d = λ``, :func:`decay_factor` with ``reset_feedback=False``) and

    x̄_i[t]  = λ x̄_i[t-1] + F_i[t]                low-pass filtered presynaptic input (F = x without a synapse)
    e_ji[t] = ψ_j[t] x̄_i[t]                       eligibility trace, ψ_j[t] = ε_j[t] the pseudo-derivative
    n_j[t]  = λ n_j[t-1] + 1,  e^b_j[t] = ψ_j[t] n_j[t]   the same for the bias

With a leaky readout ``y_k[t] = κ y_k[t-1] + Σ_j W_kj z_j[t] + b_k``, a spike
``z_j[t']`` reaches every later output with weight ``κ^{t-t'}``, so e-prop
filters the eligibility trace with the readout's leak (Bellec et al., Methods):

    ē_ji[t] = κ ē_ji[t-1] + e_ji[t]               ē = F_κ(e); κ = 0 (or a spiking readout): ē = e
    L_j[t]  = Σ_k B_jk ∂ℓ_t/∂y_k[t]               learning signal
    ∂L/∂W_ji ≈ Σ_t Σ_b L_j[t] ē_ji[t]             (and Σ_t L_j[t] ē^b_j[t] for b)

In our feedforward stack ``N_in - hidden... - C`` the learning signal of each
layer is the output error of the *same* step sent down:

* ``feedback="symmetric"`` (symmetric e-prop): through the forward weights, as
  :func:`spatial_error` does (``L^{l-1} = β^l (δ^l W^l)``, ``δ^l = L^l ⊙ ψ^l``).
  With one hidden layer below a leaky readout this is BPTT of the model with
  the reset detached, exactly; with more hidden layers the lower layers' signal
  uses the intermediate layers' ψ at step t (their own temporal paths dropped).
* ``feedback="random"`` (random e-prop): fixed random matrices ``B^l``
  ``[C, N_l]`` (seeded, std ``1/√N_l``, as in the authors' code) carry the
  output error ``δ^L = ∂ℓ_t/∂y ⊙ ψ^L`` directly to every hidden layer.

The output layer uses its own error (``L = ∂ℓ_t/∂y``) and its own trace; for a
leaky readout that trace is ``F_κ(x)``, the exact readout gradient.

Only W and b are learned: α, β, λ are not adapted even when learnable (their
``.grad`` is left untouched). On the full model (α > 0) the input to the
eligibility trace is the filtered ``F[t]`` and the readout filter is κ alone.

Memory per layer: the state, ψ, and ``x̄`` — ``B · N_in`` when the detached
decay is one λ for the whole layer (subtract/none reset, one λ per layer),
``B · N_out · N_in`` otherwise (λ per neuron, or the hard reset whose detached
decay is ``λ(1 - o_j[t-1])``) — plus ``ē`` (``B · N_out · N_in``) for the layers
under a leaky readout with κ > 0.

On its own paper's network (``model="native"``: recurrent ALIF, Bellec et al.'s LSNN; docs/memory.md)
e-prop keeps its ALIF eligibility: with ``ε^a`` the adaptation's trace,
``ε^a_ji[t] = ψ_j[t-1] x̄_ji[t-1] + (ρ - β_a ψ_j[t-1]) ε^a_ji[t-1]`` and ``e_ji = ψ_j (x̄_ji - β_a ε^a_ji)``
(one x̄ per synapse then: the adaptation differs per neuron), the reset still detached. Recurrent
weights learn from the same trace over ``o[t-1]`` (``x̄`` runs over ``[F[t], o[t-1]]``); the paths through
other neurons' spikes are dropped, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..functional import (LIFState, adaptation_decays, bias_trace, decay_factor, lif_step, presynaptic,
                          spatial_error, spike_derivative, split_presynaptic, weight_trace)
from ..layers import LIFLayer
from ..losses import Loss
from .base import state_nbytes
from .compiled import CompiledSequence
from .online import couple_adaptation

__all__ = ["EProp", "EPropTraces", "FEEDBACK_MODES"]

FEEDBACK_MODES = ("symmetric", "random")


@dataclass
class EPropTraces:
    """What e-prop keeps for one layer."""

    state: LIFState
    psi: torch.Tensor  # ψ[t], [B, N_out]
    e: torch.Tensor  # x̄: [B, 1, N_in] (one decay per layer, shared by all neurons) or [B, N_out, N_in]
    n: torch.Tensor | None = None  # bias x̄: [B, 1] or [B, N_out]
    e_bar: torch.Tensor | None = None  # F_κ(ψ x̄) [B, N_out, N_in], only under a leaky readout with κ > 0
    n_bar: torch.Tensor | None = None  # F_κ(ψ n) [B, N_out]
    adapt: dict[str, torch.Tensor] | None = None  # ALIF: ε^a of e and n ([B, N_out, ...])

    def nbytes(self) -> int:
        extra = state_nbytes(*self.adapt.values()) if self.adapt else 0
        return state_nbytes(*self.state, self.psi, self.e, self.n, self.e_bar, self.n_bar) + extra


def _outer_sum(delta: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Σ_b δ_bj e_bji, where ``e`` ``[B, 1, N_in]`` stands for the same trace at every neuron j."""
    if e.shape[1] == 1:
        return delta.t() @ e[:, 0]
    return torch.einsum("bj,bji->ji", delta, e)


def _shared_decay(layer: LIFLayer) -> bool:
    """Whether the detached decay d_j[t] is one number for the whole layer (then x̄ is [B, 1, N_in]); not for ALIF,
    whose trace has the per-neuron adaptation."""
    return layer.lam.dim() == 0 and not (layer.spiking and layer.config.reset == "zero") and not layer.adaptive


class EProp(CompiledSequence):
    """e-prop for a feedforward stack of LIF layers.

    Args:
        net: the :class:`~solsa.SNN` to train.
        loss: ``"mse"`` (spiking readout), ``"ce"`` (leaky readout) or a :class:`~solsa.losses.Loss`.
        feedback: ``"symmetric"`` (the error goes down through the forward weights) or ``"random"``
            (fixed random feedback matrices from the output to every hidden layer).
        seed: seed of the random feedback matrices.
        backend: ``"auto"``, ``"reference"`` or ``"fused"`` (the whole sequence in compiled code,
            :mod:`solsa.rules.compiled`).

    Raises:
        ValueError: for an unknown ``feedback``, or a leaky readout whose decay differs between
            output neurons (F_κ needs one κ).
    """

    name = "eprop"
    _eps_name = "psi"

    def __init__(
        self, net, loss: Loss | str = "mse", *, feedback: str = "symmetric", seed: int = 0, backend: str = "auto"
    ) -> None:
        super().__init__(net, loss, backend=backend)
        if feedback not in FEEDBACK_MODES:
            raise ValueError(f"feedback must be one of {list(FEEDBACK_MODES)}, got {feedback!r}")
        self.feedback = feedback
        self.seed = seed
        self._readout_decay()  # validate now, before training
        self.feedback_weights: list[torch.Tensor] = []  # B^l [C, N_l] for each hidden layer l
        if feedback == "random":
            gen = torch.Generator().manual_seed(seed)
            w = net.layers[-1].weight
            for layer in net.layers[:-1]:
                b = torch.randn(net.n_outputs, layer.out_features, generator=gen, dtype=torch.float64)
                self.feedback_weights.append((b / layer.out_features**0.5).to(device=w.device, dtype=w.dtype))
        self.kappa = 0.0

    def _readout_decay(self) -> float:
        """κ: the leak of a leaky readout (0 for a spiking readout, or a single-layer network)."""
        out = self.net.layers[-1]
        if out.spiking or len(self.net.layers) == 1:
            return 0.0
        lam = out.lam.detach()
        if lam.dim() > 0 and not bool((lam == lam.flatten()[0]).all()):
            raise ValueError(
                "eprop filters the eligibility traces with the readout's decay κ (ē = F_κ(e)) and needs one κ "
                "for all output neurons, but the leaky readout has different λ per neuron"
            )
        return float(lam.flatten()[0])

    def _reset(self, batch_size: int) -> None:
        self.kappa = self._readout_decay()
        w = self.net.layers[-1].weight
        self.feedback_weights = [b.to(device=w.device, dtype=w.dtype) for b in self.feedback_weights]
        super()._reset(batch_size)

    def _learned(self, layer: LIFLayer) -> list[str]:
        return [n for n in ("weight", "bias", "rec_weight") if layer.is_learnable(n)]

    def _new_traces(self, layer: LIFLayer, B: int) -> EPropTraces:
        filtered = layer is not self.net.layers[-1]  # layers under the readout see its leak κ
        kw = {"device": layer.weight.device, "dtype": layer.weight.dtype}
        n_out, n_in = layer.weight.shape
        n_pre = n_in + (n_out if layer.recurrent else 0)
        rows = 1 if _shared_decay(layer) else n_out
        bias = layer.is_learnable("bias")
        tr = EPropTraces(layer.init_state(B), torch.zeros(B, n_out, **kw), torch.zeros(B, rows, n_pre, **kw))
        tr.n = torch.zeros(B, rows, **kw) if bias else None
        if filtered and self.kappa > 0.0:
            tr.e_bar = torch.zeros(B, n_out, n_pre, **kw)
            tr.n_bar = torch.zeros(B, n_out, **kw) if bias else None
        if layer.adaptive:
            tr.adapt = {n: torch.zeros_like(getattr(tr, n)) for n in ("e", "n") if getattr(tr, n) is not None}
        return tr

    def _backward(self, g: torch.Tensor, magnitude: bool) -> float | None:
        """Learning signals L[t] for every layer (the output error of this step) and Σ_t L ē."""
        delta_out = g * self.traces[-1].psi  # the output error at the readout's membrane
        total = 0.0
        signal = g  # the output layer learns from its own error
        for index in reversed(range(len(self.net.layers))):
            layer, tr = self.net.layers[index], self.traces[index]
            delta = signal * tr.psi
            g_weight = self._accumulate(layer, tr, self._grads[index], signal)
            if magnitude:
                total += g_weight.abs().sum().item()
            if index > 0:
                signal = self._signal_below(index, delta, delta_out)
        return total if magnitude else None

    @staticmethod
    def _accumulate(layer: LIFLayer, tr: EPropTraces, acc: dict[str, torch.Tensor], signal: torch.Tensor) -> torch.Tensor:
        """Add Σ_b L_j ψ_j x̄_i (or Σ_b L_j ē_ji under a leaky readout) for W and b; returns the W part.

        e-prop's hook takes the learning signal L (not δ = L ψ): under the readout's filter ψ sits
        inside ē.
        """
        if tr.e_bar is None:  # ∂ℓ_t/∂W ≈ Σ_b L_j ψ_j x̄_i
            delta = signal * tr.psi
            g_weight = _outer_sum(delta, tr.e)
            g_bias = (delta * tr.n).sum(0) if tr.n is not None else None
        else:  # ∂ℓ_t/∂W ≈ Σ_b L_j ē_ji
            g_weight = torch.einsum("bj,bji->ji", signal, tr.e_bar)
            g_bias = (signal * tr.n_bar).sum(0) if tr.n_bar is not None else None
        grads = split_presynaptic(g_weight, layer.in_features)
        for name, g in grads.items():
            acc[name] += g
        if g_bias is not None:
            acc["bias"] += g_bias
        return grads["weight"]

    def _sequence_grads(self, runs, g) -> None:
        """:meth:`_backward` over a stretch (:mod:`solsa.rules.compiled`): the learning signals of every step at
        once, then each layer's traces and Σ_t L ē through the compiled loops."""
        delta_out = g * runs[-1].eps
        signal = g
        for index in reversed(range(len(self.net.layers))):
            layer, run = self.net.layers[index], runs[index]
            self._accumulate_sequence(layer, self.traces[index], self._grads[index], run, signal)
            if index > 0:
                signal = self._signal_below(index, signal * run.eps, delta_out)

    def _accumulate_sequence(self, layer: LIFLayer, tr: EPropTraces, acc: dict[str, torch.Tensor], run,
                             signal: torch.Tensor) -> None:
        """:meth:`_forward_layer`'s traces and :meth:`_accumulate` over a stretch (ALIF: with the adaptation's
        partner ε^a in the same loop; recurrent: the trace over ``[F[t], o[t-1]]``)."""
        from ..fast.online_seq import bias_trace_scan, decay_scan, neuron_trace_accumulate, trace_accumulate

        d = decay_factor(run.V_prev, run.o_prev, run.eps_prev, layer.lam, layer.config, reset_feedback=False)
        shared = tr.e.shape[1] == 1
        if shared:
            d = d[..., :1]
        adapt = None
        if tr.adapt:  # ALIF: x̄ - β_a ε^a with ε^a its adaptation trace (the reset detached: d° = d)
            d, k = adaptation_decays(d, d, run.eps_prev, layer.config)
            adapt = (k, run.eps_prev, layer.config.rho)
        pre = presynaptic(run.F, run.o_prev, layer.recurrent)
        psi, delta = run.eps, signal * run.eps
        grad = self._presynaptic_grad(layer, acc)
        e_adapt = None if adapt is None else (*adapt, tr.adapt["e"])
        if tr.e_bar is not None:  # Σ_b L ē, ē = F_κ(ψ x̄)
            trace_accumulate(d, pre, signal, tr.e, grad, psi, self.kappa, tr.e_bar, e_adapt)
        elif shared:  # x̄ [T, B, 1, N_in]: Σ_t Σ_b δ x̄ is one matrix product
            x_bar = decay_scan(d, pre.unsqueeze(2), tr.e)
            grad += delta.flatten(0, 1).t() @ x_bar.flatten(0, 2)
            tr.e = x_bar[-1].clone()
        else:
            trace_accumulate(d, pre, delta, tr.e, grad, adapt=e_adapt)
        self._add_presynaptic_grad(layer, acc, grad)
        if tr.n is None:
            return
        if adapt is not None:
            filtered = tr.n_bar is not None
            neuron_trace_accumulate(d, None, signal if filtered else delta, tr.n, acc["bias"],
                                    (*adapt, tr.adapt["n"]), psi if filtered else None, self.kappa, tr.n_bar)
            return
        n = bias_trace_scan(d, tr.n)
        tr.n = n[-1].clone()
        if tr.n_bar is None:
            acc["bias"] += (delta * n).sum((0, 1))
            return
        kappa = torch.full_like(psi, self.kappa)
        n_bar = decay_scan(kappa, (psi * n).unsqueeze(-1), tr.n_bar.unsqueeze(-1)).squeeze(-1)
        acc["bias"] += (signal * n_bar).sum((0, 1))
        tr.n_bar = n_bar[-1].clone()

    def _signal_below(self, index: int, delta: torch.Tensor, delta_out: torch.Tensor) -> torch.Tensor:
        """Learning signal L^{index-1}[t] of the layer below ``index``."""
        if self.feedback == "random":
            return delta_out @ self.feedback_weights[index - 1]
        layer = self.net.layers[index]
        return spatial_error(delta, layer.weight, layer.beta)

    def _forward_layer(self, layer: LIFLayer, tr: EPropTraces, x: torch.Tensor) -> None:
        cfg, prev = layer.config, tr.state
        state = lif_step(x, prev, layer.params(), cfg)
        d = decay_factor(prev.V, prev.o, tr.psi, layer.lam, cfg, reset_feedback=False)  # reset detached
        if tr.e.shape[1] == 1:
            d = d[:, :1]  # one decay for the whole layer: one presynaptic trace
        before = {name: getattr(tr, name) for name in tr.adapt} if tr.adapt else {}
        if before:  # ALIF: x̄ - β_a ε^a with ε^a its adaptation trace (the reset detached: d° = d)
            d, k = adaptation_decays(d, d, tr.psi, cfg)
        tr.e = weight_trace(tr.e, d, presynaptic(state.F, prev.o, layer.recurrent))  # x̄[t] = d[t] x̄[t-1] + F[t]
        if tr.n is not None:
            tr.n = bias_trace(tr.n, d)
        if before:
            couple_adaptation(tr, before, k, tr.psi, cfg.rho)
        tr.psi = spike_derivative(state.V, cfg, state.b)
        if tr.e_bar is not None:  # ē[t] = κ ē[t-1] + ψ[t] x̄[t]
            tr.e_bar = torch.addcmul(self.kappa * tr.e_bar, tr.psi.unsqueeze(2), tr.e)
            if tr.n_bar is not None:
                tr.n_bar = torch.addcmul(self.kappa * tr.n_bar, tr.psi, tr.n)
        tr.state = state

    def train_state_bytes(self) -> int:
        """Traces and states, plus the random feedback matrices (kept only for training)."""
        return sum(tr.nbytes() for tr in self.traces) + sum(b.numel() * b.element_size() for b in self.feedback_weights)
