"""The time loops of the online rules' whole-sequence path (e-prop, OSTL, OTTT), in compiled code.

:class:`~solsa.rules.compiled.CompiledSequence` runs a whole stretch of steps of a feedforward LIF network
in a few calls instead of a dozen per layer and step: each layer's forward over all ``T`` steps through
BPTT's scan (:func:`~solsa.fast.scan.lif_forward_scan`), the loss and its gradient over ``[T, B, C]`` at once,
the same-step errors of every step as one matrix product per layer (they depend on step ``t`` only), and the
traces through the two loops below (``online_seq.h``, compiled into the scan library):

    decay_scan:        y[t] = d[t] ⊙ y[t-1] + u[t]                       (x̄, â, n, m: [B, ·] traces)
    trace_accumulate:  e[t] = d[t] ⊙ e[t-1] + u[t],  G += Σ_b s[t] e[t]   ([B, N_out, N_in] traces, never kept
                       per step; e-prop's readout filter ē = F_κ(ψ e) in the same loop; ALIF: the
                       adaptation's partner trace w = ∂b/∂θ beside e, the 2-component recursion)

A recurrent and/or ALIF layer (model ``native``) runs its forward through ``recurrent_seq.h``
(:func:`~solsa.fast.recurrent_scan.recurrent_forward`, which BPTT's layer shares): the filter and
the feedforward current over all steps as above, then one C loop over t for what depends on the layer's own
output (``o[t-1] W_recᵀ``, the adaptation ``b[t]``, the membrane and the spike).

The arithmetic per element is the reference's (:mod:`solsa.functional.traces`); the sums are taken in
another order, so the gradients agree to rounding (tests/test_online_sequence.py: float64 ≤ 1e-10).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..functional import LIFState, spike_derivative
from ..losses import CrossEntropy, SpikeMSE
from .recurrent_scan import recurrent_forward
from .scan import _fn, _ptr, lif_forward_scan, scan_unsupported_reason

__all__ = ["LayerRun", "sequence_unsupported_reason", "layer_run", "decay_scan", "bias_trace_scan", "trace_accumulate",
           "neuron_trace_accumulate"]


class LayerRun(NamedTuple):
    """One layer over a stretch of ``T`` steps, each ``[T, B, ·]``, with the values one step earlier (``*_prev``:
    the stored state first) that the trace recursions take."""

    F: torch.Tensor
    V: torch.Tensor
    o: torch.Tensor
    eps: torch.Tensor  # ε[t] (1 for a readout)
    V_prev: torch.Tensor
    o_prev: torch.Tensor
    eps_prev: torch.Tensor
    b: torch.Tensor | None = None  # the ALIF adaptation b[t] (None for LIF)


def sequence_unsupported_reason(layers, loss) -> str:
    """Why the compiled whole-sequence path cannot run ``layers`` with ``loss`` (empty when it can)."""
    if type(loss) not in (SpikeMSE, CrossEntropy):
        return f"the compiled whole-sequence path takes the losses 'mse' and 'ce', not {type(loss).__name__}"
    reasons = (scan_unsupported_reason(layer.params(), layer.config, recurrent=True) for layer in layers)
    return next((r for r in reasons if r), "")


def _before(first: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
    """``[first, seq[0], …, seq[T-2]]``: each step's previous value."""
    return torch.cat([first.unsqueeze(0), seq[:-1]])


def layer_run(layer, x: torch.Tensor, state: LIFState, eps0: torch.Tensor) -> LayerRun:
    """``layer`` over ``x`` ``[T, B, N_in]`` from ``state`` and ``eps0`` = ε of the step before."""
    cfg = layer.config
    if layer.adaptive or layer.recurrent:
        F, V, o, b = recurrent_forward(x, state, layer.params(), cfg)
    else:
        (F, V, o), b = lif_forward_scan(x, state, layer.params(), cfg), None
    eps = spike_derivative(V, cfg, b)
    return LayerRun(F, V, o, eps, _before(state.V, V), _before(state.o, o), _before(eps0, eps), b)


