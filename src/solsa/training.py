"""Training end to end: one loop for every rule, with the three enhancements of SOLSA.md §4.

- scheduled weight update (:class:`~solsa.schedule.UpdateSchedule`),
- early stop training (skip the rest of a sequence once the batch is confidently right),
- adaptive synapse filter (α, β learned through their traces, clamped after each update).

:func:`train` runs a :class:`TrainConfig` and, given an output folder, writes
``metrics.json``, ``history.csv``, ``checkpoint.pt`` and ``report.png``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch

from .io import load_checkpoint, save_checkpoint, write_csv, write_json
from .layers import SNN
from .losses import make_loss
from .rules import ABLATIONS, LearningRule, get_rule, sequence_weights
from .schedule import UpdateSchedule
from .tasks import Split, Task, iterate_batches, load_task, van_rossum_distance

__all__ = [
    "TrainConfig",
    "build_network",
    "make_optimizer",
    "evaluate",
    "train",
    "evaluate_checkpoint",
    "network_from_checkpoint",
    "checkpoint_task",
    "prepare_out_dir",
    "OPTIMIZERS",
    "MODELS",
]

OPTIMIZERS = ("adam", "rmsprop", "sgd", "adamw")
MODELS = ("full", "paper")


@dataclass
class TrainConfig:
    """Every option of ``solsa train``; the defaults are the main job (SOLSA on JapaneseVowels).

    The training defaults (one α, β per *input channel*, batch 16, lr 2e-3) were chosen on
    JapaneseVowels' validation split (mean over seeds 0-2; see README). The layer's own
    default stays one α, β per layer, as in the paper.
    """

    task: str = "uea:JapaneseVowels"
    rule: str = "solsa"
    model: str = "full"  # "full": the SOLSA model; "paper": the neuron model of the rule's paper
    epochs: int = 60
    seed: int = 0
    batch_size: int = 16
    lr: float = 2e-3
    optimizer: str = "adam"
    hidden: tuple[int, ...] = (100, 100)
    readout: str = "leaky"  # "leaky" (scored by per-step cross-entropy) or "spike" (scored by spike-MSE)
    loss: str | None = None  # default: mse for the spiking readout, ce for the leaky one
    readout_lam: float = 0.0
    readout_alpha: float | None = None  # None: the output layer starts with the same α as the others
    alpha: float = 0.0
    beta: float = 1.0
    lam: float = 0.5
    learn_alpha: bool = True
    learn_beta: bool = True
    learn_lam: bool = False
    filter_granularity: str = "channel"
    lam_granularity: str = "layer"
    reset: str = "subtract"
    surrogate: str = "gaussian"
    width: float | None = None
    threshold: float = 1.0
    weight_scale: float = 1.0
    schedule: str = "end"
    search_period: int = 5
    early_stop: bool = False
    early_stop_rho: float = 0.9
    early_stop_p: float = 0.9
    early_stop_h: int = 2
    early_stop_warmup: int = 5
    encoder: str | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    val_fraction: float = 0.2
    device: str = "cpu"
    # torch CPU threads. 1 by default: at these sizes per-op overhead dominates, and on a shared
    # 2-core machine extra threads made small ops (log_softmax) ~1000x slower (docs/benchmarks.md)
    threads: int | None = 1

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        for name in ("epochs", "batch_size", "search_period", "early_stop_h"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.early_stop_warmup < 0:
            raise ValueError(f"early_stop_warmup must be ≥ 0, got {self.early_stop_warmup!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {list(MODELS)}, got {self.model!r}")
        for name in ("early_stop_rho", "early_stop_p"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        get_rule(self.rule)  # unknown rule: a ValueError listing the valid ones
        UpdateSchedule(self.schedule, self.search_period)  # validates the spec

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; valid options: {sorted(names)}")
        data = dict(data)
        if isinstance(data.get("hidden"), str):
            data["hidden"] = parse_hidden(data["hidden"])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @property
    def loss_name(self) -> str:
        return self.loss or ("mse" if self.readout == "spike" else "ce")


def parse_hidden(text: str) -> tuple[int, ...]:
    """``"100,100"`` -> ``(100, 100)``; ``""`` -> no hidden layer."""
    try:
        return tuple(int(h) for h in text.split(",") if h.strip())
    except ValueError:
        raise ValueError(f"hidden must be comma-separated layer sizes like '100,100', got {text!r}") from None


def network_options(cfg: TrainConfig) -> dict[str, Any]:
    """The :class:`~solsa.LIFLayer` options of a run, with the rule's paper model applied where asked."""
    opts = dict(
        alpha=cfg.alpha, beta=cfg.beta, lam=cfg.lam, learn_alpha=cfg.learn_alpha, learn_beta=cfg.learn_beta,
        learn_lam=cfg.learn_lam, filter_granularity=cfg.filter_granularity, lam_granularity=cfg.lam_granularity,
        reset=cfg.reset, surrogate=cfg.surrogate, width=cfg.width, threshold=cfg.threshold,
        weight_scale=cfg.weight_scale,
    )
    spec = get_rule(cfg.rule)
    if cfg.model == "paper" or cfg.rule in ABLATIONS:
        opts.update(spec.paper_model)
    return opts


