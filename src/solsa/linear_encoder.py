"""The learned linear encoder (``--encoder linear``): the first layer's weight as a product ``M = W·E``.

The ``linear`` encoder of :mod:`solsa.tasks.encoders` applies only its fixed ``base`` encoder to the data
(``C`` channels); the learned part lives here, in the model. A matrix ``E`` ``[K, C]`` maps the base channels
to ``K`` learned channels and the first layer's weight ``W`` ``[N, K]`` reads those, so the first layer's
current is ``F·(W·E)ᵀ``. ``E`` is applied to the first layer's *filtered* presynaptic signal ``F`` (its
synaptic filters α, β stay on the ``C`` base channels): then the first layer is exactly a layer whose weight is
the effective weight

    M = W · E        [N, C]

and every rule (SOLSA, BPTT, e-prop, OTTT, OSTL) runs unchanged on ``M``: it is the first layer's ``weight``
(a leaf tensor, kept equal to ``W·E``), and each rule writes its own gradient ``G_M`` into ``weight.grad`` as for
any network. Because ``M`` is linear in each factor, the chain rule

    G_W = G_M · Eᵀ        G_E = Wᵀ · G_M

turns it into the factors' gradients, exactly, whatever rule produced ``G_M`` (for BPTT: autograd's ``G_M``, so
``G_W``, ``G_E`` are autograd's through ``W·E``; tests/test_linear_encoder.py checks both). This is the one place
that applies it: :meth:`LinearEncoder.chain_grad_`, called by :meth:`solsa.SNN.encoder_grads_` from
:meth:`solsa.Learner.update` right after the rule's flush. After an optimizer step :meth:`solsa.SNN.clamp_`
sets ``M = W·E`` again (:meth:`LinearEncoder.sync_`). The optimizer steps ``W`` and ``E``, never ``M``
(:meth:`solsa.SNN.derived_parameters`).

Function: ``E`` adds no function to the network (``W·E`` is one ``[N, C]`` matrix, of rank ≤ K); it changes
the parametrisation and so the optimizer's path (docs/series.md §2, §10).

Initialisation: ``E`` is semi-orthogonal (``torch.nn.init.orthogonal_``: orthonormal rows for ``K ≤ C``,
orthonormal columns for ``K > C``) times ``sqrt(K / min(K, C))``, so that ``‖E‖²_F = K``; ``W`` is drawn as a
first layer of ``K`` inputs would be (uniform, standard deviation ``weight_scale / sqrt(K)``). Then the entries of
``M`` have on average the variance ``weight_scale² / C`` that the first layer's own weight would have had.
Export (NIR, C) reads the first layer's weight, i.e. ``M = W·E``: folded, exact.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .validation import check_positive_int, check_range

__all__ = ["LinearEncoder"]


class LinearEncoder(nn.Module):
    """The factors of the first layer's weight ``M = W·E``: ``weight`` W ``[N, K]`` and ``matrix`` E ``[K, C]``.

    Args:
        in_features: C, the base encoder's channels (the network's inputs).
        channels: K, the learned channels.
        out_features: N, the first layer's neurons.
        weight_scale: W's initial scale, as :class:`~solsa.LIFLayer`'s.
    """

    def __init__(self, in_features: int, channels: int, out_features: int, *, weight_scale: float = 1.0,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.channels = check_positive_int("channels", channels)
        self.out_features = check_positive_int("out_features", out_features)
        weight_scale = check_range("weight_scale", weight_scale, 0.0, math.inf, lo_open=True)
        kw = {"device": device, "dtype": dtype}
        matrix = torch.empty(channels, in_features, **kw)
        nn.init.orthogonal_(matrix)
        self.matrix = nn.Parameter(matrix * math.sqrt(channels / min(channels, in_features)))
        bound = weight_scale * math.sqrt(3.0 / channels)
        self.weight = nn.Parameter(torch.empty(out_features, channels, **kw).uniform_(-bound, bound))

    def effective(self) -> torch.Tensor:
        """``M = W·E`` ``[N, C]`` (differentiable in W and E)."""
        return self.weight @ self.matrix

    @torch.no_grad()
    def sync_(self, weight: torch.Tensor) -> None:
        """Set the first layer's ``weight`` to ``W·E``, in place (its storage, which compiled kernels hold, stays)."""
        weight.copy_(self.effective())

    @torch.no_grad()
    def chain_grad_(self, weight: nn.Parameter) -> None:
        """Move the effective weight's gradient ``G_M`` (``weight.grad``, from any rule) onto the factors:
        ``W.grad += G_M·Eᵀ``, ``E.grad += Wᵀ·G_M``; ``weight.grad`` becomes None. No gradient: nothing."""
        g_m = weight.grad
        if g_m is None:
            return
        for param, grad in ((self.weight, g_m @ self.matrix.T), (self.matrix, self.weight.T @ g_m)):
            param.grad = grad if param.grad is None else param.grad + grad
        weight.grad = None

    def extra_repr(self) -> str:
        return f"{self.in_features}->{self.channels} learned channels->{self.out_features}"
