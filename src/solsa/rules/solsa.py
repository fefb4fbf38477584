"""SOLSA: forward-only learning with exact per-layer traces and a same-step spatial error.

Per time step and per layer (docs/model.md §2–§3):

1. the shared neuron step :func:`lif_step` (no autograd);
2. the traces ``e, p, a, m, n`` advance with ``d[t]``, the reset feedback included;
3. at the output, ``g = ∂ℓ_t/∂y``; going down, ``δ = g ⊙ ε`` accumulates
   ``Σ_b δ_j e_ji`` (and the α, λ, b analogues), and ``g`` crosses to the layer
   below through :func:`spatial_error`.

Nothing is stored per time step: memory is ``O(B · N_out · N_in)`` per layer
whatever the sequence length. For one layer with fixed parameters the gradient
equals BPTT's exactly (tests/test_exactness.py).

Backends: ``"reference"`` is the plain PyTorch code below (one call per trace
recursion of :mod:`solsa.functional`: the definition every other path is tested
against, tests/test_fast_path.py); ``"fused"`` runs a whole time step — all
layers, the loss and the gradient accumulation — in one call of a small
compiled kernel (:mod:`solsa.fast`), on the same trace tensors (updated in place,
and reused by ``reset`` while the network and batch size stay the same); ``"auto"`` (the
default) takes the fused kernel when it builds and supports the network (CPU,
float32/float64) and the reference otherwise, recording why in
:attr:`SOLSA.fallback_reason` (the trainer prints it once and writes it to
``metrics.json``). ``$SOLSA_BACKEND`` replaces the default ``"auto"``.

On the fused backend, :meth:`~solsa.rules.LearningRule.run_sequence` (which the
learner takes for each stretch of steps up to an update point) runs all its steps
in one kernel call, and a streaming ``step`` whose tensors need no conversion
skips the Python checks (:mod:`solsa.fast.sequence`); both give the bits of the
per-step call (tests/test_fused_sequence.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..functional import (
    LIFState,
    adaptation_decays,
    mass_corrected_error,
    alpha_input_trace,
    alpha_trace,
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
from .base import Capabilities, StepResult, state_nbytes
from .credit import (CREDIT_MODES, DEFAULT_CREDIT, LayerCredit, advance_credit, check_credit, credit_depth,
                     credited_view, descend_signals, new_credit, zero_decay)
from .online import OnlineRule, couple_adaptation

__all__ = ["SOLSA", "LayerTraces", "BACKENDS", "CREDIT_MODES", "TRACE_DTYPES", "check_trace_dtype"]

BACKENDS = ("auto", "reference", "fused")
# narrower storage for the [B, N_out, N_in] traces (SOLSA's trace_dtype; None: the network's dtype)
TRACE_DTYPES = ("float16", "bfloat16")
# the credit modes the compiled kernel implements (a new mode runs on the reference path until it is added)
FUSED_CREDIT = ("same-step", "next", "cascade")


@dataclass
class LayerTraces:
    """What SOLSA keeps for one layer: the neuron state, ε[t], and one trace per learnable parameter."""

    state: LIFState
    eps: torch.Tensor  # ε[t] of the last step, [B, N_out]
    e: torch.Tensor  # W trace [B, N_out, N_in] (recurrent: W and W_rec, [B, N_out, N_in + N_out])
    p: torch.Tensor | None = None  # ∂F/∂α [B, N_in]
    a: torch.Tensor | None = None  # α trace [B, N_out, N_in] or [B, N_out]
    m: torch.Tensor | None = None  # λ trace [B, N_out]
    n: torch.Tensor | None = None  # bias trace [B, N_out]
    credit: LayerCredit | None = None  # e, a, m, n filtered through the layers above (rules/credit.py)
    adapt: dict[str, torch.Tensor] | None = None  # ALIF: each trace's partner w = ∂b/∂θ (e, a, m, n are of V - A)

    def nbytes(self) -> int:
        extra = self.credit.nbytes() if self.credit is not None else 0
        extra += state_nbytes(*self.adapt.values()) if self.adapt else 0
        return state_nbytes(*self.state, self.eps, self.e, self.p, self.a, self.m, self.n) + extra


def check_trace_dtype(trace_dtype: str | None) -> str | None:
    """``trace_dtype`` when None or one of :data:`TRACE_DTYPES`; a ``ValueError`` naming it otherwise."""
    if trace_dtype is not None and trace_dtype not in TRACE_DTYPES:
        raise ValueError(f"trace_dtype must be None or one of {list(TRACE_DTYPES)}, got {trace_dtype!r}")
    return trace_dtype


def _sum_to(g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Reduce a per-neuron/per-channel gradient to a parameter of shape ``[]`` or ``[N]``."""
    return g.sum() if len(shape) == 0 else g


