"""Import a NIR graph into a solsa :class:`~solsa.SNN` (the inverse of :func:`~solsa.to_nir`).

solsa runs feed-forward chains ``Input → layer → ... → layer → Output`` where a layer is

* ``Affine|Linear → CubaLIF`` (spiking) or ``Affine|Linear → CubaLI`` (leaky readout): one
  synaptic decay per layer; CubaLIF's input gains ``w_in·dt/τ_syn`` and ``r·dt/τ_mem`` are
  folded into the rows of ``W`` (exact, the filter and membrane are linear);
* ``[LI →] Affine|Linear → LIF`` (spiking) or ``[LI →] Affine|Linear → LI`` (leaky readout):
  the optional LI in front is the per-input-channel synaptic filter (α from its τ, β from
  its gain ``r·dt/τ``).

Decays come from ``decay = 1 - dt/τ`` with ``dt`` from the graph's metadata (or the ``dt``
argument). A spiking node's reset is its ``metadata["reset"]`` when present, else NIR's
hard reset to ``v_reset`` (which must then be 0). Anything else is refused with a
``ValueError`` naming the node and its type.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..layers import SNN, LIFLayer
from ..surrogate import check_surrogate

__all__ = ["from_nir", "SUPPORTED_NODES"]

SUPPORTED_NODES = ("Input", "Output", "Affine", "Linear", "LI", "LIF", "CubaLIF", "CubaLI")
_NEURONS = ("LIF", "CubaLIF", "LI", "CubaLI")
_TOL = 1e-9


def _kind(node: Any) -> str:
    return type(node).__name__


def _meta(node: Any) -> dict[str, Any]:
    return dict(getattr(node, "metadata", None) or {})


def _arr(node: Any, field: str) -> np.ndarray:
    return np.asarray(getattr(node, field), dtype=np.float64).reshape(-1)


def _decay(node: Any, name: str, field: str, dt: float) -> np.ndarray:
    """``1 - dt/τ`` for the time constants in ``node.field``, refused outside [0, 1)."""
    tau = _arr(node, field)
    if not np.all(np.isfinite(tau)) or np.any(tau <= 0):
        raise ValueError(f"NIR node '{name}' ({_kind(node)}): {field} must be positive and finite")
    decay = 1.0 - dt / tau
    if np.any(decay < -_TOL):
        raise ValueError(f"NIR node '{name}' ({_kind(node)}): {field} (min {tau.min():g} s) is shorter than "
                         f"dt = {dt:g} s; forward Euler needs tau >= dt (is dt right?)")
    return np.clip(decay, 0.0, None)


def _zero(node: Any, name: str, field: str) -> None:
    if np.any(_arr(node, field) != 0):
        raise ValueError(f"NIR node '{name}' ({_kind(node)}): solsa needs {field} = 0")


def _uniform(values: np.ndarray, node: Any, name: str, field: str) -> float:
    if not np.allclose(values, values[0], rtol=1e-12, atol=0.0):
        raise ValueError(f"NIR node '{name}' ({_kind(node)}): solsa needs one {field} per layer, "
                         f"got values from {values.min():g} to {values.max():g}")
    return float(values[0])


def _chain(graph: Any) -> list[str]:
    """Node names from the Input to the Output; refuses anything but one straight chain."""
    nodes = graph.nodes
    for name, node in nodes.items():
        if _kind(node) not in SUPPORTED_NODES:
            raise ValueError(f"NIR node '{name}' of type {_kind(node)} is not supported by solsa "
                             f"(supported: {', '.join(SUPPORTED_NODES)})")
    inputs = [n for n, node in nodes.items() if _kind(node) == "Input"]
    if len(inputs) != 1 or sum(_kind(n) == "Output" for n in nodes.values()) != 1:
        raise ValueError("NIR graph must have exactly one Input and one Output node for solsa, "
                         f"got inputs {inputs}")
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in graph.edges:
        if a not in nodes or b not in nodes:
            raise ValueError(f"NIR edge ({a!r}, {b!r}) names a node that is not in the graph")
        succ[a].append(b)
    order, name = [], inputs[0]
    while True:
        order.append(name)
        if _kind(nodes[name]) == "Output":
            break
        if len(succ[name]) != 1:
            raise ValueError(f"NIR node '{name}' ({_kind(nodes[name])}) has {len(succ[name])} outgoing edges; "
                             "solsa runs a feed-forward chain (one edge out of every node)")
        name = succ[name][0]
        if name in order:
            raise ValueError(f"NIR node '{name}' ({_kind(nodes[name])}) closes a recurrent loop; solsa has none")
    if len(order) != len(nodes):
        extra = sorted(set(nodes) - set(order))
        raise ValueError(f"NIR nodes {extra} are not on the chain from the Input to the Output")
    return order[1:-1]


def _group(graph: Any, chain: list[str]) -> list[tuple[str | None, str, str]]:
    """Split the chain into layers ``(filter LI or None, Affine/Linear, neuron)``."""
    nodes, layers, i = graph.nodes, [], 0
    while i < len(chain):
        filt = None
        if _kind(nodes[chain[i]]) == "LI" and i + 1 < len(chain) and _kind(nodes[chain[i + 1]]) in ("Affine", "Linear"):
            filt, i = chain[i], i + 1
        if i + 1 >= len(chain) or _kind(nodes[chain[i]]) not in ("Affine", "Linear") \
                or _kind(nodes[chain[i + 1]]) not in _NEURONS:
            name = chain[i]
            raise ValueError(f"NIR node '{name}' ({_kind(nodes[name])}) is out of place: solsa layers are "
                             "[LI →] Affine|Linear → LIF|CubaLIF|LI|CubaLI")
        conn, neuron = chain[i], chain[i + 1]
        if filt is not None and _kind(nodes[neuron]) in ("CubaLIF", "CubaLI"):
            raise ValueError(f"NIR node '{filt}' (LI) filters in front of '{neuron}' ({_kind(nodes[neuron])}), which "
                             "has its own synaptic filter; solsa has one filter per layer")
        layers.append((filt, conn, neuron))
        i += 2
    return layers


def _build_layer(graph: Any, names: tuple[str | None, str, str], dt: float, dtype: torch.dtype) -> LIFLayer:
    filt_name, conn_name, neuron_name = names
    conn, neuron = graph.nodes[conn_name], graph.nodes[neuron_name]
    kind = _kind(neuron)
    W = np.asarray(conn.weight, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"NIR node '{conn_name}' ({_kind(conn)}): weight must be 2-D, got shape {W.shape}")
    n_out, n_in = W.shape
    bias = np.asarray(conn.bias, dtype=np.float64).reshape(-1) if _kind(conn) == "Affine" else None
    spiking = kind in ("LIF", "CubaLIF")
    meta = _meta(neuron)
    tau_field = "tau_mem" if kind.startswith("Cuba") else "tau"
    for field in (tau_field, "r", "v_leak") + (("tau_syn", "w_in") if kind.startswith("Cuba") else ()):
        if _arr(neuron, field).size != n_out:
            raise ValueError(f"NIR node '{neuron_name}' ({kind}): {field} has {_arr(neuron, field).size} "
                             f"values but '{conn_name}' has {n_out} outputs")
    _zero(neuron, neuron_name, "v_leak")
    lam = _decay(neuron, neuron_name, tau_field, dt)
    gain = _arr(neuron, "r") * (1.0 - lam)  # membrane input gain r·dt/τ
    alpha, beta = np.zeros(1), np.ones(1)
    if kind.startswith("Cuba"):
        syn = _decay(neuron, neuron_name, "tau_syn", dt)
        alpha = np.array([_uniform(syn, neuron, neuron_name, "tau_syn")])
        gain = gain * _arr(neuron, "w_in") * (1.0 - syn)
    elif filt_name is not None:
        filt = graph.nodes[filt_name]
        for field in ("tau", "r", "v_leak"):
            if _arr(filt, field).size != n_in:
                raise ValueError(f"NIR node '{filt_name}' (LI): {field} has {_arr(filt, field).size} values "
                                 f"but '{conn_name}' has {n_in} inputs")
        _zero(filt, filt_name, "v_leak")
        alpha = _decay(filt, filt_name, "tau", dt)
        beta = _arr(filt, "r") * (1.0 - alpha)
        if np.any(beta <= 0):
            raise ValueError(f"NIR node '{filt_name}' (LI): solsa needs a positive input gain r*dt/tau")
    W = W * gain[:, None]
    if bias is not None:
        bias = bias * gain
    options: dict[str, Any] = {"spiking": spiking, "bias": bias is not None, "dtype": dtype,
                               "filter_granularity": "channel" if alpha.size > 1 else "layer",
                               "lam_granularity": "layer" if np.all(lam == lam[0]) else "neuron"}
    if "surrogate" in meta:
        options["surrogate"] = str(meta["surrogate"])
        options["width"] = float(meta["surrogate_width"]) if "surrogate_width" in meta else None
        check_surrogate(options["surrogate"], options["width"])
    if spiking:
        options["threshold"] = _uniform(_arr(neuron, "v_threshold"), neuron, neuron_name, "v_threshold")
        reset = str(meta.get("reset", "zero"))
        if reset not in ("subtract", "zero", "none"):
            raise ValueError(f"NIR node '{neuron_name}' ({kind}): metadata reset must be 'subtract', 'zero' or "
                             f"'none', got {reset!r}")
        if reset == "zero":
            _zero(neuron, neuron_name, "v_reset")
        options["reset"] = reset
        options["reset_amount"] = float(meta.get("reset_amount", options["threshold"]))
    try:
        layer = LIFLayer(n_in, n_out, **options)
    except ValueError as err:
        raise ValueError(f"NIR node '{neuron_name}' ({kind}): {err}") from err
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(W))
        if bias is not None:
            layer.bias.copy_(torch.from_numpy(bias))
        layer.alpha.copy_(torch.from_numpy(alpha if alpha.size > 1 else alpha.reshape(())))
        layer.beta.copy_(torch.from_numpy(beta if beta.size > 1 else beta.reshape(())))
        layer.lam.copy_(torch.from_numpy(lam if options["lam_granularity"] == "neuron" else lam[:1].reshape(())))
    return layer


def _graph_dt(graph: Any, dt: float | None) -> float:
    stored = _meta(graph).get("dt")
    if stored is not None:
        stored = float(np.asarray(stored).reshape(()))
    if dt is None and stored is None:
        raise ValueError("the NIR graph does not store dt in its metadata; pass dt= (the time step in seconds "
                         "its producer used: snnTorch exports with 1e-4, Norse with 1e-3 by default)")
    if dt is not None and stored is not None and not math.isclose(float(dt), stored, rel_tol=1e-12):
        raise ValueError(f"dt={dt!r} differs from the dt={stored!r} stored in the NIR graph's metadata")
    value = float(stored if dt is None else dt)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {value!r}")
    return value


def _unknown_node_types(path: Path) -> list[str]:
    """``'name' (Type)`` of every node in the NIR file ``path`` whose type solsa does not import (empty when the
    file cannot be read as HDF5)."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            nodes = f["node/nodes"]
            types = {name: nodes[name]["type"][()] for name in nodes if "type" in nodes[name]}
    except Exception:  # not HDF5, or not laid out as NIR: the caller reports the reader's error
        return []
    types = {name: t.decode() if isinstance(t, bytes) else str(t) for name, t in types.items()}
    return [f"'{name}' ({kind})" for name, kind in types.items() if kind not in SUPPORTED_NODES]


