"""BPTT's whole-sequence layer with its time loops in compiled code (``scan.cpp``, built by :mod:`.build`).

:func:`lif_sequence_scan` is :func:`solsa.functional.lif_sequence` (the definition, and the fallback) for a
feedforward LIF layer, as one :class:`torch.autograd.Function` per layer and sequence::

    F[t] = α F[t-1] + β x[t]          the synaptic filter, a C loop over t
    I = F Wᵀ + b                      all T steps in one matrix product
    V, o = membrane(I, λ, V0, o0)     membrane, reset and spike, a C loop over t (the leaky readout:
                                      V[t] = λ V[t-1] + I[t], the filter's loop again)

Its backward is the reverse: the membrane's adjoint in C (the reset path and the surrogate derivative in
it, as autograd through :func:`~solsa.functional.lif_step` has them; ∂λ summed on the way), ``∂W = ∂Iᵀ F``
and ``∂F = ∂I W`` as two matrix products, and the filter's adjoint in C (∂x, ∂α, ∂β). ALIF and recurrent
layers have their own layer function (:mod:`.recurrent_scan`). Tensors off the CPU, other dtypes, or no C++
compiler: :func:`scan_unsupported_reason` says why and the caller runs the PyTorch path.
``SOLSA_DISABLE_SCAN=1`` turns the library off (to test that fallback).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading

import torch

from ..functional import LIFConfig, LIFParams, LIFState
from ..losses import Loss
from .build import build_library

__all__ = ["load_scan", "scan_unsupported_reason", "lif_sequence_scan", "lif_forward_scan", "sequence_loss"]

# online_seq.h, recurrent_seq.h: the online rules' loops (online_seq.py); recurrent_adjoint.h: BPTT's backward
# of a recurrent / ALIF layer (recurrent_scan.py)
SCAN_FILES = ("scan.cpp", "online_seq.h", "recurrent_seq.h", "recurrent_adjoint.h", "denormals.h")
SCAN_ABI = 6  # solsa_scan_abi_version() of the source above
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_RESETS = {"subtract": 0, "zero": 1, "none": 2}
_SURROGATES = {"gaussian": 0, "fast_sigmoid": 1, "atan": 2, "triangle": 3}
_LOCK = threading.Lock()
_STATE: dict[str, object] = {"tried": False, "lib": None, "reason": "not built yet"}


def _declare(lib: ctypes.CDLL) -> None:
    vp, i64, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
    for s in _SUFFIX.values():
        fn = getattr(lib, f"solsa_filter_forward_{s}")
        fn.argtypes, fn.restype = [vp, vp, i64, vp, i64, vp, vp, i64, i64, i64], None
        fn = getattr(lib, f"solsa_filter_backward_{s}")
        fn.argtypes, fn.restype = [vp, vp, i64, vp, i64] + [vp] * 7 + [i64, i64, i64], None
        fn = getattr(lib, f"solsa_membrane_forward_{s}")
        fn.argtypes, fn.restype = [vp, vp, i64, vp, vp, vp, vp, i64, i64, i64, i64, f64, f64], None
        fn = getattr(lib, f"solsa_membrane_backward_{s}")
        fn.argtypes = [vp] * 12 + [i64, i64, i64, i64, f64, f64, i64, f64]
        fn.restype = None
        fn = getattr(lib, f"solsa_decay_scan_{s}")
        fn.argtypes, fn.restype = [vp, vp, vp, vp, i64, i64, i64], None
        fn = getattr(lib, f"solsa_trace_accumulate_{s}")
        fn.argtypes, fn.restype = [vp, vp, i64, vp, vp, i64, vp, f64, vp, vp, vp, f64, vp, vp, i64, i64, i64, i64], None
        fn = getattr(lib, f"solsa_recurrent_forward_{s}")
        fn.argtypes, fn.restype = [vp, vp, vp, i64] + [vp] * 6 + [i64] * 4 + [f64] * 4, None
        fn = getattr(lib, f"solsa_recurrent_backward_{s}")
        fn.argtypes = [vp] * 10 + [i64] + [vp] * 5 + [i64] * 4 + [f64] * 3 + [i64, f64]
        fn.restype = None
    lib.solsa_scan_abi_version.restype = i64


def load_scan() -> ctypes.CDLL | None:
    """The compiled scan library, built on first use (about a second); ``None`` when it cannot be built
    (:func:`scan_unsupported_reason` then says why)."""
    with _LOCK:
        if os.environ.get("SOLSA_DISABLE_SCAN", "") not in ("", "0"):
            _STATE["reason"] = "disabled by SOLSA_DISABLE_SCAN"
            return None
        if not _STATE["tried"]:
            _STATE["tried"] = True
            try:
                lib = ctypes.CDLL(str(build_library(SCAN_FILES, "solsa_scan")))
                _declare(lib)
                if lib.solsa_scan_abi_version() != SCAN_ABI:
                    raise RuntimeError("scan library ABI version mismatch")
                _STATE["lib"], _STATE["reason"] = lib, ""
            except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as exc:
                _STATE["reason"] = f"scan library unavailable: {exc}"
        return _STATE["lib"]  # type: ignore[return-value]


def scan_unsupported_reason(p: LIFParams, cfg: LIFConfig, recurrent: bool = False) -> str:
    """Why :func:`lif_sequence_scan` cannot run the layer of ``p``, ``cfg`` (empty when it can; the input
    must then be on the layer's device, in its dtype). ``recurrent=True``: whether the library's loops of
    ALIF and recurrent layers can run it (their forward, :func:`solsa.fast.recurrent_scan.recurrent_forward`,
    and BPTT's :func:`~solsa.fast.recurrent_scan.recurrent_sequence_scan`)."""
    if not recurrent and (cfg.neuron != "lif" or p.rec_weight is not None):
        return "the compiled scan runs feedforward LIF layers only (ALIF and recurrent layers step in PyTorch)"
    tensors = [t for t in p if t is not None]
    if any(t.device.type != "cpu" for t in tensors):
        return "the compiled scan runs on CPU only"
    if any(t.dtype != p.weight.dtype for t in tensors) or p.weight.dtype not in _SUFFIX:
        return "the compiled scan needs float32 or float64, one dtype for all tensors of a layer"
    if cfg.reset not in _RESETS or cfg.surrogate not in _SURROGATES:
        return f"the compiled scan does not know reset {cfg.reset!r} or surrogate {cfg.surrogate!r}"
    if load_scan() is None:
        return str(_STATE["reason"])
    return ""


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _fn(name: str, dtype: torch.dtype):
    lib = _STATE["lib"] or load_scan()  # loaded already when scan_unsupported_reason was asked first
    if lib is None:
        raise RuntimeError(f"the compiled scan is not available: {_STATE['reason']}")
    return getattr(lib, f"solsa_{name}_{_SUFFIX[dtype]}")


def _filter(u: torch.Tensor, a: torch.Tensor, b: torch.Tensor | None, y0: torch.Tensor) -> torch.Tensor:
    y = torch.empty_like(u)
    T, rows, n = u.shape
    _fn("filter_forward", u.dtype)(u.data_ptr(), a.data_ptr(), a.numel(), _ptr(b), 0 if b is None else b.numel(),
                                   y0.data_ptr(), y.data_ptr(), T, rows, n)
    return y


def _filter_adjoint(g, a, b, u, y, y0, want_u: bool, want_a: bool, want_b: bool):
    """∂L/∂u, ∂L/∂a, ∂L/∂b, ∂L/∂y0 of :func:`_filter` from ``g`` = ∂L/∂y (None where not wanted)."""
    T, rows, n = g.shape
    du = torch.empty_like(g) if want_u else None
    ga = torch.empty_like(a) if want_a else None
    gb = torch.empty_like(b) if want_b else None
    gy0 = torch.empty_like(y0)
    _fn("filter_backward", g.dtype)(g.data_ptr(), a.data_ptr(), a.numel(), _ptr(b), 0 if b is None else b.numel(),
                                    u.data_ptr(), y.data_ptr(), y0.data_ptr(), _ptr(du), _ptr(ga), _ptr(gb),
                                    gy0.data_ptr(), T, rows, n)
    return du, ga, gb, gy0


def _current(x, weight, bias, alpha, beta, F0):
    """The synaptic filter ``F`` and the feedforward current ``F Wᵀ + b``, ``[T, B, ·]`` (contiguous inputs)."""
    T, B, _ = x.shape
    F = _filter(x, alpha, beta, F0)
    current = (F.view(T * B, -1) @ weight.t()).view(T, B, -1)
    if bias is not None:
        current += bias
    return F, current


def _forward(x, weight, bias, alpha, beta, lam, F0, V0, o0, cfg: LIFConfig):
    """Filter, current, membrane and output ``[T, B, ·]`` of a feedforward LIF layer (contiguous inputs, no graph);
    a leaky readout's output is its membrane (``o`` is ``V``)."""
    T, B, _ = x.shape
    F, current = _current(x, weight, bias, alpha, beta, F0)
    if not cfg.spiking:  # V[t] = λ V[t-1] + I[t]: the filter with β = 1
        V = _filter(current, lam, None, V0)
        return F, current, V, V
    V, o = torch.empty_like(current), torch.empty_like(current)
    _fn("membrane_forward", x.dtype)(current.data_ptr(), lam.data_ptr(), lam.numel(), V0.data_ptr(),
                                     o0.data_ptr(), V.data_ptr(), o.data_ptr(), T, B, V.shape[2],
                                     _RESETS[cfg.reset], cfg.threshold, cfg.reset_amount)
    return F, current, V, o


@torch.no_grad()
def lif_forward_scan(x: torch.Tensor, state: LIFState, p: LIFParams, cfg: LIFConfig):
    """The forward of :func:`lif_sequence_scan` without a graph: ``(F, V, o)``, each ``[T, B, ·]`` (the online
    rules' whole-sequence path; check :func:`scan_unsupported_reason` first)."""
    args = (x, p.weight, p.bias, p.alpha, p.beta, p.lam, state.F, state.V, state.o)
    F, _, V, o = _forward(*(None if t is None else t.contiguous() for t in args), cfg)
    return F, V, o


class _LayerScan(torch.autograd.Function):
    """One feedforward LIF layer over ``x`` ``[T, B, N_in]``: outputs ``(o, F, V)`` (spiking) or ``(V, F)``
    (leaky readout, ``o = V``), each ``[T, B, ·]``; backward by the reverse scans and two matrix products."""

    @staticmethod
    def forward(ctx, x, weight, bias, alpha, beta, lam, F0, V0, o0, cfg: LIFConfig, saved):  # type: ignore[override]
        x, weight, alpha, beta, lam, F0, V0, o0 = (t.contiguous() for t in (x, weight, alpha, beta, lam, F0, V0, o0))
        F, current, V, o = _forward(x, weight, bias, alpha, beta, lam, F0, V0, o0, cfg)
        ctx.cfg = cfg
        ctx.has_bias = bias is not None
        ctx.set_materialize_grads(False)
        if not cfg.spiking:
            ctx.save_for_backward(x, weight, alpha, beta, lam, F0, V0, o0, F, V, current)
            if saved is not None:
                saved.extend((x, F0, V0, F, V, current))
            return V, F
        ctx.save_for_backward(x, weight, alpha, beta, lam, F0, V0, o0, F, V, o)
        if saved is not None:
            saved.extend((x, F0, V0, o0, F, V, o))
        return o, F, V

    @staticmethod
    def backward(ctx, grad_out, grad_F, grad_V=None):  # type: ignore[override]
        x, weight, alpha, beta, lam, F0, V0, o0, F, V, last = ctx.saved_tensors
        cfg = ctx.cfg
        need = ctx.needs_input_grad
        T, B, n_out = V.shape
        grad_o0 = None
        if grad_out is None and grad_V is None:
            grad_I = grad_lam = grad_V0 = None
        elif not cfg.spiking:  # last = the current I
            grad_I, grad_lam, _, grad_V0 = _filter_adjoint(grad_out.contiguous(), lam, None, last, V, V0, True,
                                                           need[5], False)
        else:
            grad_I = torch.empty_like(V)
            grad_V0, grad_o0 = torch.empty_like(V0), torch.empty_like(o0)
            grad_lam = torch.empty_like(lam) if need[5] else None
            go = None if grad_out is None else grad_out.contiguous()
            gv = None if grad_V is None else grad_V.contiguous()
            _fn("membrane_backward", V.dtype)(
                _ptr(go), _ptr(gv), V.data_ptr(), last.data_ptr(), V0.data_ptr(), o0.data_ptr(), lam.data_ptr(),
                lam.numel(), grad_I.data_ptr(), grad_V0.data_ptr(), grad_o0.data_ptr(), _ptr(grad_lam), T, B,
                n_out, _RESETS[cfg.reset], cfg.threshold, cfg.reset_amount, _SURROGATES[cfg.surrogate], cfg.width)
        grad_x, grad_W, grad_b, grad_alpha, grad_beta, grad_F0 = _current_adjoint(
            grad_I, grad_F, x, weight, alpha, beta, F0, F, ctx.has_bias, need)
        return grad_x, grad_W, grad_b, grad_alpha, grad_beta, grad_lam, grad_F0, grad_V0, grad_o0, None, None


def _current_adjoint(grad_I, grad_F, x, weight, alpha, beta, F0, F, has_bias: bool, need):
    """The backward of :func:`_current` from ``grad_I`` = ∂L/∂I and ``grad_F`` = ∂L/∂F from outside (either may be
    None): ``(∂x, ∂W, ∂b, ∂α, ∂β, ∂F0)`` by two matrix products and the filter's adjoint (None where not wanted;
    ``need``: the layer function's ``needs_input_grad``, x, W, b, α, β first)."""
    grad_x = grad_W = grad_b = grad_alpha = grad_beta = grad_F0 = None
    if grad_I is not None:
        flat = grad_I.reshape(-1, grad_I.shape[-1])
        if need[1]:
            grad_W = flat.t() @ F.view(flat.shape[0], -1)
        if has_bias and need[2]:
            grad_b = flat.sum(0)
        grad_F = (flat @ weight).view(F.shape) if grad_F is None else (flat @ weight).view(F.shape) + grad_F
    if grad_F is not None:
        grad_x, grad_alpha, grad_beta, grad_F0 = _filter_adjoint(grad_F.contiguous(), alpha, beta, x, F, F0,
                                                                 need[0], need[3], need[4])
    return grad_x, grad_W, grad_b, grad_alpha, grad_beta, grad_F0


def lif_sequence_scan(x: torch.Tensor, state: LIFState, p: LIFParams, cfg: LIFConfig,
                      saved: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, LIFState]:
    """:func:`~solsa.functional.lif_sequence` of a feedforward LIF layer through the compiled scans (check
    :func:`scan_unsupported_reason` first): outputs ``[T, B, N_out]`` and the last state. ``saved``: a list
    that receives the tensors kept for backward besides the parameters (BPTT counts their bytes)."""
    args = (x, p.weight, p.bias, p.alpha, p.beta, p.lam, state.F, state.V, state.o, cfg, saved)
    if cfg.spiking:
        o, F, V = _LayerScan.apply(*args)
    else:
        o, F = _LayerScan.apply(*args)
        V = o
    return o, LIFState(F[-1], V[-1], o[-1])


class _AnalyticLoss(torch.autograd.Function):
    """A loss over the whole sequence with its analytic gradient (:meth:`solsa.losses.Loss.grad`): one graph
    node instead of one per operation of the loss."""

    @staticmethod
    def forward(ctx, y, loss, target, weights):  # type: ignore[override]
        value, grad = loss.grad(y, target, weights)
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    def backward(ctx, grad_value):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_value, None, None, None


def sequence_loss(loss: Loss, y: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``loss(y, target, weights)`` over outputs ``y`` ``[T, B, C]`` with per-step weights ``[T, B]``, its
    backward by the loss's analytic gradient where it has one (spike-MSE, cross-entropy), else by autograd."""
    if type(loss).grad is Loss.grad:
        return loss(y, target, weights)
    return _AnalyticLoss.apply(y, loss, target, weights)