class SOLSA(OnlineRule):
    """The SOLSA learner.

    Args:
        net: the :class:`~solsa.SNN` to train.
        loss: ``"mse"`` (spiking readout), ``"ce"`` (leaky readout) or a :class:`~solsa.losses.Loss`.
        reset_feedback: keep the reset's dependence on V in ``d[t]`` (SOLSA); False drops it,
            as e-prop and OTTT do (the ``solsa-detachreset`` ablation).
        backend: ``"auto"`` (default; ``$SOLSA_BACKEND`` when set), ``"reference"`` or ``"fused"``
            (``reset`` raises when the compiled kernel is unavailable). After ``reset``,
            :attr:`active_backend` names the path in use and :attr:`fallback_reason` says why
            ``"auto"`` fell back to the reference.
        credit: how a hidden layer's traces cross the layers above, one of :data:`CREDIT_MODES`
            (docs/credit.md): ``"same-step"`` (docs/model.md §3, no extra memory), ``"next"`` (through the
            layer directly above; exact under a leaky readout with one λ) or ``"cascade"`` (through
            every layer above; the default). The fused kernel implements all three.
        trace_dtype: None (the network's dtype) or one of :data:`TRACE_DTYPES`: the ``[B, N_out, N_in]``
            traces (``e``, a per-channel ``a`` and their credit stages) are stored in it, the arithmetic
            stays in the network's dtype (half the bytes of float32 at ~1e-3 relative error; docs/benchmarks.md).
            The fused kernel stores them so too.
    """

    name = "solsa"
    capabilities = Capabilities(online=True, step_magnitude=True, backends=BACKENDS[1:], whole_sequence=True)

    def __init__(
        self, net, loss: Loss | str = "mse", *, reset_feedback: bool = True, backend: str | None = None,
        credit: str = DEFAULT_CREDIT, trace_dtype: str | None = None,
    ) -> None:
        super().__init__(net, loss, backend=backend or os.environ.get("SOLSA_BACKEND") or "auto")
        self.credit = check_credit(credit)
        self.trace_dtype = check_trace_dtype(trace_dtype)
        self._active_backend = ""
        self._fallback_reason = ""
        self.reset_feedback = reset_feedback
        self._fused = None  # solsa.fast.fused.FusedStepper while the fused backend is active

    def __getstate__(self) -> dict:
        """A copy (pickle, deepcopy) holds no kernel (it points into this process's memory): the kernel's deferred
        gradient is added to the accumulators first, and the copy runs its current sequence on the reference
        path, the fused kernel again from its next reset."""
        state = self.__dict__.copy()
        if self._fused is not None:
            self._fused.settle()
            state.update(_fused=None, _active_backend="reference",
                         _fallback_reason="a copy made mid-sequence runs it on the reference path")
        return state

    @property
    def active_backend(self) -> str:
        return self._active_backend or ("reference" if self.backend == "reference" else "")

    @property
    def fallback_reason(self) -> str:
        return self._fallback_reason

    def _reset(self, batch_size: int) -> None:
        if (self._fused is not None and self._backend != "reference"
                and self._fused.restart(self.net.layers, batch_size, self.reset_feedback, self.loss)):
            return  # fused: the same trace tensors, zeroed in place
        if self._fused is not None:
            self._fused.settle()  # the kernel defers the last step's weight gradient: add it before leaving
        super()._reset(batch_size)
        self._fused = None
        self._active_backend, self._fallback_reason = "reference", ""
        if self._backend != "reference":
            self._start_fused(batch_size)

    def _start_fused(self, batch_size: int) -> None:
        """Hand the freshly reset traces to the compiled kernel, or record why it cannot run."""
        try:
            from ..fast.fused import FusedStepper, unsupported_reason
        except ImportError as exc:  # a partial install: the reference path still works
            FusedStepper, reason = None, f"solsa.fast cannot be imported: {exc}"
        else:
            reason = unsupported_reason(self.net.layers, self.trace_dtype)
        if self.credit not in FUSED_CREDIT and len(self.net.layers) > 1:
            reason = f"the fused kernel implements credit {list(FUSED_CREDIT)} only, not {self.credit!r}"
        if not reason:
            try:
                self._fused = FusedStepper(self.net.layers, self.traces, self._grads, batch_size,
                                           self.reset_feedback, self.loss)
                self._active_backend = "fused"
                return
            except RuntimeError as exc:  # e.g. a non-contiguous gradient accumulator
                reason = str(exc)
        if self._backend == "fused":
            raise RuntimeError(f"backend='fused' is not available: {reason}")
        self._fallback_reason = reason

    def _learned(self, layer: LIFLayer) -> list[str]:
        return ["weight"] + [n for n in ("bias", "alpha", "lam", "rec_weight") if layer.is_learnable(n)]

    def _new_traces(self, layer: LIFLayer, B: int) -> LayerTraces:
        w = layer.weight
        kw = {"device": w.device, "dtype": w.dtype}
        n_out, n_in = w.shape
        n_pre = n_in + (n_out if layer.recurrent else 0)
        wide = {**kw, "dtype": getattr(torch, self.trace_dtype) if self.trace_dtype else w.dtype}  # [B,N_out,N_pre]
        tr = LayerTraces(layer.init_state(B), torch.zeros(B, n_out, **kw), torch.zeros(B, n_out, n_pre, **wide))
        if layer.is_learnable("alpha"):
            tr.p = torch.zeros(B, n_in, **kw)
            tr.a = torch.zeros(B, n_out, n_in, **wide) if layer.filter_per_channel else torch.zeros(B, n_out, **kw)
        if layer.is_learnable("lam"):
            tr.m = torch.zeros(B, n_out, **kw)
        if layer.is_learnable("bias"):
            tr.n = torch.zeros(B, n_out, **kw)
        if layer.adaptive:
            tr.adapt = {n: torch.zeros_like(getattr(tr, n)) for n in ("e", "a", "m", "n") if getattr(tr, n) is not None}
        index = next(i for i, lay in enumerate(self.net.layers) if lay is layer)
        cascade, layers = self.credit == "cascade", self.net.layers
        upper = layers[index + 1].weight.shape[0] if index + 1 < len(layers) else 0
        tr.credit = new_credit(tr, credit_depth(self.credit, index, len(layers)), lag=cascade and index > 0,
                               upper_neurons=upper if cascade and index == len(layers) - 2 else 0,
                               mass_neurons=upper if cascade else 0,
                               pass_through=tuple(zero_decay(lay) for lay in layers[index + 1:]))
        return tr

    def step(self, x: torch.Tensor, target: torch.Tensor | None = None, weight: torch.Tensor | None = None, *,
             magnitude: bool = False) -> StepResult:
        fused = self._fused
        if fused is not None and target is not None and not magnitude:  # the streaming call, checked lean
            out = fused.quick_step(x, target, weight)
            if out is not None:
                return out
        return super().step(x, target, weight, magnitude=magnitude)

    step.__doc__ = OnlineRule.step.__doc__

    def _sequence(self, x, target, weights) -> StepResult:
        run = self._fused.run(x, target, weights) if self._fused is not None else None
        if run is None:  # the reference backend, a custom loss, another target layout: step by step
            return self._steps(x, target, weights)
        return StepResult(*run)

    def _step(self, x, target, weight, magnitude) -> StepResult:
        fused = self._fused
        if fused is None:  # the plain PyTorch step: the OnlineRule skeleton
            return super()._step(x, target, weight, magnitude)
        if target is None:
            y = fused.forward(x)
            return StepResult(y, y.new_zeros(()))
        y, value, size = fused.step(x, target, weight, magnitude)
        return StepResult(y, value, size if magnitude else None)

    def predict_step(self, x: torch.Tensor) -> torch.Tensor:
        if self._fused is None:
            return super().predict_step(x)
        return self._fused.predict(self._check_step(x))  # the kernel's own pure step: the next step's bits

    def _forward_layer(self, layer: LIFLayer, tr: LayerTraces, x: torch.Tensor) -> None:
        cfg, prev = layer.config, tr.state
        state = lif_step(x, prev, layer.params(), cfg)
        own = layer.rec_weight.diagonal() if layer.recurrent else None  # the self-connection: kept
        d = decay_factor(prev.V, prev.o, tr.eps, layer.lam, cfg, self.reset_feedback, own)
        before = {name: getattr(tr, name) for name in tr.adapt} if tr.adapt else {}
        if before:  # ALIF: the traces are of V - A, coupled to their adaptation partners (docs/memory.md §1)
            d, k = adaptation_decays(d, decay_factor(prev.V, prev.o, tr.eps, layer.lam, cfg, False), tr.eps, cfg)
        tr.e = weight_trace(tr.e, d, presynaptic(state.F, prev.o, layer.recurrent))
        if tr.p is not None:
            tr.p = alpha_input_trace(tr.p, prev.F, layer.alpha)
            tr.a = alpha_trace(tr.a, d, layer.weight, tr.p, layer.filter_per_channel)
        if tr.m is not None:
            tr.m = lambda_trace(tr.m, d, prev.V, prev.o, cfg)
        if tr.n is not None:
            tr.n = bias_trace(tr.n, d)
        if before:
            couple_adaptation(tr, before, k, tr.eps, cfg.rho)
        if self.credit != "same-step":  # the layers below filter their traces through this one
            upper = next(i for i, t in enumerate(self.traces) if t is tr)
            advance_credit(self.traces, upper, layer.alpha, d)
        tr.eps = spike_derivative(state.V, cfg, state.b)
        tr.state = state

    @staticmethod
    def _accumulate(
        layer: LIFLayer, tr: LayerTraces, acc: dict[str, torch.Tensor], delta: torch.Tensor
    ) -> torch.Tensor:
        """∂ℓ_t/∂θ = Σ_b Σ_j δ_j[t] · trace_j(θ)[t]; returns this step's weight gradient."""
        # a narrow trace_dtype is widened here
        grads = split_presynaptic(torch.einsum("bj,bji->ji", delta, tr.e.to(delta.dtype)), layer.in_features)
        for name, g in grads.items():
            acc[name] += g
        g_weight = grads["weight"]
        if tr.a is not None:
            g_alpha = torch.einsum("bj,bji->i", delta, tr.a.to(delta.dtype)) if tr.a.dim() == 3 else (delta * tr.a).sum()
            acc["alpha"] += _sum_to(g_alpha, layer.alpha.shape)
        if tr.m is not None:
            acc["lam"] += _sum_to((delta * tr.m).sum(0), layer.lam.shape)
        if tr.n is not None:
            acc["bias"] += (delta * tr.n).sum(0)
        return g_weight

    def _credited(self, tr: LayerTraces, g: torch.Tensor, delta: torch.Tensor) -> tuple:
        """A hidden layer with filtered traces pairs them with ``g`` (its ε is inside the filter)."""
        if self.credit == "same-step":
            return tr, delta
        index = next(i for i, t in enumerate(self.traces) if t is tr)
        if index == len(self.traces) - 1:
            self._signals, self._g_above = [g], g
            return tr, delta
        above, upper = self.traces[index + 1], self.net.layers[index + 1]
        upper_delta, self._g_above = self._g_above * above.eps, g
        mass = tr.credit.mass
        if mass is not None:  # cascade: each upper neuron's error scaled by its decay kernel's mass
            g = mass_corrected_error(upper_delta, mass[0], mass[1], upper.weight, upper.beta)
        self._signals = descend_signals(self._signals, upper, above.credit, g, len(tr.credit.stages))
        return credited_view(tr, self._signals, upper_delta, upper)

    def _derived_grads(self, layer: LIFLayer, acc: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not layer.is_learnable("beta"):
            return {}
        # ∂V_j/∂β_i = W_ji e_ji / β_i, so ∂L/∂β_i = Σ_j W_ji ∂L/∂W_ji / β_i (W fixed since the last flush)
        wg = layer.weight * acc["weight"]
        return {"beta": (wg.sum(0) if layer.filter_per_channel else wg.sum()) / layer.beta}

    @torch.no_grad()
    def flush(self) -> None:
        if self._fused is not None and self._fused.flush():
            return
        super().flush()
