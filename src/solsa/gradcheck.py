"""Compare the SOLSA gradient with BPTT's on the same network, input and loss.

``max_rel_error`` of a parameter kind is ``max |g_solsa - g_bptt| / max |g_bptt|``
per layer, the largest over layers; ``cosine`` is the cosine similarity of the
concatenated gradients of that kind over all layers (the exact output layer
dominates it: read ``per_layer_cosine``). ``per_layer_sign`` is, per layer, the
fraction of the gradient's entries with BPTT's sign (1 or 0 for a parameter
with one value per layer). For one layer SOLSA is exact (errors at float64
round-off); across layers the credit mode decides which paths through the
layers above are kept (docs/credit.md). :func:`gradcheck_seeds` summarises seeds
``0..N-1``.
"""

from __future__ import annotations

from typing import Any

import torch

from .layers import ADAPT, RHO, SNN
from .rules import BPTT, SOLSA
from .rules.credit import DEFAULT_CREDIT, check_credit
from .rules.solsa import check_trace_dtype
from .validation import check_positive_int

__all__ = ["PARAM_KINDS", "rule_gradients", "compare_gradients", "gradcheck", "gradcheck_seeds"]

# parameter attribute -> the name used in reports
PARAM_KINDS = {"weight": "weight", "alpha": "alpha", "beta": "beta", "lam": "lambda", "bias": "bias",
               "rec_weight": "recurrent"}


def rule_gradients(net: SNN, rule_cls, x: torch.Tensor, target: torch.Tensor, loss: str, **rule_options) -> list[dict]:
    """Gradients of one sequence under a rule: a ``{attribute: grad}`` dict per layer."""
    net.zero_grad(set_to_none=True)
    rule_cls(net, loss, **rule_options).sequence(x, target)
    grads = [{name: getattr(layer, name).grad.clone() for name in PARAM_KINDS if layer.is_learnable(name)} for layer in net.layers]
    net.zero_grad(set_to_none=True)
    return grads


def compare_gradients(test: list[dict], reference: list[dict]) -> dict[str, dict[str, float]]:
    """``{"max_rel_error", "cosine", "per_layer_cosine", "per_layer_sign"}``, each ``{kind: ...}``."""
    rel: dict[str, float] = {}
    cos: dict[str, float] = {}
    per_layer: dict[str, list[float]] = {}
    sign: dict[str, list[float]] = {}
    for attr, kind in PARAM_KINDS.items():
        pairs = [(t[attr].flatten(), r[attr].flatten()) for t, r in zip(test, reference) if attr in r]
        if not pairs:
            continue
        rel[kind] = max(((a - b).abs().max() / b.abs().max().clamp(min=1e-300)).item() for a, b in pairs)
        a = torch.cat([p[0] for p in pairs])
        b = torch.cat([p[1] for p in pairs])
        cos[kind] = torch.nn.functional.cosine_similarity(a, b, dim=0, eps=1e-300).item()
        per_layer[kind] = [torch.nn.functional.cosine_similarity(x, y, dim=0, eps=1e-300).item() for x, y in pairs]
        sign[kind] = [(x.sign() == y.sign()).double().mean().item() for x, y in pairs]
    return {"max_rel_error": rel, "cosine": cos, "per_layer_cosine": per_layer, "per_layer_sign": sign}


