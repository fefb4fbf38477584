"""Compile an export with the system C compiler and drive it from Python (ctypes): tests and benchmarks;
:func:`export_accuracy`: a checkpoint's test accuracy through its export, fed as the device is."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from ..tasks.encoders import encoder_defaults

__all__ = ["C_FLAGS", "find_compiler", "compile_export", "CModel", "export_accuracy"]

C_FLAGS = ("-std=c99", "-Wall", "-Werror", "-O2")


def find_compiler() -> str | None:
    """The C compiler to use: ``$CC`` or ``cc`` when it is on the PATH; None when there is none."""
    return shutil.which(os.environ.get("CC", "cc"))


def compile_export(out_dir: str | Path, *, shared: bool = True, extra: tuple[str, ...] = ()) -> Path:
    """Compile ``out_dir/solsa_model.c`` with ``cc -std=c99 -Wall -Werror -O2``: a shared library
    (``libsolsa_model_HASH.so``) or, with ``shared=False``, an object file (``solsa_model.o``)."""
    cc = find_compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set $CC or install cc)")
    out_dir = Path(out_dir)
    source = out_dir / "solsa_model.c"
    # named by the source's hash: a process that loaded an earlier export of this folder gets the new one
    digest = hashlib.sha1(source.read_bytes()).hexdigest()[:12]
    target = out_dir / (f"libsolsa_model_{digest}.so" if shared else "solsa_model.o")
    cmd = [cc, *C_FLAGS, *extra, str(source), "-o", str(target)]
    cmd[-3:-3] = ["-shared", "-fPIC"] if shared else ["-c"]
    if shared:
        cmd.append("-lm")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return target


class CModel:
    """A compiled export, loaded with ctypes: one state, the calls of ``solsa_model.h``."""

    def __init__(self, out_dir: str | Path, library: str | Path | None = None) -> None:
        out_dir = Path(out_dir)
        self.manifest = json.loads((out_dir / "solsa_model.json").read_text())
        lib = ctypes.CDLL(str(library or compile_export(out_dir)))
        double = self.manifest.get("dtype") == "float64"  # solsa_real is double (else float; q15: float edges)
        real = ctypes.c_double if double else ctypes.c_float
        self._np, self._size = (np.float64, 8) if double else (np.float32, 4)
        fp = ctypes.POINTER(real)
        lib.solsa_step.argtypes = [ctypes.c_void_p, fp, fp]
        lib.solsa_reset.argtypes = [ctypes.c_void_p]
        if self.manifest.get("dtype") != "q15":  # q15 has only solsa_reset and solsa_step (and solsa_output_q)
            lib.solsa_parameters.restype = fp
            lib.solsa_output.restype = fp
            lib.solsa_output.argtypes = [ctypes.c_void_p]
        if self.manifest["learn"]:
            lib.solsa_learn_step.argtypes = [ctypes.c_void_p, fp, ctypes.c_int]
            lib.solsa_learn_step.restype = ctypes.c_int
            lib.solsa_apply.argtypes = [ctypes.c_void_p, real]
            lib.solsa_init.argtypes = [ctypes.c_void_p]
        self.lib = lib
        self.n_inputs, self.n_outputs = self.manifest["n_inputs"], self.manifest["n_outputs"]
        self.state = (real * (self.manifest["bytes"]["state"] // self._size))()
        self._x = (real * self.n_inputs)()
        self._out = (real * self.n_outputs)()
        self.reset()

    def reset(self) -> None:
        """``solsa_reset``: a new sequence."""
        self.lib.solsa_reset(self.state)

    def _row(self, x) -> ctypes.Array:
        x = np.ascontiguousarray(x, dtype=self._np)
        if x.size != self.n_inputs:  # e.g. an encoded row given to an export that runs its encoder itself
            raise ValueError(f"a step takes {self.n_inputs} values (solsa_model.json: n_inputs), got {x.size}")
        ctypes.memmove(self._x, x.ctypes.data, self._size * self.n_inputs)
        return self._x

    def step(self, x) -> np.ndarray:
        """``solsa_step``: the output [C] of one step on ``x`` [N_in]."""
        self.lib.solsa_step(self.state, self._row(x), self._out)
        return np.frombuffer(self._out, dtype=self._np).copy()

    def learn_step(self, x, target: int) -> np.ndarray:
        """``solsa_learn_step``; returns the step's output."""
        if self.lib.solsa_learn_step(self.state, self._row(x), int(target)) != 0:
            raise ValueError(f"target must be < {self.n_outputs}, got {target}")
        return self.output()

    def apply(self, lr: float) -> None:
        self.lib.solsa_apply(self.state, lr)

    def output(self) -> np.ndarray:
        return np.ctypeslib.as_array(self.lib.solsa_output(self.state), (self.n_outputs,)).copy()

    def array(self, name: str) -> np.ndarray:
        """A copy of one named array of the state (``V0``, ``e1``, ``gW2``, ...)."""
        off, size, _ = self.manifest["state"][name]
        return np.frombuffer(self.state, dtype=self._np, count=size, offset=self._size * off).copy()

    def parameters(self) -> dict[str, torch.Tensor]:
        """The current parameters by their layout name (``W0``, ``b0``, ``alpha0``, ...), flat tensors."""
        total = sum(size for _, size in self.manifest["params"].values())
        flat = np.ctypeslib.as_array(self.lib.solsa_parameters(), (total,)).copy()
        return {k: torch.from_numpy(flat[off:off + size]) for k, (off, size) in self.manifest["params"].items()}


