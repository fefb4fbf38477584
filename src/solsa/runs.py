"""Run folders: where a run goes, what it writes, its lock, its resume state, and reuse of finished runs.

A finished run folder holds ``metrics.json``, ``history.csv``, ``checkpoint.pt`` and
``report.png``, each written atomically (:mod:`solsa.io`). While it trains it also
holds ``resume.pt`` — everything needed to continue after a crash, rewritten
atomically after every epoch — and ``.lock``, which one process holds at a time.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig
from .io import atomic_write, load_torch_file, make_folder, save_checkpoint, write_csv, write_json
from .layers import SNN
from .report import plot_run

__all__ = ["RunLock", "prepare_out_dir", "default_out_dir", "write_run", "finished_run",
           "RESUME_FILE", "save_resume", "load_resume", "unfinished_config"]

RUN_FILES = ("metrics.json", "history.csv", "checkpoint.pt", "report.png")
RESUME_FILE = "resume.pt"
# what a resume state holds (solsa.training writes it after every epoch)
RESUME_KEYS = ("config", "epoch", "net", "optimizer", "history", "best", "totals", "schedule", "rng")
LOCK_FILE = ".lock"


class RunLock:
    """An exclusive lock on a run folder (``fcntl.flock`` on ``FOLDER/.lock``), released when the holder
    exits however it exits — a killed process leaves no stale lock. A second process gets a
    ``RuntimeError`` naming the folder and the holder's process id, or with ``wait`` waits its turn.
    ``name``: another lock file in the folder (a lock on something else than the run, e.g. a database)."""

    def __init__(self, folder: Path, name: str = LOCK_FILE, *, wait: bool = False) -> None:
        self.path = Path(folder) / name
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, as before
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except OSError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RuntimeError(f"run folder {self.path.parent} is in use by another process ({holder}); "
                               "wait for it to finish or choose another out folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def prepare_out_dir(out: str | Path, force: bool, resume: bool = False) -> tuple[Path, RunLock]:
    """Create and lock the run folder; refuse to overwrite an existing run unless ``force``.

    Returns the folder and its held :class:`RunLock` (release it when the run ends). With ``resume``
    the folder must hold a run's ``resume.pt``.
    """
    out = make_folder(out, "out folder")
    lock = RunLock(out).acquire()
    try:
        held = [p for p in out.iterdir() if p.name != LOCK_FILE]
        if resume:
            if not (out / RESUME_FILE).is_file():
                done = " (its run is finished)" if (out / "metrics.json").is_file() else ""
                raise FileNotFoundError(f"{out / RESUME_FILE} does not exist: nothing to resume in {out}{done}")
        elif held and not force:
            hint = (f"; it holds an unfinished run: resume it (resume=True, --resume {out})"
                    if (out / RESUME_FILE).is_file() else "")
            raise FileExistsError(f"out folder {out} already holds a run; pass force=True (--force) to overwrite "
                                  f"it{hint}")
        elif force:
            for name in RUN_FILES + (RESUME_FILE,):
                (out / name).unlink(missing_ok=True)
    except BaseException:
        lock.release()
        raise
    return out, lock


def default_out_dir(cfg: TrainConfig) -> Path:
    """``runs/TASK_RULE_seedN`` (characters unsafe in a path replaced)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{cfg.task}_{cfg.rule}_seed{cfg.seed}").strip("-")
    return Path("runs") / name


def write_run(out_dir: Path, net: SNN, cfg: TrainConfig, metrics: dict, history: list[dict], task) -> None:
    """Write the checkpoint, ``history.csv``, ``report.png`` and, last, ``metrics.json`` (a run is finished
    once its ``metrics.json`` exists)."""
    ckpt_config = {"train": cfg.to_dict(), "n_inputs": task.n_inputs, "n_classes": task.n_classes,
                   "task": task.name, "encoder": task.info.get("encoder"), "test_accuracy": metrics["test_accuracy"],
                   "task_info": task.info}  # the encoder's options, T, pooling, normalisation: the C export reads them
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


def save_resume(out_dir: Path, state: dict[str, Any]) -> None:
    """Write the resume state atomically (tensors and plain data: loads with ``weights_only=True``)."""
    buf = io.BytesIO()
    torch.save({"format": "solsa-resume-1", **state}, buf)
    atomic_write(Path(out_dir) / RESUME_FILE, lambda f: f.write(buf.getvalue()), mode="wb")


def load_resume(out_dir: Path) -> dict[str, Any]:
    """The resume state of ``out_dir``; a ``ValueError`` naming the file when it is corrupted, not a resume
    state, or written by a version of solsa that stored other fields."""
    path = Path(out_dir) / RESUME_FILE
    try:
        state = load_torch_file(path, "solsa resume state", "solsa-resume-1")
    except ValueError as err:
        raise ValueError(f"{err}; start the run again with --force") from None
    missing = [key for key in RESUME_KEYS if key not in state]
    if missing:
        raise ValueError(f"resume file {path} lacks {', '.join(map(repr, missing))}: it was written by another "
                         "version of solsa; finish it with that version, or start the run again with --force")
    return state


def unfinished_config(run_dir: Path) -> dict[str, Any] | None:
    """The config of the unfinished run in ``run_dir`` (None if there is none, or it cannot be read)."""
    if not (Path(run_dir) / RESUME_FILE).is_file() or (Path(run_dir) / "metrics.json").is_file():
        return None
    try:
        return load_resume(run_dir)["config"]
    except ValueError:
        return None  # corrupted: the run starts again