def gradcheck(
    layers: int = 1,
    T: int = 50,
    reset: str = "subtract",
    surrogate: str = "gaussian",
    seed: int = 0,
    *,
    batch: int = 4,
    inputs: int = 8,
    hidden: int = 20,
    outputs: int = 5,
    readout: str = "spike",
    filter_granularity: str = "layer",
    lam_granularity: str = "neuron",
    credit: str = DEFAULT_CREDIT,
    alpha: float = 0.5,
    lam: float = 0.7,
    weight_scale: float = 2.0,
    neuron: str = "lif",
    adapt: float = ADAPT,
    rho: float = RHO,
    recurrent: bool = False,
    dtype: torch.dtype = torch.float64,
    trace_dtype: str | None = None,
) -> dict[str, Any]:
    """Build a random network (every parameter learnable), compare SOLSA with BPTT, return a report dict.

    ``neuron="alif"`` (with ``adapt``, ``rho``) makes every spiking layer ALIF: one layer stays exact.
    ``recurrent`` adds recurrent weights to every spiking layer: SOLSA's traces drop the paths through the
    other neurons' spikes (docs/memory.md §2), so even one layer is approximate; read ``per_layer_cosine``.

    With ``credit`` other than ``"same-step"`` the report also holds ``"same_step"``: today's
    per-layer cosines and signs on the same network, for comparison. ``trace_dtype`` stores SOLSA's
    ``[B, N_out, N_in]`` traces narrower (:class:`~solsa.rules.SOLSA`); the report then also holds
    ``"storage_rel_error"``, per kind the largest error against the same rule with full storage.
    """
    check_credit(credit)
    check_trace_dtype(trace_dtype)
    check_positive_int("layers", layers)
    check_positive_int("T", T)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = SNN(
        inputs, [hidden] * (layers - 1), outputs,
        readout=readout, readout_lam=lam, alpha=alpha, lam=lam, reset=reset, surrogate=surrogate,
        filter_granularity=filter_granularity, learn_lam=True, lam_granularity=lam_granularity, weight_scale=weight_scale,
        neuron=neuron, adapt=adapt, rho=rho, recurrent=recurrent, dtype=dtype,
    )
    x = torch.randn(T, batch, inputs, generator=gen, dtype=dtype)
    target = torch.randint(0, outputs, (batch,), generator=gen)
    loss = "mse" if readout == "spike" else "ce"
    reference = rule_gradients(net, BPTT, x, target, loss)
    solsa = rule_gradients(net, SOLSA, x, target, loss, credit=credit, trace_dtype=trace_dtype)
    report = compare_gradients(solsa, reference)
    if trace_dtype is not None:
        full = compare_gradients(solsa, rule_gradients(net, SOLSA, x, target, loss, credit=credit))
        report["storage_rel_error"] = full["max_rel_error"]
    if credit != "same-step":
        base = compare_gradients(rule_gradients(net, SOLSA, x, target, loss, credit="same-step"), reference)
        report["same_step"] = {key: base[key] for key in ("max_rel_error", "per_layer_cosine", "per_layer_sign")}
    with torch.no_grad():
        states, rates = net.init_state(batch), torch.zeros(len(net.layers), dtype=dtype)
        for x_t in x:
            _, states = net.step(x_t, states)
            rates += torch.stack([s.o.mean() for s in states]) / T
    spiking = [layer.spiking for layer in net.layers]
    return {
        "layers": layers,
        "T": T,
        "reset": reset,
        "surrogate": surrogate,
        "seed": seed,
        "readout": readout,
        "filter_granularity": filter_granularity,
        "lam_granularity": lam_granularity,
        "neuron": neuron,
        "recurrent": recurrent,
        "credit": credit,
        "dtype": str(dtype).replace("torch.", ""),
        "trace_dtype": trace_dtype,
        **report,
        "spike_rate": [round(r, 4) if s else None for r, s in zip(rates.tolist(), spiking)],
    }


def _summary(reports: list[dict]) -> dict[str, Any]:
    """Over seeds: the largest relative error, the mean per-layer cosine, the per-layer sign count."""
    kinds = reports[0]["per_layer_cosine"]
    n = len(reports)
    return {
        "max_rel_error": {k: max(r["max_rel_error"][k] for r in reports) for k in kinds},
        "per_layer_cosine_mean": {k: [sum(c) / n for c in zip(*(r["per_layer_cosine"][k] for r in reports))]
                                  for k in kinds},
        "per_layer_cosine_min": {k: [min(c) for c in zip(*(r["per_layer_cosine"][k] for r in reports))]
                                 for k in kinds},
        # a scalar parameter counts the seeds with BPTT's sign; a tensor sums the fraction of its entries
        "per_layer_sign_agreement": {k: [round(sum(c), 6) for c in zip(*(r["per_layer_sign"][k] for r in reports))]
                                     for k in kinds},
    }


def gradcheck_seeds(seeds: int, **options) -> dict[str, Any]:
    """:func:`gradcheck` on seeds ``0..seeds-1``, summarised per layer and parameter kind.

    Returns the options, ``"seeds"``, ``"max_rel_error"`` (largest over seeds),
    ``"per_layer_cosine_mean"`` / ``"per_layer_cosine_min"`` ``{kind: [one per layer]}`` and
    ``"per_layer_sign_agreement"`` ``{kind: [seeds with BPTT's sign, one per layer]}`` (for a
    parameter with several entries: the sum over seeds of the fraction of entries with BPTT's sign);
    with a credit mode other than ``"same-step"``, the same summary of today's rule under ``"same_step"``.
    """
    check_positive_int("seeds", seeds)
    reports = [gradcheck(seed=s, **options) for s in range(seeds)]
    first = reports[0]
    out = {key: first[key] for key in ("layers", "T", "reset", "surrogate", "readout", "filter_granularity",
                                       "lam_granularity", "neuron", "recurrent", "credit", "dtype")}
    out["seeds"] = seeds
    out.update(_summary(reports))
    if "same_step" in first:
        out["same_step"] = _summary([r["same_step"] for r in reports])
    out["spike_rate_mean"] = [None if r is None else round(sum(x["spike_rate"][i] for x in reports) / seeds, 4)
                              for i, r in enumerate(first["spike_rate"])]
    return out