def build_network(cfg: TrainConfig, n_inputs: int, n_outputs: int) -> SNN:
    return SNN(n_inputs, cfg.hidden, n_outputs, readout=cfg.readout, readout_lam=cfg.readout_lam,
               readout_alpha=cfg.readout_alpha, **network_options(cfg))


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")


def class_probabilities(net: SNN, outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``[B, C]``: spike counts normalised (spiking readout), softmax (leaky readout)."""
    scores = net.scores(outputs, mask)
    if net.readout == "leaky":
        return torch.softmax(scores, -1)
    counts = (outputs * mask.unsqueeze(-1)).sum(0)
    total = counts.sum(-1, keepdim=True)
    uniform = torch.full_like(counts, 1.0 / counts.shape[-1])
    return torch.where(total > 0, counts / total.clamp(min=1e-12), uniform)


def confidently_right(probs: torch.Tensor, y: torch.Tensor, rho: float, p: float) -> bool:
    """Early-stop test: the fraction of samples that are right *and* have max probability ≥ p is ≥ ρ."""
    best, pred = probs.max(-1)
    return ((pred == y) & (best >= p)).float().mean().item() >= rho


class EarlyStop(NamedTuple):
    """Stop a sequence once ``h`` checks found the batch confidently right (see :func:`confidently_right`)."""

    rho: float = 0.9
    p: float = 0.9
    h: int = 2


class SequenceRun(NamedTuple):
    outputs: torch.Tensor  # [steps, B, C]
    loss: float
    steps: int  # time steps processed (< T when stopped early)
    updates: int  # optimizer steps taken
    state_bytes: int  # the rule's train-state bytes at its largest


def train_sequence(
    rule: LearningRule,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    points: set[int],
    early_stop: EarlyStop | None = None,
    record_magnitude: Callable[[int, int, float], None] | None = None,
) -> SequenceRun:
    """Train on one batch ``x`` ``[T, B, N]``, stepping the optimizer after the steps in ``points``.

    Early stop (checked at update points before the last step): once the batch was confidently right at
    ``early_stop.h`` checks, the rest of the sequence is skipped — no forward steps, no trace updates.
    """
    net = rule.net
    T, B = x.shape[:2]
    weights = sequence_weights(mask)
    rule.reset(B)
    outputs, loss, hits, updates, state_bytes = [], 0.0, 0, 0, 0
    t = -1
    for t in range(T):
        res = rule.step(x[t], target if target.dim() == 1 else target[t], weights[t])
        outputs.append(res.output)
        loss += res.loss.item()
        if record_magnitude is not None:
            record_magnitude(T, t, rule.step_magnitude)
        if t in points:
            state_bytes = max(state_bytes, rule.train_state_bytes())
            rule.flush()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            net.clamp_()
            updates += 1
            if early_stop is not None and t < T - 1:
                probs = class_probabilities(net, torch.stack(outputs), mask[: t + 1])
                hits += confidently_right(probs, target, early_stop.rho, early_stop.p)
                if hits >= early_stop.h:
                    break
    return SequenceRun(torch.stack(outputs), loss, t + 1, updates, state_bytes)


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
    for batch in iterate_batches(split, batch_size):
        x, y, mask = batch.x.to(device), batch.y.to(device), batch.mask.to(device)
        out = net(x)
        w = sequence_weights(mask)
        tgt = batch.target.to(device) if batch.target is not None else y
        for t in range(out.shape[0]):
            total_loss += loss(out[t], tgt if tgt.dim() == 1 else tgt[t], w[t]).item() * len(y)
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


def prepare_out_dir(out: str | Path, force: bool) -> Path:
    """Refuse to overwrite an existing run unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"--out {out} already holds a run; pass --force to overwrite it")
    out.mkdir(parents=True, exist_ok=True)
    return out


