"""Inspection plots: spike rasters, membrane and synaptic-trace plots of chosen neurons, and
histograms of the learned filters. Each ``*_plot`` draws into a matplotlib ``Axes``; the run
reports (:func:`solsa.report.plot_run`, :func:`solsa.compare.plot_compare`) compose them, and
:func:`plot_activity` writes a figure of its own (through :func:`solsa.io.save_figure`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch

from .io import save_figure
from .layers import SNN, filter_summary

__all__ = ["LayerRecord", "record_activity", "pick_neurons", "raster_plot", "membrane_plot", "trace_plot",
           "filter_histogram", "plot_activity"]


class LayerRecord(NamedTuple):
    """One layer over one sample: filter state ``F [T, N_in]``, membrane ``V [T, N]``, output ``o [T, N]``."""

    F: torch.Tensor
    V: torch.Tensor
    o: torch.Tensor


@torch.no_grad()
def record_activity(net: SNN, x: torch.Tensor) -> list[LayerRecord]:
    """Every layer's ``F``, ``V`` and output over one sample ``x`` ``[T, N_in]`` (on the CPU)."""
    states = net.init_state(1)
    rec: list[list[list[torch.Tensor]]] = [[[], [], []] for _ in net.layers]
    for x_t in x:
        _, states = net.step(x_t.unsqueeze(0), states)
        for r, s in zip(rec, states):
            for buf, value in zip(r, (s.F, s.V, s.o)):
                buf.append(value[0])
    return [LayerRecord(*(torch.stack(b).cpu() for b in r)) for r in rec]


def pick_neurons(record: LayerRecord, k: int = 3) -> list[int]:
    """``k`` neurons worth looking at: those firing nearest half the steps (neither silent nor saturated);
    for a readout, the largest mean |V|."""
    if bool(((record.o == 0) | (record.o == 1)).all()):
        rate = record.o.mean(0)
        score = torch.where(rate > 0, 1.0 - (rate - 0.5).abs(), torch.zeros_like(rate))
    else:
        score = record.V.abs().mean(0)
    return score.argsort(descending=True, stable=True)[:k].tolist()


def raster_plot(ax, net: SNN, records: Sequence[LayerRecord], title: str = "spike raster") -> None:
    """Spikes of every spiking layer, stacked by layer."""
    offset = 0
    for i, (layer, r) in enumerate(zip(net.layers, records)):
        if layer.spiking:
            t_idx, n_idx = r.o.nonzero(as_tuple=True)
            ax.scatter(t_idx, n_idx + offset, s=2, label=f"layer {i}")
            offset += r.o.shape[1] + 5
    ax.set_xlabel("time step"), ax.set_ylabel("neuron (stacked by layer)"), ax.set_title(title)
    if offset:
        ax.legend(loc="upper right", fontsize=7, markerscale=4)


def membrane_plot(ax, net: SNN, records: Sequence[LayerRecord], layer: int = 0,
                  neurons: Sequence[int] | None = None) -> None:
    """Membrane potential ``V`` of chosen neurons of ``layer`` (default: :func:`pick_neurons`), threshold and spikes."""
    r, lif = records[layer], net.layers[layer]
    neurons = pick_neurons(r) if neurons is None else list(neurons)
    for k, j in enumerate(neurons):
        line, = ax.plot(r.V[:, j], lw=1, label=f"neuron {j}")
        if lif.spiking:
            t = r.o[:, j].nonzero().flatten()
            ax.scatter(t, r.V[t, j], s=12, color=line.get_color(), marker="^", zorder=3)
    if lif.spiking:
        ax.axhline(lif.config.threshold, color="grey", ls="--", lw=0.8, label="threshold θ")
    ax.set_xlabel("time step"), ax.set_ylabel("V"), ax.legend(fontsize=7)
    ax.set_title(f"membrane, layer {layer}" + (" (▲ spike)" if lif.spiking else " (readout)"))


def trace_plot(ax, records: Sequence[LayerRecord], layer: int = 0, channels: Sequence[int] | None = None,
               net: SNN | None = None) -> None:
    """Synaptic filter state ``F`` of chosen input channels of ``layer`` (default: the 3 largest), with their α."""
    F = records[layer].F
    channels = F.abs().sum(0).argsort(descending=True)[:3].tolist() if channels is None else list(channels)
    for i in channels:
        label = f"channel {i}"
        if net is not None:
            a = net.layers[layer].alpha.detach().flatten()
            label += f" (α {float(a[i if a.numel() > 1 else 0]):.2f})"
        ax.plot(F[:, i], lw=1, label=label)
    ax.set_xlabel("time step"), ax.set_ylabel("F"), ax.legend(fontsize=7)
    ax.set_title(f"synaptic traces into layer {layer}")


def filter_histogram(ax, learned_filters: Sequence[dict[str, Any]], key: str = "alpha", label: str = "",
                     bins: int = 20) -> None:
    """Histogram of learned ``key`` (``alpha``, ``beta`` or ``lam``) per layer, from ``metrics["learned_filters"]``."""
    values = [row[key] for row in learned_filters]
    hi = max(max(v) for v in values)
    edges = torch.linspace(0.0, max(1.0, hi), bins + 1).tolist() if key != "beta" else bins
    for row, v in zip(learned_filters, values):
        ax.hist(v, bins=edges, histtype="step", lw=1.2, label=f"{label}layer {row['layer']} ({len(v)})")
    symbol = {"alpha": "α (synaptic decay)", "beta": "β (synaptic gain)", "lam": "λ (membrane decay)"}[key]
    ax.set_xlabel(symbol), ax.set_ylabel("count"), ax.legend(fontsize=7), ax.set_title(f"learned {symbol}")


def plot_activity(
    path: str | Path,
    net: SNN,
    x: torch.Tensor,
    layer: int = 0,
    neurons: Sequence[int] | None = None,
    learned_filters: Sequence[dict[str, Any]] | None = None,
) -> None:
    """A figure of one sample ``x`` ``[T, N_in]``: raster, membrane and traces of ``layer``, filter histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = record_activity(net, x)
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    raster_plot(axes[0, 0], net, records)
    membrane_plot(axes[0, 1], net, records, layer, neurons)
    trace_plot(axes[1, 0], records, layer, net=net)
    filter_histogram(axes[1, 1], learned_filters or filter_summary(net))
    fig.tight_layout()
    save_figure(fig, path)
