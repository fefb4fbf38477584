"""Evaluation: accuracy and loss of a network on a split, and of a saved checkpoint on its task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig
from .factories import build_network
from .io import load_checkpoint
from .layers import SNN
from .losses import make_loss
from .rules import sequence_weights, target_at
from .tasks import Split, Task, iterate_batches, load_task, van_rossum_distance
from .validation import check_device

__all__ = ["evaluate", "evaluate_checkpoint", "load_task_of", "network_from_checkpoint", "checkpoint_task"]


def _prototypes(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """One target spike train per class ``[T, K, C_out]`` and the class ids ``[K]`` (generation tasks)."""
    classes = torch.unique(split.y)
    first = torch.stack([(split.y == c).nonzero()[0, 0] for c in classes])
    return split.target[:, first], classes


@torch.no_grad()
def evaluate(net: SNN, split: Split, loss_name: str, batch_size: int = 256, device: str = "cpu") -> dict[str, float]:
    """Accuracy and loss on a split. Generation tasks also get the mean van Rossum distance, and
    their accuracy is nearest-target classification of the output train."""
    loss = make_loss(loss_name)
    correct, total_loss, n, vr_sum = 0, 0.0, 0, 0.0
    protos = _prototypes(split) if split.target is not None else None
    dtype = net.layers[0].weight.dtype
    for batch in iterate_batches(split, batch_size):
        x, y, mask = batch.x.to(device, dtype), batch.y.to(device), batch.mask.to(device, dtype)
        out = net(x)
        w = sequence_weights(mask, net.readout_score)
        tgt = batch.target.to(device, dtype) if batch.target is not None else y
        for t in range(out.shape[0]):
            total_loss += loss(out[t], target_at(tgt, t), w[t]).item() * len(y)
        if protos is None:
            correct += (net.scores(out, mask).argmax(-1) == y).sum().item()
        else:
            trains, classes = protos
            vr_sum += van_rossum_distance(out * mask.unsqueeze(-1), tgt).sum().item()
            T = out.shape[0]
            d = torch.stack([van_rossum_distance(out * mask.unsqueeze(-1), trains[:T, [k]].expand_as(out))
                             for k in range(len(classes))], -1)
            correct += (classes.to(device)[d.argmin(-1)] == y).sum().item()
        n += len(y)
    result = {"accuracy": correct / max(n, 1), "loss": total_loss / max(n, 1)}
    if protos is not None:
        result["van_rossum"] = vr_sum / max(n, 1)
    return result


def load_task_of(cfg: TrainConfig, spec: str | None = None):
    """The task of a run (or ``spec`` with the run's seed, encoder and options)."""
    return load_task(spec or cfg.task, seed=cfg.seed, encoder=cfg.encoder, val_fraction=cfg.val_fraction,
                     **cfg.task_options)


def network_from_checkpoint(path: str | Path) -> tuple[SNN, TrainConfig, dict[str, Any]]:
    """The trained network of a checkpoint (on the CPU, in eval mode), its config and the checkpoint dict."""
    ckpt = load_checkpoint(path)
    try:
        cfg = TrainConfig.from_dict(ckpt["config"]["train"])
        net = build_network(cfg, ckpt["config"]["n_inputs"], ckpt["config"]["n_classes"])
        net.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise ValueError(f"checkpoint {path} is malformed: {type(err).__name__}: {err}") from err
    return net.eval(), cfg, ckpt


def checkpoint_task(path: str | Path, task_spec: str | None = None) -> tuple[SNN, TrainConfig, dict[str, Any], Task]:
    """A checkpoint's network, config and dict, and its task (or ``task_spec``) loaded as at training."""
    net, cfg, ckpt = network_from_checkpoint(path)
    spec = task_spec or cfg.task
    task = load_task_of(cfg, spec)
    if (task.n_inputs, task.n_classes) != (ckpt["config"]["n_inputs"], ckpt["config"]["n_classes"]):
        raise ValueError(
            f"task {spec} has {task.n_inputs} inputs and {task.n_classes} classes; the checkpoint's network "
            f"expects {ckpt['config']['n_inputs']} and {ckpt['config']['n_classes']}"
        )
    return net, cfg, ckpt, task


def evaluate_checkpoint(path: str | Path, task_spec: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """Rebuild the network of a checkpoint and evaluate it on the test split of its task (or ``task_spec``)."""
    check_device(device)
    net, cfg, ckpt, task = checkpoint_task(path, task_spec)
    net.to(device)
    result = evaluate(net, task.test, cfg.loss_name, device=device)
    return {"task": task.name, "checkpoint": str(path), "test_accuracy": result["accuracy"], "test_loss": result["loss"],
            "recorded_test_accuracy": ckpt["config"].get("test_accuracy")}