def filter_summary(net: SNN) -> list[dict[str, Any]]:
    """Learned α, β, λ per layer (lists for per-channel values)."""
    rows = []
    for i, layer in enumerate(net.layers):
        rows.append({name: getattr(layer, name).detach().cpu().flatten().tolist() for name in ("alpha", "beta", "lam")}
                    | {"layer": i})
    return rows


def _alpha_stats(net: SNN) -> dict[str, float]:
    a = torch.cat([layer.alpha.detach().flatten() for layer in net.layers])
    b = torch.cat([layer.beta.detach().flatten() for layer in net.layers])
    return {"alpha_mean": a.mean().item(), "alpha_min": a.min().item(), "alpha_max": a.max().item(),
            "beta_mean": b.mean().item()}


def default_out_dir(cfg: TrainConfig) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{cfg.task}_{cfg.rule}_seed{cfg.seed}").strip("-")
    return Path("runs") / name


def train(
    cfg: TrainConfig,
    out: str | Path | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    task: Task | None = None,
) -> dict[str, Any]:
    """Train one run; returns the metrics dict (also written to ``out/metrics.json`` if ``out``)."""
    out_dir = prepare_out_dir(out, force) if out is not None else None
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, out_dir, progress, task)
    finally:
        torch.set_num_threads(threads)  # leave the caller's setting as it was


def _train(cfg: TrainConfig, out_dir: Path | None, progress: bool, task: Task | None) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    if task is None:
        task = load_task(cfg.task, seed=cfg.seed, encoder=cfg.encoder, val_fraction=cfg.val_fraction, **cfg.task_options)
    if task.kind == "generation" and cfg.readout != "spike":
        raise ValueError(f"task {task.name} generates spike trains: it needs readout 'spike'")
    device = torch.device(cfg.device)
    net = build_network(cfg, task.n_inputs, task.n_classes).to(device)
    spec = get_rule(cfg.rule)
    rule = spec.build(net, cfg.loss_name)
    schedule = UpdateSchedule(cfg.schedule, cfg.search_period)
    if schedule.mode == "search" and not rule.supports_step_magnitude:
        raise ValueError(f"schedule {cfg.schedule!r} ranks steps by their gradient, which rule {cfg.rule!r} "
                         "does not report per step; use 'end' or 'every:K'")
    optimizer = make_optimizer(cfg.optimizer, [p for p in net.parameters() if p.requires_grad], cfg.lr)
    early = EarlyStop(cfg.early_stop_rho, cfg.early_stop_p, cfg.early_stop_h) if cfg.early_stop else None
    gen = torch.Generator().manual_seed(cfg.seed)
    n_batches = math.ceil(len(task.train) / cfg.batch_size)

    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    state_bytes, total_updates, steps_done, steps_seen = 0, 0, 0, 0
    start = time.perf_counter()
    bar = _progress(cfg.epochs * n_batches, progress, f"{cfg.rule} on {task.name}")
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        net.train()
        epoch_loss, epoch_done, epoch_seen, epoch_updates, correct, count = 0.0, 0, 0, 0, 0, 0
        for batch in iterate_batches(task.train, cfg.batch_size, shuffle=True, generator=gen):
            x, y, mask = batch.x.to(device), batch.y.to(device), batch.mask.to(device)
            target = batch.target.to(device) if batch.target is not None else y
            T, B = x.shape[:2]
            rule.track_step_magnitude = schedule.searching
            stopper = early if (epoch > cfg.early_stop_warmup and task.kind != "generation") else None
            res = train_sequence(rule, optimizer, x, target, mask, schedule.points(T), stopper,
                                 schedule.record if schedule.searching else None)
            outputs, done = res.outputs, res.steps
            epoch_loss += res.loss
            epoch_updates += res.updates
            state_bytes = max(state_bytes, res.state_bytes)
            epoch_done += done
            epoch_seen += T
            if task.kind != "generation":
                correct += (net.scores(outputs, mask[:done]).argmax(-1) == y).sum().item()
                count += B
            bar.update(1)
            running = {"acc": f"{correct / count:.3f}"} if count else {}
            bar.set_postfix(epoch=epoch, loss=f"{epoch_loss / max(bar.n - (epoch - 1) * n_batches, 1):.4f}", **running)
        schedule.end_epoch(epoch)
        total_updates += epoch_updates
        steps_done += epoch_done
        steps_seen += epoch_seen
        train_seconds = time.perf_counter() - t0
        net.eval()
        ev = {name: evaluate(net, split, cfg.loss_name, device=cfg.device)
              for name, split in (("train", task.train), ("val", task.val), ("test", task.test))}
        row = {
            "epoch": epoch,
            "loss": epoch_loss / n_batches,
            "online_train_accuracy": correct / count if count else float("nan"),
            "train_accuracy": ev["train"]["accuracy"],
            "val_accuracy": ev["val"]["accuracy"],
            "val_loss": ev["val"]["loss"],
            "test_accuracy": ev["test"]["accuracy"],
            "steps_processed_fraction": epoch_done / epoch_seen,
            "update_steps": epoch_updates,
            "epoch_seconds": train_seconds,
            **_alpha_stats(net),
        }
        if "van_rossum" in ev["test"]:
            row["val_van_rossum"] = ev["val"]["van_rossum"]
            row["test_van_rossum"] = ev["test"]["van_rossum"]
        history.append(row)
        bar.set_postfix(epoch=epoch, loss=f"{row['loss']:.4f}", val=f"{row['val_accuracy']:.3f}")
        # model selection on validation only: best accuracy, ties to the lower validation loss
        key = (row["val_accuracy"], -row["val_loss"])
        if best is None or key > best["key"]:
            best = {"key": key, "row": row, "state": copy.deepcopy(net.state_dict())}
    bar.close()
    wall = time.perf_counter() - start

    chosen = best["row"]
    net.load_state_dict(best["state"])
    metrics = {
        "task": task.name,
        "rule": cfg.rule,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "best_epoch": chosen["epoch"],
        "train_accuracy": chosen["train_accuracy"],
        "val_accuracy": chosen["val_accuracy"],
        "val_loss": chosen["val_loss"],
        "test_accuracy": chosen["test_accuracy"],
        "best_test_accuracy": max(r["test_accuracy"] for r in history),
        "final_test_accuracy": history[-1]["test_accuracy"],
        "wall_seconds": wall,
        "seconds_per_epoch": sum(r["epoch_seconds"] for r in history) / len(history),
        "train_state_bytes": state_bytes,
        "steps_processed_fraction": steps_done / max(steps_seen, 1),
        "update_steps": total_updates,
        "schedule": schedule.to_dict(),
        "learned_filters": filter_summary(net),
        "n_parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
        "n_inputs": task.n_inputs,
        "n_classes": task.n_classes,
        "task_info": task.info,
        "config": cfg.to_dict(),
    }
    if "test_van_rossum" in chosen:
        metrics["test_van_rossum"] = chosen["test_van_rossum"]
    if out_dir is not None:
        _write_run(out_dir, net, cfg, metrics, history, task)
    return metrics


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