def _check_finite(graph: Any, names: tuple[str | None, str, str]) -> None:
    """Every array of the layer's nodes finite (a NaN weight would silence the network)."""
    for name in names:
        if name is None:
            continue
        node = graph.nodes[name]
        for field, value in vars(node).items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                raise ValueError(f"NIR node '{name}' ({_kind(node)}): {field} holds NaN or inf values")


def from_nir(graph: Any, dt: float | None = None, *, dtype: torch.dtype = torch.float32) -> SNN:
    """Build a solsa :class:`~solsa.SNN` from a NIR graph (or the path of a ``.nir`` file).

    Args:
        graph: a ``nir.NIRGraph``, or a path read with ``nir.read``.
        dt: time step in seconds; default: ``graph.metadata["dt"]`` (written by :func:`~solsa.to_nir`).
        dtype: dtype of the network's tensors.

    Raises:
        ValueError: a node solsa cannot run (named, with its type), a graph that is not one
        feed-forward chain, parameters solsa has no place for, or no dt.
    """
    import nir

    if isinstance(graph, (str, Path)):
        path = Path(graph)
        if not path.is_file():
            raise ValueError(f"NIR file {path} does not exist")
        try:
            graph = nir.read(path)
        except Exception as err:  # h5py and nir raise many kinds for a file that is not NIR
            unknown = _unknown_node_types(path)
            if unknown:  # nir's reader fails with a bare assertion on a node type it does not know
                raise ValueError(f"NIR file {path}: node(s) {', '.join(unknown)} cannot be imported by solsa "
                                 f"(supported: {', '.join(SUPPORTED_NODES)})") from None
            raise ValueError(f"{path} could not be read as a NIR graph: {type(err).__name__}: {err}") from err
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"from_nir needs a nir.NIRGraph or a .nir path, got {type(graph).__name__}")
    step = _graph_dt(graph, dt)
    groups = _group(graph, _chain(graph))
    if not groups:
        raise ValueError("the NIR graph has no layer (Affine|Linear followed by a neuron node)")
    for names in groups:
        _check_finite(graph, names)
    layers = [_build_layer(graph, names, step, dtype) for names in groups]
    for names, layer in zip(groups[:-1], layers[:-1]):
        if not layer.spiking:
            raise ValueError(f"NIR node '{names[2]}' ({_kind(graph.nodes[names[2]])}) is a non-spiking layer before "
                             "the last one; solsa's SNN has a leaky readout only as its output layer")
    for a, b in zip(layers, layers[1:]):
        if a.out_features != b.in_features:
            raise ValueError(f"NIR layer sizes do not chain: {a.out_features} outputs feed {b.in_features} inputs")
    net = SNN(layers[0].in_features, [layer.out_features for layer in layers[:-1]], layers[-1].out_features,
              readout="spike" if layers[-1].spiking else "leaky")
    net.layers = nn.ModuleList(layers)
    return net
