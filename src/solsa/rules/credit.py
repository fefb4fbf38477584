"""Cross-layer credit for SOLSA: the hidden layers' traces filtered through the layers above (docs/credit.md).

``credit`` chooses how far up a hidden layer's sensitivities are carried:

- ``"same-step"``: not at all; the error crosses layers within the step (docs/model.md §3). No extra memory.
- ``"next"``: through the synaptic filter and membrane of the layer directly above (two extra
  copies of each trace of the layer). Exact for one hidden layer under a leaky readout with one λ;
  elsewhere the upper layer's ``d_j[t]`` is replaced by its mean over neurons.
- ``"cascade"``: through every layer above, stage after stage (two extra copies per layer above).
  A stage's lagged part (an intermediate layer spiked before step t) pairs with an error that
  crossed that layer with its surrogate averaged over the stage's lags (:func:`lagged_surrogate`).
  Layers two or more levels up use their mean α (their channels are not this layer's neurons).
  The layer under the output keeps each output neuron's own decay for its per-neuron traces
  (α per layer, λ, b: ``N_out`` copies each, :func:`~solsa.functional.neuron_membrane_credit`),
  and each hidden layer's error from the layer above is scaled per upper neuron by the mass of its
  own decay kernel against the mean one (:func:`~solsa.functional.mass_corrected_error`).

Each stage is a pair ``(q, u)`` per trace: ``q`` after the upper synaptic filter
(:func:`~solsa.functional.synaptic_credit`), ``u`` after its membrane
(:func:`~solsa.functional.membrane_credit`). Where that membrane keeps nothing (``d ≡ 0``, e.g. the
default leaky readout with λ = 0 not learned, :func:`zero_decay`) ``u = q`` exactly: the pair holds
one tensor twice (``u is q``), stored and counted once. The stages pair with the same-step spatial error
``g`` (not ``g ⊙ ε``: ``ε^k`` is inside the filter, taken when the spike happened).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..functional import (
    channel_decay,
    decay_mass,
    lagged_surrogate,
    mass_corrected_error,
    mean_decay,
    membrane_credit,
    neuron_credit_pairing,
    neuron_membrane_credit,
    spatial_error,
    synaptic_credit,
)
from .base import state_nbytes

__all__ = ["CREDIT_MODES", "DEFAULT_CREDIT", "CREDIT_TRACES", "LayerCredit", "check_credit", "credit_depth",
           "zero_decay", "new_credit", "advance_credit", "descend_signals", "credited_view"]

CREDIT_MODES = ("same-step", "next", "cascade")
# SOLSA's default: the best mean validation accuracy over the paper suite (README, docs/credit.md §6)
DEFAULT_CREDIT = "cascade"
# the traces of a layer that are filtered (``p`` only builds ``a`` and is not)
CREDIT_TRACES = ("e", "a", "m", "n")


def check_credit(credit: str) -> str:
    """``credit`` when it is one of :data:`CREDIT_MODES`; a ``ValueError`` otherwise."""
    if credit not in CREDIT_MODES:
        raise ValueError(f"credit must be one of {list(CREDIT_MODES)}, got {credit!r}")
    return credit


def credit_depth(credit: str, index: int, n_layers: int) -> int:
    """How many layers above layer ``index`` (0-based) its traces are filtered through."""
    above = n_layers - 1 - index
    return {"same-step": 0, "next": min(1, above), "cascade": above}[credit]


def zero_decay(layer) -> bool:
    """True when layer's ``d[t]`` is 0 at every step whatever happens (λ ≡ 0, not learned, no reset in ``d``):
    a membrane filter through it is the identity, so a stage's ``u`` is its ``q``."""
    no_reset = not layer.config.spiking or layer.config.reset == "none"
    return no_reset and not layer.is_learnable("lam") and not bool(layer.lam.detach().any())


@dataclass
class LayerCredit:
    """One hidden layer's credit state.

    ``stages[s][name] = [q, u]``: trace ``name`` after the (s+1)-th layer above. ``lag`` (cascade, a
    layer with a layer below): ``[qE, uE, qN, uN]``, its ε and 1 filtered through the layer above,
    from which ``eps_lag`` (ε̃, :func:`lagged_surrogate`) is formed each step. ``neuron``: the
    per-neuron traces ``[B, N_k]`` through each upper neuron's own membrane, ``[B, N_l, N_k]``.
    ``mass``: ``[M, M̄]``, the decay-kernel masses of the layer above, per neuron ``[B, N_l]`` and mean ``[B]``.
    """

    stages: list[dict[str, list[torch.Tensor]]] = field(default_factory=list)
    lag: list[torch.Tensor] | None = None
    eps_lag: torch.Tensor | None = None
    neuron: dict[str, torch.Tensor] = field(default_factory=dict)
    mass: list[torch.Tensor] | None = None

    def nbytes(self) -> int:
        tensors = [t for stage in self.stages for pair in stage.values() for t in pair[: 2 - (pair[1] is pair[0])]]
        if self.lag is not None and self.lag[1] is self.lag[0]:  # u is q: [qE, qN] stored once each
            return state_nbytes(*tensors, self.lag[0], self.lag[2], self.eps_lag, *self.neuron.values(),
                                *(self.mass or []))
        return state_nbytes(*tensors, *(self.lag or []), self.eps_lag, *self.neuron.values(), *(self.mass or []))


def _pair(like: torch.Tensor, same: bool) -> list[torch.Tensor]:
    """``[q, u]`` zeroed like ``like``; one tensor twice when ``same`` (u is q)."""
    q = torch.zeros_like(like)
    return [q, q] if same else [q, torch.zeros_like(like)]