def _write_run(out_dir: Path, net: SNN, cfg: TrainConfig, metrics: dict, history: list[dict], task: Task) -> None:
    from .report import plot_run

    ckpt_config = {"train": cfg.to_dict(), "n_inputs": task.n_inputs, "n_classes": task.n_classes,
                   "task": task.name, "test_accuracy": metrics["test_accuracy"]}
    save_checkpoint(out_dir / "checkpoint.pt", {k: v.detach().cpu() for k, v in net.state_dict().items()}, ckpt_config)
    write_csv(out_dir / "history.csv", history)
    plot_run(out_dir / "report.png", net, history, task, metrics)
    write_json(out_dir / "metrics.json", metrics)


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
    task = load_task(spec, seed=cfg.seed, encoder=cfg.encoder, val_fraction=cfg.val_fraction, **cfg.task_options)
    if (task.n_inputs, task.n_classes) != (ckpt["config"]["n_inputs"], ckpt["config"]["n_classes"]):
        raise ValueError(
            f"task {spec} has {task.n_inputs} inputs and {task.n_classes} classes; the checkpoint's network "
            f"expects {ckpt['config']['n_inputs']} and {ckpt['config']['n_classes']}"
        )
    return net, cfg, ckpt, task


def evaluate_checkpoint(path: str | Path, task_spec: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """Rebuild the network of a checkpoint and evaluate it on the test split of its task (or ``task_spec``)."""
    net, cfg, ckpt, task = checkpoint_task(path, task_spec)
    net.to(device)
    result = evaluate(net, task.test, cfg.loss_name, device=device)
    return {"task": task.name, "checkpoint": str(path), "test_accuracy": result["accuracy"], "test_loss": result["loss"],
            "recorded_test_accuracy": ckpt["config"].get("test_accuracy")}
