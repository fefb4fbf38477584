"""Export a solsa :class:`~solsa.SNN` to a NIR graph (https://neuroir.org), the format that
snnTorch, Norse, SpikingJelly, Lava and neuromorphic chips read.

The mapping (docs/interop.md has the derivations):

* a spiking layer whose synaptic filter has **one α** (per layer, or per channel with equal
  values) and no bias (or α = 0) → ``Affine(W·diag(β), b)`` → ``CubaLIF``. solsa filters before
  the weights (``F = αF + βx``, ``I = F Wᵀ``); with one α the filter commutes with ``W``
  (``W(αF + βx) = α(WF) + (Wβ)x``), so it becomes CubaLIF's per-neuron synaptic current;
* a per-channel α, or a bias with α > 0 (a bias is added *after* the filter, which CubaLIF
  cannot express) → the exact form ``LI`` (one per input channel) → ``Affine(W, b)`` → ``LIF``;
* the leaky (non-spiking) readout → ``Affine`` → ``LI`` (α = 0), ``Affine`` → ``CubaLI`` (one α > 0,
  no bias), or ``LI`` → ``Affine`` → ``LI``.

Decays use the forward-Euler convention of snnTorch's and Norse's importers,
``decay = 1 - dt/τ``, so ``τ = dt / (1 - decay)``; ``r`` and ``w_in`` are set so that the
input gain of each node is exactly solsa's (``r·dt/τ`` = β, or 1). ``dt`` is stored in the
graph's metadata (a NIR graph has no field for it). NIR's LIF/CubaLIF reset to ``v_reset``
(hard reset) and nir 1.0.8 has no field for a soft reset: each spiking node states its reset
in ``metadata["reset"]`` (``"subtract"``, ``"zero"`` or ``"none"``) and ``reset_amount``.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_write
from ..layers import SNN, LIFLayer

__all__ = ["to_nir", "write_nir", "NIRCompatibilityWarning", "DEFAULT_DT", "layer_form"]

DEFAULT_DT = 1e-4  # snnTorch's importer assumes this dt and cannot be told another one
PRODUCER = "solsa"


class NIRCompatibilityWarning(UserWarning):
    """An exported node that a consumer knowing only hard-reset CubaLIF will not reproduce."""


def _np(t: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(t.detach().cpu().to(torch.float64).numpy(), shape).copy()


def _tau(decay: np.ndarray, dt: float) -> np.ndarray:
    """Euler: ``decay = 1 - dt/τ``  ⇔  ``τ = dt / (1 - decay)``."""
    return dt / (1.0 - decay)


def layer_form(layer: LIFLayer) -> str:
    """``"cuba"`` (Affine → CubaLIF/CubaLI) when the layer's filter is one α and it has no bias
    (or α = 0); ``"li"`` (LI → Affine → LIF/LI) otherwise."""
    alpha = layer.alpha.detach()
    one_alpha = bool((alpha == alpha.flatten()[0]).all())
    no_bias = layer.bias is None or not bool(layer.bias.detach().any())
    return "cuba" if one_alpha and (no_bias or float(alpha.flatten()[0]) == 0.0) else "li"


def _neuron_metadata(i: int, layer: LIFLayer) -> dict[str, Any]:
    """What NIR has no field for: the reset (and its amount) and the surrogate of layer ``i``."""
    c = layer.config
    meta: dict[str, Any] = {"solsa_layer": i, "surrogate": c.surrogate, "surrogate_width": float(c.width)}
    if c.spiking:
        meta.update(reset=c.reset, reset_amount=float(c.reset_amount))
    return meta


def _layer_nodes(nir, i: int, layer: LIFLayer, dt: float) -> list[tuple[str, Any]]:
    n_in, n_out = layer.in_features, layer.out_features
    W = layer.weight.detach().cpu().to(torch.float64).numpy()
    b = np.zeros(n_out) if layer.bias is None else layer.bias.detach().cpu().to(torch.float64).numpy()
    alpha, beta = _np(layer.alpha, (n_in,)), _np(layer.beta, (n_in,))
    lam = _np(layer.lam, (n_out,))
    tau_mem = _tau(lam, dt)
    r_mem = tau_mem / dt  # membrane input gain r·dt/τ = 1
    zeros = np.zeros(n_out)
    meta = _neuron_metadata(i, layer)
    c = layer.config
    nodes: list[tuple[str, Any]] = []
    if layer_form(layer) == "cuba":
        tau_syn = np.full(n_out, _tau(alpha[:1], dt)[0])
        w_in = tau_syn / dt  # synaptic input gain w_in·dt/τ_syn = 1 (β is folded into the weights)
        nodes.append((f"l{i}_affine", nir.Affine(weight=W * beta[None, :], bias=b)))
        if c.spiking:
            neuron = nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=r_mem, v_leak=zeros, w_in=w_in,
                                 v_threshold=np.full(n_out, c.threshold), v_reset=zeros.copy(), metadata=meta)
        elif alpha[0] == 0.0:  # a readout without synaptic memory: the membrane alone
            neuron = nir.LI(tau=tau_mem, r=r_mem, v_leak=zeros, metadata=meta)
        else:
            neuron = nir.CubaLI(tau_syn=tau_syn, tau_mem=tau_mem, r=r_mem, v_leak=zeros, w_in=w_in, metadata=meta)
    else:
        tau_f = _tau(alpha, dt)
        filt = nir.LI(tau=tau_f, r=beta * tau_f / dt, v_leak=np.zeros(n_in),  # input gain r·dt/τ = β
                      metadata={"solsa_layer": i, "role": "synaptic filter"})
        nodes += [(f"l{i}_filter", filt), (f"l{i}_affine", nir.Affine(weight=W, bias=b))]
        if c.spiking:
            neuron = nir.LIF(tau=tau_mem, r=r_mem, v_leak=zeros, v_threshold=np.full(n_out, c.threshold),
                             v_reset=zeros.copy(), metadata=meta)
        else:
            neuron = nir.LI(tau=tau_mem, r=r_mem, v_leak=zeros, metadata=meta)
    nodes.append((f"l{i}_{'lif' if c.spiking else 'readout'}", neuron))
    return nodes


def _warn(i: int, name: str, node: Any, layer: LIFLayer) -> None:
    kind = type(node).__name__
    reasons = []
    if layer.config.spiking and layer.config.reset != "zero":
        reasons.append(f"its reset is {layer.config.reset!r} (metadata 'reset'), while NIR's {kind} resets "
                       "to v_reset and snnTorch's and Norse's importers build a hard reset")
    if layer_form(layer) == "li":
        reasons.append(f"its synaptic filter is the LI node 'l{i}_filter' (per-channel α or a bias), which "
                       "snnTorch's and Norse's importers do not accept")
    if not layer.config.spiking:
        reasons.append(f"it is a non-spiking leaky readout ({kind}), which snnTorch's and Norse's importers "
                       "do not accept")
    if reasons:
        warnings.warn(f"NIR node '{name}' ({kind}) will not be reproduced by a consumer that only knows "
                      f"CubaLIF with a hard reset: {'; '.join(reasons)}", NIRCompatibilityWarning, stacklevel=3)


def to_nir(net: SNN, dt: float = DEFAULT_DT):
    """The NIR graph of ``net`` (``Input → [LI →] Affine → CubaLIF|LIF → ... → Output``).

    Args:
        net: a solsa :class:`~solsa.SNN`.
        dt: the time step in seconds that turns decays into time constants (``τ = dt/(1-decay)``),
            stored in ``graph.metadata["dt"]``. Use the consumer's: snnTorch's importer assumes
            1e-4 (the default), Norse's ``from_nir`` takes ``dt=`` (default 1e-3).

    Warns:
        NIRCompatibilityWarning: once per node that a consumer knowing only hard-reset CubaLIF
        will not reproduce (a soft reset, or the LI form), naming the node.
    """
    import nir

    if not isinstance(net, SNN):
        raise ValueError(f"to_nir needs a solsa SNN, got {type(net).__name__}")
    if not (isinstance(dt, (int, float)) and not isinstance(dt, bool) and np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
    dt = float(dt)
    for i, layer in enumerate(net.layers):
        if layer.adaptive or layer.recurrent:
            raise ValueError(f"layer {i} is {'ALIF' if layer.adaptive else 'recurrent'}: the NIR export writes "
                             "feed-forward LIF layers only")
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([net.n_inputs])})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    for i, layer in enumerate(net.layers):
        for name, node in _layer_nodes(nir, i, layer, dt):
            if name.endswith(("_lif", "_readout")):
                _warn(i, name, node, layer)
            nodes[name] = node
            edges.append((prev, name))
            prev = name
    nodes["output"] = nir.Output(output_type={"output": np.array([net.n_outputs])})
    edges.append((prev, "output"))
    metadata = {
        "dt": dt,
        "producer": PRODUCER,
        "decay_convention": "forward Euler: decay = 1 - dt/tau; input gain = r*dt/tau (w_in*dt/tau_syn)",
        "readout": net.readout,
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def write_nir(graph, path: str | Path) -> None:
    """Write a NIR graph to ``path`` atomically (``nir.write`` into memory, then rename into place)."""
    import nir

    buf = io.BytesIO()
    nir.write(buf, graph)
    atomic_write(path, lambda f: f.write(buf.getvalue()), mode="wb")
