"""Forward-mode eligibility traces of SOLSA (docs/model.md §2) and the spatial error (§3).

Each function is one recursion of the note, written once. With ``d_j[t]`` the
total derivative ``∂V_j[t]/∂V_j[t-1]`` (the reset feedback included), every
trace below is the exact sensitivity ``∂V_j[t]/∂param`` for one layer whose
input does not depend on the parameter:

    W_ji : e_ji[t] = d_j[t] e_ji[t-1] + F_i[t]
    α_i  : p_i[t]  = F_i[t-1] + α_i p_i[t-1]
           a_ji[t] = d_j[t] a_ji[t-1] + W_ji p_i[t]          (one α per channel)
           a_j[t]  = d_j[t] a_j[t-1] + Σ_i W_ji p_i[t]        (one α per layer)
    β_i  : ∂V_j[t]/∂β_i = W_ji e_ji[t] / β_i                 (F is linear in β: no trace)
    λ_j  : m_j[t]  = V_j[t-1] + d_j[t] m_j[t-1]              (zero reset: V_j[t-1](1 - o_j[t-1]))
    b_j  : n_j[t]  = 1 + d_j[t] n_j[t-1]

A recurrent layer's W_rec trace is the W trace with ``o[t-1]`` for ``F[t]`` (one trace over the
presynaptic input ``[F[t], o[t-1]]``, :func:`presynaptic`); ``d_j`` keeps the path through the neuron's own
spike (``W_rec,jj``) and drops those through the other neurons' spikes (docs/memory.md §2).

ALIF (docs/memory.md §1): every trace above becomes the sensitivity of ``h = V - A`` (what ε pairs with)
and gains a partner ``w = ∂b/∂θ``; with ``d`` as above and ``d°`` its part not through ``o[t-1]``,

    z[t] = (d[t] - β_a ε[t-1]) z[t-1] + β_a (d°[t] - ρ) w[t-1] + (direct term)
    w[t] = ε[t-1] z[t-1] + ρ w[t-1]                           (:func:`adaptation_decays`, :func:`adapted`)

A trace may be stored in a narrower dtype than the network's (SOLSA's ``trace_dtype``): the
recursions compute in the network's dtype and store the new trace in the old one's
(:func:`stored_as`).
"""

from __future__ import annotations

import torch

from .neuron import LIFConfig

__all__ = [
    "decay_factor",
    "weight_trace",
    "alpha_input_trace",
    "alpha_trace",
    "lambda_trace",
    "bias_trace",
    "spatial_error",
    "presynaptic",
    "split_presynaptic",
    "adaptation_decays",
    "adapted",
    "stored_as",
]


