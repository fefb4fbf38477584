"""The time loops of the online rules' whole-sequence path (e-prop, OSTL, OTTT), in compiled code.

:class:`~solsa.rules.compiled.CompiledSequence` runs a whole stretch of steps of a feedforward LIF network
in a few calls instead of a dozen per layer and step: each layer's forward over all ``T`` steps through
BPTT's scan (:func:`~solsa.fast.scan.lif_forward_scan`), the loss and its gradient over ``[T, B, C]`` at once,
the same-step errors of every step as one matrix product per layer (they depend on step ``t`` only), and the
traces through the two loops below (``online_seq.h``, compiled into the scan library):

    decay_scan:        y[t] = d[t] ⊙ y[t-1] + u[t]                       (x̄, â, n, m: [B, ·] traces)
    trace_accumulate:  e[t] = d[t] ⊙ e[t-1] + u[t],  G += Σ_b s[t] e[t]   ([B, N_out, N_in] traces, never kept
                       per step; e-prop's readout filter ē = F_κ(ψ e) in the same loop)

The arithmetic per element is the reference's (:mod:`solsa.functional.traces`); the sums are taken in
another order, so the gradients agree to rounding (tests/test_online_sequence.py: float64 ≤ 1e-10).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..functional import LIFState, spike_derivative
from ..losses import CrossEntropy, SpikeMSE
from .scan import _fn, lif_forward_scan, scan_unsupported_reason

__all__ = ["LayerRun", "sequence_unsupported_reason", "layer_run", "decay_scan", "bias_trace_scan", "trace_accumulate"]


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


def sequence_unsupported_reason(layers, loss) -> str:
    """Why the compiled whole-sequence path cannot run ``layers`` with ``loss`` (empty when it can)."""
    if any(layer.adaptive or layer.recurrent for layer in layers):
        return ("the compiled whole-sequence path runs feedforward LIF layers only "
                "(ALIF and recurrent layers, e.g. model 'native', step in PyTorch)")
    if type(loss) not in (SpikeMSE, CrossEntropy):
        return f"the compiled whole-sequence path takes the losses 'mse' and 'ce', not {type(loss).__name__}"
    return next((r for r in (scan_unsupported_reason(layer.params(), layer.config) for layer in layers) if r), "")


def _before(first: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
    """``[first, seq[0], …, seq[T-2]]``: each step's previous value."""
    return torch.cat([first.unsqueeze(0), seq[:-1]])


def layer_run(layer, x: torch.Tensor, state: LIFState, eps0: torch.Tensor) -> LayerRun:
    """``layer`` over ``x`` ``[T, B, N_in]`` from ``state`` and ``eps0`` = ε of the step before."""
    cfg = layer.config
    F, V, o = lif_forward_scan(x, state, layer.params(), cfg)
    eps = spike_derivative(V, cfg)
    return LayerRun(F, V, o, eps, _before(state.V, V), _before(state.o, o), _before(eps0, eps))


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
                     psi: torch.Tensor | None = None, kappa: float = 0.0, e_bar: torch.Tensor | None = None) -> None:
    """Advance the trace ``e`` ``[B, R_e, N]`` (``R_e`` 1 or ``R``) over ``T`` steps, ``e[t] = d[t] e[t-1] + u[t]``
    with ``d`` ``[T, B, R_e]`` and ``u`` ``[T, B, N]``, adding ``Σ_t Σ_b s[t] e[t]`` (``s`` ``[T, B, R]``) to
    ``grad`` ``[R, N]``; with ``psi``, ``ē[t] = κ ē[t-1] + ψ[t] e[t]`` (``e_bar`` ``[B, R, N]``) pairs with ``s``
    instead. ``e``, ``e_bar`` and ``grad`` are updated in place (contiguous)."""
    steps, batch, n = u.shape
    R = s.shape[-1]
    tensors = [d.contiguous(), u.contiguous(), s.contiguous()]
    if psi is not None:
        tensors.append(psi.contiguous())
    for t in (e, grad) + ((e_bar,) if psi is not None else ()):
        if not t.is_contiguous():
            raise RuntimeError("trace_accumulate updates e, e_bar and grad in place: they must be contiguous")
    _fn("trace_accumulate", u.dtype)(
        tensors[0].data_ptr(), tensors[1].data_ptr(), tensors[2].data_ptr(), e.data_ptr(), e.shape[1],
        None if psi is None else tensors[3].data_ptr(), kappa, None if e_bar is None else e_bar.data_ptr(),
        grad.data_ptr(), steps, batch, R, n)
