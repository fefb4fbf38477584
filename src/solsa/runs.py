"""Run folders: where a run goes, what it writes, and whether a finished run can be reused.

A run folder holds ``metrics.json``, ``history.csv``, ``checkpoint.pt`` and
``report.png``, each written atomically (:mod:`solsa.io`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .io import save_checkpoint, write_csv, write_json
from .layers import SNN

__all__ = ["prepare_out_dir", "default_out_dir", "write_run", "finished_run", "filter_summary"]


def prepare_out_dir(out: str | Path, force: bool) -> Path:
    """Refuse to overwrite an existing run unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"out folder {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"out folder {out} already holds a run; pass force=True (--force) to overwrite it")
    out.mkdir(parents=True, exist_ok=True)
    return out


def default_out_dir(cfg: TrainConfig) -> Path:
    """``runs/TASK_RULE_seedN`` (characters unsafe in a path replaced)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{cfg.task}_{cfg.rule}_seed{cfg.seed}").strip("-")
    return Path("runs") / name


def filter_summary(net: SNN) -> list[dict[str, Any]]:
    """Learned α, β, λ per layer (lists for per-channel values)."""
    return [{name: getattr(layer, name).detach().cpu().flatten().tolist() for name in ("alpha", "beta", "lam")}
            | {"layer": i} for i, layer in enumerate(net.layers)]


def write_run(out_dir: Path, net: SNN, cfg: TrainConfig, metrics: dict, history: list[dict], task) -> None:
    """Write the checkpoint, ``history.csv``, ``report.png`` and, last, ``metrics.json`` (a run is finished
    once its ``metrics.json`` exists)."""
    from .report import plot_run

    ckpt_config = {"train": cfg.to_dict(), "n_inputs": task.n_inputs, "n_classes": task.n_classes,
                   "task": task.name, "test_accuracy": metrics["test_accuracy"]}
    save_checkpoint(out_dir / "checkpoint.pt", {k: v.detach().cpu() for k, v in net.state_dict().items()}, ckpt_config)
    write_csv(out_dir / "history.csv", history)
    plot_run(out_dir / "report.png", net, history, task, metrics)
    write_json(out_dir / "metrics.json", metrics)


def finished_run(cfg: TrainConfig, run_dir: Path) -> dict[str, Any] | None:
    """The metrics of the finished run in ``run_dir`` if it was trained with exactly ``cfg``; None if the
    folder holds no finished run; a ``ValueError`` if it holds one trained with other settings."""
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        return None
    try:
        metrics = json.loads(metrics_file.read_text())
        # options added since the run was written take their defaults
        stored = TrainConfig.from_dict(metrics.get("config", {})).to_dict()
    except (ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{metrics_file} cannot be read as a finished run: {err}") from err
    wanted = json.loads(json.dumps(cfg.to_dict()))
    stored = json.loads(json.dumps(stored))
    if stored != wanted:
        changed = sorted(k for k in wanted if stored.get(k) != wanted[k])
        raise ValueError(f"{run_dir} holds a finished run with other settings ({', '.join(changed)}); "
                         "resume with the same options or choose a new out folder")
    return metrics
