"""A run's ``report.png`` (learning curves, the inspection plots of :mod:`solsa.plots`) (figures are written by :func:`solsa.io.save_figure`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .io import save_figure
from .layers import SNN
from .plots import filter_histogram, membrane_plot, raster_plot, record_activity, trace_plot

__all__ = ["plot_run"]


def plot_run(path: str | Path, net: SNN, history: list[dict[str, Any]], task, metrics: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 8))
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

    device = next(net.parameters()).device
    n = int(task.test.lengths[0])
    records = record_activity(net, task.test.x[:n, 0].to(device))
    raster_plot(axes[0, 2], net, records, f"spike raster, test sample 0 (label {int(task.test.y[0])})")
    membrane_plot(axes[1, 0], net, records, layer=0)
    trace_plot(axes[1, 1], records, layer=0, net=net)
    filter_histogram(axes[1, 2], metrics["learned_filters"], "alpha")
    fig.tight_layout()
    save_figure(fig, path)