def decay_factor(
    V_prev: torch.Tensor,
    o_prev: torch.Tensor,
    eps_prev: torch.Tensor,
    lam: torch.Tensor,
    cfg: LIFConfig,
    reset_feedback: bool = True,
    self_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """d_j[t] = ∂V_j[t]/∂V_j[t-1] along every path, ``[B, N_out]``.

    subtract: λ - θ_r ε[t-1];  zero: λ(1 - o[t-1]) - λ V[t-1] ε[t-1];  none: λ.
    ``reset_feedback=False`` drops the reset's dependence on V (the detached
    reset of e-prop and OTTT): subtract gives λ, zero gives λ(1 - o[t-1]).
    ``self_weight`` (``W_rec,jj`` of a recurrent layer, ``[N_out]``) adds the path through the
    neuron's own spike and its self-connection: ``+ W_rec,jj ε[t-1]``.
    """
    d = _decay(V_prev, o_prev, eps_prev, lam, cfg, reset_feedback)
    return d if self_weight is None else d + self_weight * eps_prev


def _decay(V_prev, o_prev, eps_prev, lam, cfg: LIFConfig, reset_feedback: bool) -> torch.Tensor:
    """:func:`decay_factor` without the self-connection: the leak and the reset."""
    if not cfg.spiking or cfg.reset == "none":
        return lam.expand_as(V_prev)
    if cfg.reset == "subtract":
        if not reset_feedback:
            return lam.expand_as(V_prev)
        return lam - cfg.reset_amount * eps_prev
    kept = lam * (1.0 - o_prev)  # "zero"
    if not reset_feedback:
        return kept
    return kept - lam * V_prev * eps_prev


def stored_as(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` in ``old``'s dtype (a trace kept narrower than the arithmetic); ``new`` itself when they agree."""
    return new if new.dtype == old.dtype else new.to(old.dtype)


def weight_trace(e: torch.Tensor, d: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
    """e[t] = d[t] e[t-1] + F[t]: ``[B, N_out, N_in]``, stored in ``e``'s dtype."""
    return stored_as(torch.addcmul(F.unsqueeze(1), d.unsqueeze(2), e), e)


def alpha_input_trace(p: torch.Tensor, F_prev: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """p[t] = F[t-1] + α p[t-1] = ∂F[t]/∂α: ``[B, N_in]``."""
    return F_prev + alpha * p


def alpha_trace(
    a: torch.Tensor, d: torch.Tensor, weight: torch.Tensor, p: torch.Tensor, per_channel: bool
) -> torch.Tensor:
    """a[t] = d[t] a[t-1] + W p[t]: ``[B, N_out, N_in]`` per channel (stored in ``a``'s dtype), ``[B, N_out]`` per layer."""
    if per_channel:
        return stored_as(torch.addcmul(weight.unsqueeze(0) * p.unsqueeze(1), d.unsqueeze(2), a), a)
    return torch.addcmul(p @ weight.t(), d, a)


def lambda_trace(
    m: torch.Tensor, d: torch.Tensor, V_prev: torch.Tensor, o_prev: torch.Tensor, cfg: LIFConfig
) -> torch.Tensor:
    """m[t] = ∂V[t]/∂λ = (direct term) + d[t] m[t-1]: ``[B, N_out]``."""
    direct = V_prev * (1.0 - o_prev) if (cfg.spiking and cfg.reset == "zero") else V_prev
    return torch.addcmul(direct, d, m)


def bias_trace(n: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """n[t] = 1 + d[t] n[t-1]: ``[B, N_out]``."""
    return 1.0 + d * n


def spatial_error(delta: torch.Tensor, weight: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """g^{l-1}_i[t] = β^l_i Σ_j δ^l_j[t] W^l_ji: the error sent to the layer below, same step only."""
    return (delta @ weight) * beta


def presynaptic(F: torch.Tensor, o_prev: torch.Tensor, recurrent: bool) -> torch.Tensor:
    """The input the weight trace runs over: ``F[t]``, or ``[F[t], o[t-1]]`` for a recurrent layer
    (its W and W_rec traces as one ``[B, N_out, N_in + N_out]`` tensor)."""
    return torch.cat([F, o_prev], -1) if recurrent else F


def split_presynaptic(g: torch.Tensor, n_in: int) -> dict[str, torch.Tensor]:
    """A gradient over the :func:`presynaptic` input, ``[N_out, N_in (+ N_out)]``, as ``{"weight", "rec_weight"}``."""
    if g.shape[-1] == n_in:
        return {"weight": g}
    return {"weight": g[..., :n_in], "rec_weight": g[..., n_in:]}


def adaptation_decays(
    d: torch.Tensor, d_direct: torch.Tensor, eps_prev: torch.Tensor, cfg: LIFConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """ALIF: ``(d[t] - β_a ε[t-1], β_a (d°[t] - ρ))``, the decay of a trace of ``h = V - A`` and its coupling
    to the adaptation trace ``w``. ``d`` is :func:`decay_factor`, ``d_direct`` (d°) the same without the
    paths through ``o[t-1]`` (``reset_feedback=False``, no self weight)."""
    return d - cfg.adapt * eps_prev, cfg.adapt * (d_direct - cfg.rho)


def _over(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape + (1,) * (like.dim() - v.dim()))


def adapted(
    z: torch.Tensor, z_prev: torch.Tensor, w_prev: torch.Tensor, k: torch.Tensor, eps_prev: torch.Tensor, rho: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """ALIF: ``(z[t] + k[t] w[t-1], ε[t-1] z[t-1] + ρ w[t-1])``.

    ``z`` is the trace advanced with the decay of :func:`adaptation_decays` (``[B, N_out, ...]``),
    ``z_prev`` and ``w_prev`` the trace and its adaptation partner before the step, ``k`` the coupling.
    """
    return z + _over(k, z) * w_prev, torch.addcmul(rho * w_prev, _over(eps_prev, z_prev), z_prev)