def decay_scan(d: torch.Tensor, u: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
    """``y[t] = d[t] y[t-1] + u[t]`` from ``y0``: ``u`` ``[T, *rows, n]``, ``d`` ``[T, *rows]`` (one decay per
    row, broadcast to that shape), ``y0`` ``[*rows, n]``; returns ``y`` ``[T, *rows, n]``."""
    steps, n = u.shape[0], u.shape[-1]
    u = u.contiguous()
    d = d.expand(u.shape[:-1]).contiguous()
    y0 = y0.expand(u.shape[1:]).contiguous()
    y = torch.empty_like(u)
    rows = y0.numel() // n
    _fn("decay_scan", u.dtype)(d.data_ptr(), u.data_ptr(), y0.data_ptr(), y.data_ptr(), steps, rows, n)
    return y


def bias_trace_scan(d: torch.Tensor, n0: torch.Tensor) -> torch.Tensor:
    """:func:`~solsa.functional.bias_trace` over a stretch: ``n[t] = 1 + d[t] n[t-1]`` from ``n0``, ``[T, B, N]``."""
    return decay_scan(d, torch.ones_like(d).unsqueeze(-1), n0.unsqueeze(-1)).squeeze(-1)


def trace_accumulate(d: torch.Tensor, u: torch.Tensor, s: torch.Tensor, e: torch.Tensor, grad: torch.Tensor,
                     psi: torch.Tensor | None = None, kappa: float = 0.0, e_bar: torch.Tensor | None = None,
                     adapt: tuple | None = None) -> None:
    """Advance the trace ``e`` ``[B, R_e, N]`` (``R_e`` 1 or ``R``) over ``T`` steps, ``e[t] = d[t] e[t-1] + u[t]``
    with ``d`` ``[T, B, R_e]`` and ``u`` ``[T, B, N]`` (or ``[T, B, R_e, N]``, one input per row), adding
    ``Σ_t Σ_b s[t] e[t]`` (``s`` ``[T, B, R]``) to ``grad`` ``[R, N]``; with ``psi``, ``ē[t] = κ ē[t-1] + ψ[t] e[t]``
    (``e_bar`` ``[B, R, N]``) pairs with ``s`` instead. ``adapt = (k, q, ρ, w)`` (ALIF, ``R_e = R``): the partner
    trace ``w`` ``[B, R, N]``, ``e[t] += k[t] w[t-1]``, ``w[t] = ρ w[t-1] + q[t] e[t-1]`` (``k``, ``q``
    ``[T, B, R]``). ``e``, ``e_bar``, ``w`` and ``grad`` are updated in place (contiguous)."""
    steps, batch = u.shape[:2]
    n, R = u.shape[-1], s.shape[-1]
    k, q, rho, w = adapt if adapt is not None else (None, None, 0.0, None)
    inputs = [None if t is None else t.contiguous() for t in (d, u, s, psi, k, q)]
    for t in (e, grad, e_bar, w):
        if t is not None and not t.is_contiguous():
            raise RuntimeError("trace_accumulate updates e, e_bar, w and grad in place: they must be contiguous")
    d, u, s, psi, k, q = inputs
    _fn("trace_accumulate", u.dtype)(
        d.data_ptr(), u.data_ptr(), 1 if u.dim() == 3 else u.shape[2], s.data_ptr(), e.data_ptr(), e.shape[1],
        _ptr(psi), kappa, _ptr(e_bar), _ptr(k), _ptr(q), rho, _ptr(w), grad.data_ptr(), steps, batch, R, n)


def neuron_trace_accumulate(d: torch.Tensor, u: torch.Tensor | None, s: torch.Tensor, y: torch.Tensor,
                            grad: torch.Tensor, adapt: tuple | None = None, psi: torch.Tensor | None = None,
                            kappa: float = 0.0, y_bar: torch.Tensor | None = None) -> None:
    """:func:`trace_accumulate` of a trace with one entry per neuron, ``y`` ``[B, R]`` (the bias's ``n``, OSTL's
    λ trace ``m``): ``u`` ``[T, B, R]`` (None: 1 at every step), ``grad`` ``[R]``, ``y_bar`` and ``adapt``'s ``w``
    ``[B, R]``, all updated in place."""
    u = torch.ones_like(d[..., :1]) if u is None else u.unsqueeze(-1)
    if adapt is not None:
        adapt = (*adapt[:3], adapt[3].unsqueeze(-1))
    trace_accumulate(d, u, s, y.unsqueeze(-1), grad.unsqueeze(-1), psi, kappa,
                     None if y_bar is None else y_bar.unsqueeze(-1), adapt)
