"""Plots: a run's ``report.png`` (learning curves, a spike raster, the learned filters)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from .io import atomic_write
from .layers import SNN

__all__ = ["plot_run", "save_figure", "record_spikes"]


def save_figure(fig, path: str | Path) -> None:
    """Save a matplotlib figure atomically as PNG."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()), mode="wb")


@torch.no_grad()
def record_spikes(net: SNN, x: torch.Tensor) -> list[torch.Tensor]:
    """Outputs of every layer ``[T, N_l]`` for one sample ``x`` ``[T, N_in]``."""
    states = net.init_state(1)
    per_layer: list[list[torch.Tensor]] = [[] for _ in net.layers]
    for x_t in x:
        _, states = net.step(x_t.unsqueeze(0), states)
        for rec, s in zip(per_layer, states):
            rec.append(s.o[0])
    return [torch.stack(r).cpu() for r in per_layer]


def plot_run(path: str | Path, net: SNN, history: list[dict[str, Any]], task, metrics: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    epochs = [r["epoch"] for r in history]
    ax = axes[0, 0]
    ax.plot(epochs, [r["loss"] for r in history], label="train loss")
    ax.plot(epochs, [r["val_loss"] for r in history], label="val loss")
    ax.set_xlabel("epoch"), ax.set_ylabel("loss"), ax.legend(), ax.set_title("loss")
    ax = axes[0, 1]
    for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
        ax.plot(epochs, [r[key] for r in history], label=key.replace("_accuracy", ""))
    ax.axvline(metrics["best_epoch"], color="grey", ls=":", label=f"chosen on val (epoch {metrics['best_epoch']})")
    ax.set_xlabel("epoch"), ax.set_ylabel("accuracy"), ax.legend(), ax.set_title(f"{metrics['rule']} on {metrics['task']}")

    ax = axes[1, 0]
    device = next(net.parameters()).device
    n = int(task.test.lengths[0])
    layers = record_spikes(net, task.test.x[:n, 0].to(device))
    offset = 0
    for i, (layer, out) in enumerate(zip(net.layers, layers)):
        if layer.spiking:
            t_idx, n_idx = out.nonzero(as_tuple=True)
            ax.scatter(t_idx, n_idx + offset, s=2, label=f"layer {i}")
            offset += out.shape[1] + 5
    ax.set_xlabel("time step"), ax.set_ylabel("neuron (stacked by layer)")
    ax.set_title(f"spike raster, test sample 0 (label {int(task.test.y[0])})")
    if offset:
        ax.legend(loc="upper right", fontsize=7, markerscale=4)

    ax = axes[1, 1]
    for i, row in enumerate(metrics["learned_filters"]):
        alphas = row["alpha"]
        ax.scatter([i] * len(alphas), alphas, s=12, color="C0", label="α (synaptic decay)" if i == 0 else None)
        ax.scatter([i + 0.2] * len(row["lam"]), row["lam"], s=12, color="C1", marker="s",
                   label="λ (membrane decay)" if i == 0 else None)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xticks(range(len(metrics["learned_filters"])))
    ax.set_xlabel("layer"), ax.set_ylabel("decay"), ax.legend(fontsize=8)
    ax.set_title("learned filter decays (β: " + ", ".join(
        f"{sum(r['beta']) / len(r['beta']):.2f}" for r in metrics["learned_filters"]) + ")")
    fig.tight_layout()
    save_figure(fig, path)
