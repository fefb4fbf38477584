"""The learned linear encoder (``--encoder linear``): the first layer's weight as a product ``M = W·E``.

Both halves are here: the data side (:func:`linear`, registered in :data:`solsa.tasks.encoders.ENCODERS`, and
:func:`learned_channels`, which :func:`solsa.factories.build_network` reads) and the model side
(:class:`LinearEncoder`). The ``linear`` encoder applies only its fixed ``base`` encoder to the data
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
from typing import Any

import torch
from torch import nn

from .validation import OptionError, check_positive_int, check_range

__all__ = ["LinearEncoder", "linear", "learned_channels", "DEFAULT_CHANNELS"]

DEFAULT_CHANNELS = 16  # K when ``channels`` is not given


def linear(
    x: torch.Tensor,
    lengths: torch.Tensor,
    *,
    channels: int = DEFAULT_CHANNELS,
    base: str | None = None,
    base_options: dict[str, Any] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Learned linear encoder: K = ``channels`` learned mixtures of the ``base`` encoder's channels (base=None: the task's).

    The data gets only ``base`` (default: the task's own default encoder, e.g. ``delay`` for a one-channel uea
    set; ``direct`` when called without a task) with ``base_options`` (a dict, from Python; a task adds its own
    defaults for that encoder, e.g. digits' ``squash="clip"``); ``C'`` and ``T'`` are the base's.
    The learned ``E`` ``[K, C]`` lives in the network (:class:`LinearEncoder`: the first layer's weight is
    ``W·E``), built by :func:`solsa.factories.build_network` from :func:`learned_channels`.
    """
    from .tasks.encoders import ENCODERS, encode

    learned_channels("linear", {"channels": channels})
    base = "direct" if base is None else base
    if base == "linear" or base not in ENCODERS:
        raise OptionError("base", f"base must be one of {[n for n in ENCODERS if n != 'linear']}, got {base!r}")
    if base_options is not None and not isinstance(base_options, dict):
        raise OptionError("base_options", f"base_options must be a dict of {base!r}'s options, got {base_options!r}")
    return encode(base, x, lengths, generator=generator, **(base_options or {}))


def learned_channels(encoder: str | None, options: dict[str, Any]) -> int | None:
    """K of the ``linear`` encoder named by ``encoder`` with ``options`` (:data:`DEFAULT_CHANNELS` when not given;
    checked); None for any other encoder."""
    if encoder != "linear":
        return None
    return check_positive_int("channels", options.get("channels", DEFAULT_CHANNELS))


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