def export_accuracy(checkpoint: str | Path, out_dir: str | Path, limit: int | None = None) -> dict:
    """Test accuracy of a checkpoint's network in PyTorch (fed its task's encoded series) and through its float32
    inference export (written to ``out_dir``, fed what the device is fed: the samples the task's loader hands its
    encoder, i.e. the task loaded with ``encoder="direct"``: pooled and normalised, raw for a ``delay`` run),
    each series from ``solsa_reset``; ``limit``: the first that many test series only."""
    from ..evaluation import checkpoint_task
    from ..tasks import load_task
    from . import export_checkpoint

    net, cfg, _, task = checkpoint_task(checkpoint)
    m = export_checkpoint(checkpoint, out_dir)
    fed = task
    if m["input"]["encoder"] != "direct":
        encoders = {m["input"]["encoder"], cfg.encoder or m["input"]["encoder"]}  # linear: and its base's
        fed = load_task(cfg.task, seed=cfg.seed, encoder="direct", val_fraction=cfg.val_fraction, **{
            k: v for k, v in cfg.task_options.items() if not any(k in encoder_defaults(e) for e in encoders)})
    cm = CModel(out_dir)
    n = len(task.test) if limit is None else min(limit, len(task.test))
    right = {"torch": 0, "c": 0}
    same, worst = 0, 0.0
    for b in range(n):
        steps = int(task.test.lengths[b])
        with torch.no_grad():
            y_t = net(task.test.x[:steps, b:b + 1].to(net.layers[0].weight.dtype))
        cm.reset()
        y_c = torch.from_numpy(np.stack([cm.step(row.numpy()) for row in fed.test.x[:steps, b]]))[:, None]
        worst = max(worst, float((y_c.to(y_t.dtype) - y_t).abs().max()))
        p_t, p_c = int(net.scores(y_t).argmax(-1)), int(net.scores(y_c.to(y_t.dtype)).argmax(-1))
        right["torch"] += int(p_t == int(task.test.y[b]))
        right["c"] += int(p_c == int(task.test.y[b]))
        same += int(p_t == p_c)
    return {"series": n, "torch_accuracy": right["torch"] / max(n, 1), "c_accuracy": right["c"] / max(n, 1),
            "same_class": same, "max_output_difference": worst, "encoder": m["input"]["encoder"]}
