"""BPTT's whole-sequence layer for recurrent and/or ALIF layers (model ``native``), its time loops in compiled code.

:func:`recurrent_sequence_scan` is :func:`solsa.functional.lif_sequence` (the definition, and the fallback) for a
spiking layer with recurrent weights ``W_rec`` and/or the adaptive threshold, as one
:class:`torch.autograd.Function` per layer and sequence::

    F[t] = α F[t-1] + β x[t]                 the synaptic filter, a C loop over t (scan.cpp)
    Iff = F Wᵀ + b                           all T steps in one matrix product
    V, o, b = recurrence(Iff, W_rec, λ)      o[t-1] W_recᵀ, b[t] = ρ b[t-1] + o[t-1], the membrane with its reset,
                                             o[t] = H(V[t] - θ - β_a b[t]): one C loop over t (recurrent_seq.h)

The forward keeps ``o``, ``u = V - θ - β_a b`` (what the surrogate needs; not ``b``) and ``V`` only where the
hard reset or a learned λ needs it. Its backward is the reverse: one C loop over t back (``recurrent_adjoint.h``)
through the membrane and its reset, the adaptation (ρ, β_a), the recurrent error ``∂L/∂I[t] W_rec`` into
``o[t-1]`` and the surrogate at ``u``, ∂λ summed on the way; then ``∂W_rec = Σ_t ∂I[t]ᵀ o[t-1]``, ``∂W``, ``∂b``
and ``∂F`` as matrix products over all steps and the filter's adjoint (∂x, ∂α, ∂β), as for the feedforward
layer (:mod:`.scan`). :func:`~solsa.fast.scan.scan_unsupported_reason` with ``recurrent=True`` says when it cannot
run; tests/test_bptt_scan_native.py holds its gradients equal to autograd through the PyTorch path.
"""

from __future__ import annotations

import torch

from ..functional import LIFConfig, LIFParams, LIFState
from .scan import _RESETS, _SURROGATES, _current, _current_adjoint, _fn, _ptr

__all__ = ["recurrent_forward", "recurrent_sequence_scan"]


def _contiguous(*tensors):
    return tuple(None if t is None else t.contiguous() for t in tensors)


def _forward(x, weight, bias, alpha, beta, lam, rec_weight, F0, V0, o0, b0, cfg: LIFConfig):
    """``(F, V, o, b)`` ``[T, B, ·]`` (``b`` None for LIF) from contiguous inputs, no graph."""
    steps, batch, _ = x.shape
    F, current = _current(x, weight, bias, alpha, beta, F0)
    V, o = torch.empty_like(current), torch.empty_like(current)
    b = torch.empty_like(current) if b0 is not None else None
    w_rec_t = rec_weight.t().contiguous() if rec_weight is not None else None
    _fn("recurrent_forward", x.dtype)(current.data_ptr(), _ptr(w_rec_t), lam.data_ptr(), lam.numel(),
                                      V0.data_ptr(), o0.data_ptr(), _ptr(b0), V.data_ptr(), o.data_ptr(), _ptr(b),
                                      steps, batch, V.shape[2], _RESETS[cfg.reset], cfg.threshold,
                                      cfg.reset_amount, cfg.adapt, cfg.rho)
    return F, V, o, b


@torch.no_grad()
def recurrent_forward(x: torch.Tensor, state: LIFState, p: LIFParams, cfg: LIFConfig):
    """``(F, V, o, b)``, each ``[T, B, ·]``, of a recurrent and/or ALIF layer over ``x`` ``[T, B, N_in]`` without a
    graph (``b`` None for LIF): the current through the feedforward weights in one product, the recursion through
    the layer's own output in C. Check :func:`~solsa.fast.scan.scan_unsupported_reason` first."""
    b0 = state.b if cfg.neuron == "alif" and cfg.spiking else None
    return _forward(*_contiguous(x, p.weight, p.bias, p.alpha, p.beta, p.lam, p.rec_weight, state.F, state.V,
                                 state.o, b0), cfg)


