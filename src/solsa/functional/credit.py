"""Cross-layer credit: a hidden layer's sensitivities filtered through the layers above (docs/credit.md).

For hidden layer k feeding layer l = k+1, with ``z^k_i[s]`` any trace of
layer k (``e, a, m, n``: the exact ``∂V^k_i[s]/∂θ``), the sensitivity of the
upper layer's membrane to θ is

    ∂V^l_j[t]/∂θ = W^l_ji β^l_i Σ_{r≤t} D_j[t,r] Σ_{s≤r} (α^l_i)^{r-s} ε^k_i[s] z^k_i[s],
    D_j[t,r] = Π_{u=r+1..t} d^l_j[u].

The inner sum is a first-order filter with the upper layer's synaptic decay,
:func:`synaptic_credit`; the outer one a filter with its membrane decay,
:func:`membrane_credit`. When ``d^l`` does not depend on j (a leaky readout with
one λ, or a spiking layer with one λ and no reset) the filtered trace paired
with the same-step signal ``g^k = β^l (δ^l W^l)`` is the exact gradient;
otherwise ``d^l_j`` is replaced by its mean over the upper layer's neurons,
:func:`mean_decay`.
"""

from __future__ import annotations

import torch

from .traces import stored_as

__all__ = ["synaptic_credit", "membrane_credit", "mean_decay", "channel_decay", "lagged_surrogate",
           "neuron_membrane_credit", "neuron_credit_pairing", "decay_mass", "mass_corrected_error"]


def _over(x: torch.Tensor, like: torch.Tensor, lead: int) -> torch.Tensor:
    """View ``x`` (its dims are the first ``x.dim()`` dims of ``like`` after ``lead`` ones) so it broadcasts."""
    return x.reshape((1,) * lead + tuple(x.shape) + (1,) * (like.dim() - lead - x.dim()))


def synaptic_credit(
    q: torch.Tensor, z: torch.Tensor, alpha: torch.Tensor, eps: torch.Tensor | None = None
) -> torch.Tensor:
    """q_i[t] = α_i q_i[t-1] + ε_i[t] z_i[t]: layer k's sensitivity through the synaptic filter above.

    ``z`` is a trace of layer k (``[B, N_k, ...]``), ``eps`` its ``ε^k[t]`` (``[B, N_k]``), ``alpha`` the
    upper layer's α (``[]`` or ``[N_k]``, one per input channel = one per neuron of layer k). In a cascade,
    ``z`` is the output of the stage below and ``eps`` is None (no spike between the stages). Stored in
    ``q``'s dtype (likewise :func:`membrane_credit` in ``u``'s).
    """
    x = z if eps is None else _over(eps, z, 0) * z
    return stored_as(_over(alpha, q, 1) * q + x, q)


def membrane_credit(u: torch.Tensor, q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """u[t] = d̄[t] u[t-1] + q[t]: the filtered sensitivity through the membrane above.

    ``d`` is the upper layer's decay factor, one per sample (``[B]``, :func:`mean_decay`) or ``[]``.
    Exact when every neuron of the upper layer has the same ``d[t]``.
    """
    return stored_as(_over(d, u, 0) * u + q, u)


def mean_decay(d: torch.Tensor) -> torch.Tensor:
    """d̄_b[t] = mean_j d_j[t]: the upper layer's membrane decay factor shared by its neurons, ``[B]``.

    For the subtract reset ``d̄ = λ̄ - θ_r mean_j ε_j[t-1]``; equal to every ``d_j`` for a leaky readout
    with one λ.
    """
    return d.mean(dim=-1)


def channel_decay(alpha: torch.Tensor) -> torch.Tensor:
    """ᾱ = mean_i α_i: one synaptic decay for a layer two or more levels above (its channels are not layer k's)."""
    return alpha.mean()


def lagged_surrogate(E: torch.Tensor, N: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """ε̃_j[t] = Σ_{s<t} K[t,s] ε_j[s] / Σ_{s<t} K[t,s]: a layer's surrogate averaged over the lags of the stage above.

    ``E`` and ``N`` are ``ε`` and ``1`` filtered through the layer above (:func:`synaptic_credit`, then
    :func:`membrane_credit`: ``E[t] = Σ_{s≤t} K[t,s] ε[s]``, the ``s = t`` term has ``K = 1``), so the
    lagged part is ``E - ε`` over ``N - 1``. Zero while there is no lag (t = 1).
    """
    den = N - 1.0
    ok = den.abs() > 1e-12
    return torch.where(ok, (E - eps) / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(eps))


def neuron_membrane_credit(h: torch.Tensor, q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """h_ji[t] = d_j[t] h_ji[t-1] + q_i[t]: :func:`membrane_credit` with each upper neuron's own decay.

    ``h`` is ``[B, N_l, N_k]`` (one row per upper neuron j), ``q`` a per-neuron trace ``[B, N_k]`` of layer k,
    ``d`` the upper layer's ``d[t]`` ``[B, N_l]``. Exact for any upper layer; costs ``N_l`` copies of ``q``.
    """
    return d.unsqueeze(2) * h + q.unsqueeze(1)


def neuron_credit_pairing(h: torch.Tensor, delta: torch.Tensor, weight: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Σ_j δ^l_j[t] W^l_ji β^l_i h_ji[t]: the per-neuron filtered trace paired with the upper layer's δ, ``[B, N_k]``."""
    return torch.einsum("bj,ji,bji->bi", delta, weight, h) * beta


def decay_mass(M: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """M[t] = d[t] M[t-1] + 1: the mass of a membrane's decay kernel (per upper neuron ``[B, N_l]``, or ``d̄`` ``[B]``)."""
    return d * M + 1.0


def mass_corrected_error(
    delta: torch.Tensor, M: torch.Tensor, M_bar: torch.Tensor, weight: torch.Tensor, beta: torch.Tensor
) -> torch.Tensor:
    """g_i = β_i Σ_j δ_j[t] (M_j[t] / M̄[t]) W_ji: the spatial error for traces filtered with the mean decay.

    Each upper neuron's error is scaled by how much its own decay kernel holds against the mean one
    (``M`` of :func:`decay_mass` with ``d_j``, ``M̄`` with ``d̄``). 1 when every ``d_j`` is ``d̄``.
    """
    return ((delta * (M / M_bar.unsqueeze(-1))) @ weight) * beta
