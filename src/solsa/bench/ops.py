"""An arithmetic-operation counter for one training step (any rule written in PyTorch, backward included).

:class:`OpCounter` is a ``TorchDispatchMode`` that sees every ATen call,
autograd's backward included, and estimates its arithmetic:

* matrix products (``mm``, ``bmm``, ``addmm``, ``baddbmm``, ``addbmm``,
  ``matmul``, ``dot``, ``mv``): ``2·M·N·K`` (the usual FLOP convention);
* every other op that computes: one operation per element of its largest
  tensor argument or result (elementwise ops and reductions alike);
* views, copies, allocation and indexing (no arithmetic): nothing.

It counts what the code asks for, not what a kernel executes, so the fused
SOLSA kernel (one opaque call) is counted through the reference path, which
does the same arithmetic.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["OpCounter"]

_FREE = {
    "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like",
    "new_empty", "new_zeros", "new_ones", "new_full", "view", "_unsafe_view", "reshape", "expand", "permute",
    "transpose", "t", "unsqueeze", "squeeze", "select", "slice", "as_strided", "detach", "alias", "clone",
    "copy_", "_to_copy", "to", "contiguous", "lift_fresh", "lift_fresh_copy", "stack", "cat", "split",
    "unbind", "index_select", "_reshape_alias", "resolve_conj", "resolve_neg", "zero_", "fill_", "set_",
    "_local_scalar_dense", "item", "scalar_tensor", "arange", "linspace", "one_hot", "new_empty_strided",
    "expand_as", "view_as", "randn", "rand", "randint", "normal_", "uniform_", "is_nonzero", "equal",
}


def _numel(x: Any) -> int:
    return x.numel() if isinstance(x, torch.Tensor) else 0


def _largest(args: Any, out: Any) -> int:
    best = 0
    for item in (*args, out) if not isinstance(out, (list, tuple)) else (*args, *out):
        if isinstance(item, (list, tuple)):
            for sub in item:
                best = max(best, _numel(sub))
        else:
            best = max(best, _numel(item))
    return best


def _matmul_flops(name: str, args: tuple, out: Any) -> int | None:
    if name in ("mm", "bmm", "matmul", "dot", "mv"):
        a, b = args[0], args[1]
    elif name in ("addmm", "baddbmm", "addbmm", "addmv"):
        a, b = args[1], args[2]
    else:
        return None
    k = a.shape[-1]
    return 2 * k * (out.numel() if isinstance(out, torch.Tensor) else math.prod(a.shape[:-1]) * b.shape[-1])


class OpCounter(TorchDispatchMode):
    """``with OpCounter() as c: ...`` then ``c.total`` (operations) and ``c.by_op`` (per ATen op)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.by_op: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        flops = _matmul_flops(name, args, out)
        if flops is None:
            flops = 0 if name.rstrip("_") in _FREE or name in _FREE else _largest(args, out)
        if flops:
            self.total += flops
            self.by_op[name] = self.by_op.get(name, 0) + flops
        return out