class _RecurrentLayerScan(torch.autograd.Function):
    """One recurrent and/or ALIF layer over ``x`` ``[T, B, N_in]``: outputs ``o``, ``F`` ``[T, B, ·]`` and the last
    ``V`` (and, for ALIF, ``b``) ``[B, N_out]``; backward by the adjoint loop in C and matrix products. It keeps
    ``u = V - θ - β_a b`` (all the surrogate needs) and ``o``, and ``V`` only for the hard reset or a learned λ."""

    @staticmethod
    def forward(ctx, x, weight, bias, alpha, beta, lam, rec_weight, F0, V0, o0, b0, cfg: LIFConfig,
                saved):  # type: ignore[override]
        x, weight, alpha, beta, lam, rec_weight, F0, V0, o0, b0 = _contiguous(x, weight, alpha, beta, lam,
                                                                             rec_weight, F0, V0, o0, b0)
        F, V, o, b = _forward(x, weight, bias, alpha, beta, lam, rec_weight, F0, V0, o0, b0, cfg)
        last = (V[-1].clone(),) if b is None else (V[-1].clone(), b[-1].clone())
        # the reference's firing_threshold and V - A (solsa.functional.neuron), in place on b
        u = V - cfg.threshold if b is None else V - b.mul_(cfg.adapt).add_(cfg.threshold)
        keep_V = V if cfg.reset == "zero" or ctx.needs_input_grad[5] else None
        ctx.cfg, ctx.adaptive = cfg, b is not None
        ctx.has_bias = bias is not None
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, weight, alpha, beta, lam, rec_weight, F0, V0, o0, F, u, o, keep_V)
        if saved is not None:
            saved.extend(t for t in (x, F0, V0, o0, F, u, o, keep_V) if t is not None)
        return (o, F, *last)

    @staticmethod
    def backward(ctx, grad_o, grad_F, grad_V=None, grad_b=None):  # type: ignore[override]
        x, weight, alpha, beta, lam, rec_weight, F0, V0, o0, F, u, o, V = ctx.saved_tensors
        cfg, need = ctx.cfg, ctx.needs_input_grad
        steps, batch, n = u.shape
        grad_I = grad_lam = grad_rec = grad_V0 = grad_o0 = grad_b0 = None
        if grad_o is not None or grad_V is not None or grad_b is not None:
            grad_I = torch.empty_like(u)
            grad_V0, grad_o0 = torch.empty_like(V0), torch.empty_like(o0)
            grad_b0 = torch.empty_like(V0) if ctx.adaptive else None
            grad_lam = torch.empty_like(lam) if need[5] else None
            go, gv, gb = _contiguous(grad_o, grad_V, grad_b)
            _fn("recurrent_backward", u.dtype)(
                _ptr(go), _ptr(gv), _ptr(gb), u.data_ptr(), _ptr(V), o.data_ptr(), V0.data_ptr(), o0.data_ptr(),
                _ptr(rec_weight), lam.data_ptr(), lam.numel(), grad_I.data_ptr(), grad_V0.data_ptr(),
                grad_o0.data_ptr(), _ptr(grad_b0), _ptr(grad_lam), steps, batch, n, _RESETS[cfg.reset],
                cfg.reset_amount, cfg.adapt, cfg.rho, _SURROGATES[cfg.surrogate], cfg.width)
            if rec_weight is not None and need[6]:  # ∂W_rec = Σ_t ∂I[t]ᵀ o[t-1]
                o_prev = torch.cat([o0.unsqueeze(0), o[:-1]]).view(steps * batch, n)
                grad_rec = grad_I.view(steps * batch, n).t() @ o_prev
        grad_x, grad_W, grad_bias, grad_alpha, grad_beta, grad_F0 = _current_adjoint(
            grad_I, grad_F, x, weight, alpha, beta, F0, F, ctx.has_bias, need)
        return (grad_x, grad_W, grad_bias, grad_alpha, grad_beta, grad_lam, grad_rec, grad_F0, grad_V0, grad_o0,
                grad_b0, None, None)


def recurrent_sequence_scan(x: torch.Tensor, state: LIFState, p: LIFParams, cfg: LIFConfig,
                            saved: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, LIFState]:
    """:func:`~solsa.functional.lif_sequence` of a spiking recurrent and/or ALIF layer through the compiled loops
    (check :func:`~solsa.fast.scan.scan_unsupported_reason` with ``recurrent=True`` first): outputs
    ``[T, B, N_out]`` and the last state. ``saved``: a list that receives the tensors kept for backward besides
    the parameters (BPTT counts their bytes)."""
    if not cfg.spiking:
        raise ValueError("recurrent_sequence_scan runs spiking layers (a readout has neither ALIF nor recurrence)")
    adaptive = cfg.neuron == "alif"
    out = _RecurrentLayerScan.apply(x, p.weight, p.bias, p.alpha, p.beta, p.lam, p.rec_weight, state.F, state.V,
                                    state.o, state.b if adaptive else None, cfg, saved)
    o, F, V = out[:3]
    return o, LIFState(F[-1], V, o[-1], out[3] if adaptive else None)
