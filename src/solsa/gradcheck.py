"""Compare the SOLSA gradient with BPTT's on the same network, input and loss.

``max_rel_error`` of a parameter kind is ``max |g_solsa - g_bptt| / max |g_bptt|``
per layer, the largest over layers; ``cosine`` is the cosine similarity of the
concatenated gradients of that kind over all layers. For one layer SOLSA is
exact (errors at float64 round-off); across layers the spatial error of
SOLSA.md §3 drops the paths through later layers' future states.
"""

from __future__ import annotations

from typing import Any

import torch

from .layers import SNN
from .rules import BPTT, SOLSA
from .validation import check_positive_int

__all__ = ["PARAM_KINDS", "rule_gradients", "compare_gradients", "gradcheck"]

# parameter attribute -> the name used in reports
PARAM_KINDS = {"weight": "weight", "alpha": "alpha", "beta": "beta", "lam": "lambda", "bias": "bias"}


def rule_gradients(net: SNN, rule_cls, x: torch.Tensor, target: torch.Tensor, loss: str, **rule_options) -> list[dict]:
    """Gradients of one sequence under a rule: a ``{attribute: grad}`` dict per layer."""
    net.zero_grad(set_to_none=True)
    rule_cls(net, loss, **rule_options).sequence(x, target)
    grads = [{name: getattr(layer, name).grad.clone() for name in PARAM_KINDS if layer.is_learnable(name)} for layer in net.layers]
    net.zero_grad(set_to_none=True)
    return grads


def compare_gradients(test: list[dict], reference: list[dict]) -> dict[str, dict[str, float]]:
    """``{"max_rel_error": {kind: x}, "cosine": {kind: x}, "per_layer_cosine": {kind: [..]}}``."""
    rel: dict[str, float] = {}
    cos: dict[str, float] = {}
    per_layer: dict[str, list[float]] = {}
    for attr, kind in PARAM_KINDS.items():
        pairs = [(t[attr].flatten(), r[attr].flatten()) for t, r in zip(test, reference) if attr in r]
        if not pairs:
            continue
        rel[kind] = max(((a - b).abs().max() / b.abs().max().clamp(min=1e-300)).item() for a, b in pairs)
        a = torch.cat([p[0] for p in pairs])
        b = torch.cat([p[1] for p in pairs])
        cos[kind] = torch.nn.functional.cosine_similarity(a, b, dim=0, eps=1e-300).item()
        per_layer[kind] = [torch.nn.functional.cosine_similarity(x, y, dim=0, eps=1e-300).item() for x, y in pairs]
    return {"max_rel_error": rel, "cosine": cos, "per_layer_cosine": per_layer}


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
    alpha: float = 0.5,
    lam: float = 0.7,
    weight_scale: float = 2.0,
    dtype: torch.dtype = torch.float64,
) -> dict[str, Any]:
    """Build a random network (every parameter learnable), compare SOLSA with BPTT, return a report dict."""
    check_positive_int("layers", layers)
    check_positive_int("T", T)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = SNN(
        inputs, [hidden] * (layers - 1), outputs,
        readout=readout, readout_lam=lam, alpha=alpha, lam=lam, reset=reset, surrogate=surrogate,
        filter_granularity=filter_granularity, learn_lam=True, lam_granularity="neuron", weight_scale=weight_scale,
        dtype=dtype,
    )
    x = torch.randn(T, batch, inputs, generator=gen, dtype=dtype)
    target = torch.randint(0, outputs, (batch,), generator=gen)
    loss = "mse" if readout == "spike" else "ce"
    report = compare_gradients(rule_gradients(net, SOLSA, x, target, loss), rule_gradients(net, BPTT, x, target, loss))
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
        "dtype": str(dtype).replace("torch.", ""),
        **report,
        "spike_rate": [round(r, 4) if s else None for r, s in zip(rates.tolist(), spiking)],
    }
