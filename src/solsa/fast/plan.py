"""The fused kernel's plan, seen from Python: ctypes mirrors of ``struct LayerDesc`` and ``struct Plan``
(``plan.h``) and the codes and limits the kernel reads from them."""

from __future__ import annotations

import ctypes

import torch

from .alif import AlifDesc

__all__ = ["LayerDesc", "Plan", "STORAGE", "PARALLEL_MIN_WORK", "SHORT_ROWS"]

_RESETS = {"subtract": 0, "zero": 1, "none": 2}
_SURROGATES = {"gaussian": 0, "fast_sigmoid": 1, "atan": 2, "triangle": 3}
_DTYPES = {torch.float32: "f32", torch.float64: "f64"}
# the kernel's Plan.storage for the dtype of the [B, N_out, N_in] traces (absent: the network's dtype, 0)
STORAGE = {torch.float16: 1, torch.bfloat16: 2}
# below this many trace elements per layer (B·N_out·N_in) the kernel stays on one thread
PARALLEL_MIN_WORK = 1 << 17
SHORT_ROWS = 16  # layers with fewer inputs sum their current by columns (forward.h: 2 LANES)


class LayerDesc(ctypes.Structure):
    """Mirror of ``struct LayerDesc`` in the kernel source."""

    _fields_ = [(name, ctypes.c_int64) for name in
                ("n_in", "n_out", "reset", "surrogate", "spiking", "filter_per_channel", "lam_per_neuron")]
    _fields_ += [(name, ctypes.c_double) for name in ("threshold", "reset_amount", "width")]
    _fields_ += [(name, ctypes.c_void_p) for name in
                 ("F", "V", "o", "eps", "e", "p", "a", "m", "n", "gW", "gb", "galpha", "glam",
                  "delta", "gbelow", "wtmp", "atmp", "cur", "wp", "d", "wT", "wcopy")]
    # cross-layer credit (docs/credit.md; credit.h)
    _fields_ += [("credit_depth", ctypes.c_int64), ("cstage", ctypes.POINTER(ctypes.c_void_p))]
    _fields_ += [(name, ctypes.c_void_p) for name in ("lag_qE", "lag_uE", "lag_qN", "lag_uN", "eps_lag")]
    _fields_ += [("n_neuron", ctypes.c_int64)]
    _fields_ += [(name, ctypes.c_void_p) for name in ("h_a", "h_m", "h_n", "signals", "dbar", "mass", "mass_bar")]
    _fields_ += [("alif", ctypes.POINTER(AlifDesc))]  # ALIF / recurrent layers (alif.h, alif.py)


class Plan(ctypes.Structure):
    """Mirror of ``struct Plan`` in the kernel source."""

    _fields_ = [("batch", ctypes.c_int64), ("n_layers", ctypes.c_int64), ("reset_feedback", ctypes.c_int64),
                ("track", ctypes.c_int64), ("par_min", ctypes.c_int64), ("pending", ctypes.c_int64),
                ("layers", ctypes.POINTER(LayerDesc)),
                ("params", ctypes.POINTER(ctypes.c_void_p)), ("magnitude", ctypes.c_double),
                ("storage", ctypes.c_int64)]