def new_credit(traces, depth: int, lag: bool, upper_neurons: int = 0, mass_neurons: int = 0,
               pass_through: tuple[bool, ...] = ()) -> LayerCredit | None:
    """Zeroed credit state for a layer with :class:`~solsa.rules.solsa.LayerTraces` ``traces``; None at depth 0.

    ``upper_neurons > 0`` keeps the per-neuron traces through each of that many upper neurons' membranes;
    ``mass_neurons > 0`` the decay-kernel masses of the layer above (that many neurons);
    ``pass_through[s]`` (default False) says the membrane of stage ``s``'s layer keeps nothing
    (:func:`zero_decay`): that stage stores ``u is q``.
    """
    if depth == 0:
        return None
    names = [n for n in CREDIT_TRACES if getattr(traces, n) is not None]
    same = [s < len(pass_through) and pass_through[s] for s in range(depth)]
    stages = [{n: _pair(getattr(traces, n), same[s]) for n in names} for s in range(depth)]
    eps = traces.eps
    neuron = {}
    if upper_neurons:
        neuron = {n: eps.new_zeros(eps.shape[0], upper_neurons, eps.shape[1]) for n in names
                  if getattr(traces, n).dim() == 2}
    mass = [eps.new_zeros(eps.shape[0], mass_neurons), eps.new_zeros(eps.shape[0])] if mass_neurons else None
    lags = [*_pair(eps, same[0]), *_pair(eps, same[0])] if lag else None
    return LayerCredit(stages, lags,
                       torch.zeros_like(eps) if lag else None, neuron, mass)


def advance_credit(traces: list, upper: int, alpha: torch.Tensor, d: torch.Tensor) -> None:
    """Advance, at step t, every stage that runs through layer ``upper`` (its α and its ``d[t]``).

    Called once layer ``upper`` has its ``d[t]`` and every layer below it its traces at t, so a stage
    reads the stage below it (or layer k's own ``ε^k[t] z^k[t]``) at the same step.
    """
    d_bar = mean_decay(d)
    for k in range(upper):
        credit = traces[k].credit
        level = upper - k - 1  # which stage of layer k runs through layer `upper`
        if credit is None or level >= len(credit.stages):
            continue
        a = alpha if level == 0 else channel_decay(alpha)
        for name, pair in credit.stages[level].items():
            z = getattr(traces[k], name) if level == 0 else credit.stages[level - 1][name][1]
            q = synaptic_credit(pair[0], z, a, traces[k].eps if level == 0 else None)
            pair[:] = [q, q] if pair[1] is pair[0] else [q, membrane_credit(pair[1], q, d_bar)]
        if level == 0 and credit.mass is not None:
            credit.mass = [decay_mass(credit.mass[0], d), decay_mass(credit.mass[1], d_bar)]
        if level == 0:
            for name, h in credit.neuron.items():
                credit.neuron[name] = neuron_membrane_credit(h, credit.stages[0][name][0], d)
        if level == 0 and credit.lag is not None:
            qE, uE, qN, uN = credit.lag
            eps = traces[k].eps
            same = uE is qE
            qE, qN = synaptic_credit(qE, eps, alpha), synaptic_credit(qN, torch.ones_like(eps), alpha)
            uE, uN = (qE, qN) if same else (membrane_credit(uE, qE, d_bar), membrane_credit(uN, qN, d_bar))
            credit.lag = [qE, uE, qN, uN]
            credit.eps_lag = lagged_surrogate(uE, uN, eps)


def descend_signals(above: list[torch.Tensor] | None, upper_layer, upper_credit, g: torch.Tensor,
                    depth: int) -> list[torch.Tensor]:
    """The errors at a layer's output that pair with its stages: ``[g, P², P³, ...]`` (at least ``[g]``).

    ``P^s`` (s ≥ 2) is the error of the stage-(s-1) signal ``above[s-2]`` of the layer above, crossed
    with that layer's lag-averaged surrogate ε̃: ``P^s = β (ε̃ ⊙ above[s-2]) W``.
    """
    signals = [g]
    if above is not None and upper_credit is not None and upper_credit.eps_lag is not None:
        eps = upper_credit.eps_lag
        signals += [spatial_error(p * eps, upper_layer.weight, upper_layer.beta) for p in above[: depth - 1]]
    return signals


def credited_view(tr, signals: list[torch.Tensor], upper_delta: torch.Tensor | None = None, upper_layer=None):
    """The filtered traces and the signal they pair with in ``SOLSA._accumulate``.

    One stage: ``(u, g)``. Several: ``Σ_s P^s ⊙ (u^s - u^{s-1})`` (the s-th stage's lagged part with
    its own error); per-neuron traces (``credit.neuron``): :func:`neuron_credit_pairing` with the upper
    layer's ``upper_delta``. Both pair with a signal of ones.
    """
    credit = tr.credit
    if len(credit.stages) == 1 and not credit.neuron:
        final = {name: stage[1] for name, stage in credit.stages[0].items()}
        return type(tr)(tr.state, tr.eps, final["e"], None, final.get("a"), final.get("m"), final.get("n")), signals[0]
    final = {}
    for name in credit.stages[0]:
        if name in credit.neuron:
            final[name] = neuron_credit_pairing(credit.neuron[name], upper_delta, upper_layer.weight, upper_layer.beta)
            continue
        total, below = 0.0, None
        for p, stage in zip(signals, credit.stages):
            u = stage[name][1].to(p.dtype)  # a narrow trace_dtype: the sum in the network's dtype
            total = total + p.reshape(p.shape + (1,) * (u.dim() - 2)) * (u if below is None else u - below)
            below = u
        final[name] = total
    view = type(tr)(tr.state, tr.eps, final["e"], None, final.get("a"), final.get("m"), final.get("n"))
    return view, torch.ones_like(signals[0])
