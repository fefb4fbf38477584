"""``solsa bench device``: the exported C learner (solsa.export_c) on this machine, beside the PyTorch rule.

On the same network (default: the main job's, 12-100-100-9, SOLSA with its default credit), batch 1:

* time per step of the C learner, timed inside C (``clock()``, CPU time) by a small benchmark program compiled
  with ``cc -std=c99`` and ``cflags`` (default ``-O3 -march=native``, the flags of the fused kernel):
  ``solsa_learn_step`` alone, and with ``solsa_apply`` after every step;
* time per step of the PyTorch rule's streaming step (``rule.step`` with a target; with
  :meth:`Learner.update` after every step, plain SGD), on its default backend, in CPU time as well
  (``time.process_time``): on a shared machine, time spent waiting for a core counts on neither side;
* with a checkpoint (:func:`q15_accuracy`): test accuracy of its network in PyTorch, exported as float32 and
  exported as q15 (fixed point), each series run from rest through the compiled library;
* bytes: the C state by part (traces = ``train_state_bytes()``), and flash/RAM of the compiled object
  (``size``: text + data in flash; data + the state in RAM), for the learner and for inference alone.

The modes take turns, ``repeats`` rounds of one block of ``block`` steps each (after a warm-up block); the
median block's time per step is reported and the C/PyTorch ratios are compared in this one run (never
against a stored number).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import TrainConfig
from ..export_c import export_c, learner_spec
from ..export_c.native import C_FLAGS, compile_export, find_compiler
from ..factories import build_network, parameter_groups
from ..learner import Learner
from ..rules import SOLSA
from .common import machine_info

__all__ = ["run_device", "q15_accuracy", "TARGET_RATIO"]

TARGET_RATIO = 0.5  # the bound: C step / PyTorch batch-1 streaming step

_MAIN = r"""
#include <stdio.h>
#include <time.h>
#include "solsa_model.h"
static solsa_state st;
static float xs[%(block)d][SOLSA_N_INPUTS];
static int ys[%(block)d];
int main(void) {
    unsigned long r = 12345u;
    int b, t, k, mode;
    for (t = 0; t < %(block)d; ++t) {
        for (k = 0; k < SOLSA_N_INPUTS; ++k) {
            r = r * 1103515245u + 12345u;
            xs[t][k] = (float)((r >> 8) %% 20001u) / 10000.0f - 1.0f;
        }
        ys[t] = (int)((r >> 4) %% (unsigned long)SOLSA_N_OUTPUTS);
    }
    solsa_init(&st);
    solsa_reset(&st);
    printf("{");
    for (mode = 0; mode < 2; ++mode) {
        printf("%%s\"%%s\": [", mode ? ", " : "", mode ? "learn_step+apply" : "learn_step");
        for (t = 0; t < %(block)d; ++t) solsa_learn_step(&st, xs[t], ys[t]); /* warm-up, untimed */
        for (b = 0; b < %(repeats)d; ++b) {
            clock_t c0 = clock();
            for (t = 0; t < %(block)d; ++t) {
                solsa_learn_step(&st, xs[t], ys[t]);
                if (mode) solsa_apply(&st, 1e-4f);
            }
            printf("%%s%%.9g", b ? ", " : "", (double)(clock() - c0) / CLOCKS_PER_SEC / %(block)d);
        }
        printf("]");
    }
    printf("}\n");
    return 0;
}
"""


def _c_program(out_dir: Path, block: int, cflags: tuple[str, ...]) -> Path:
    """The timing program: one warm-up block then one timed block per mode, printed as JSON."""
    main = out_dir / "bench_main.c"
    main.write_text(_MAIN % {"block": block, "repeats": 1})
    exe = out_dir / "bench_main"
    cmd = [find_compiler(), *C_FLAGS[:-1], *cflags, str(main), str(out_dir / "solsa_model.c"), "-o", str(exe), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return exe


def _torch_block(net, cfg: TrainConfig, block: int, update: bool) -> tuple[Callable[[], float], str]:
    """A function timing one block of the PyTorch rule's batch-1 step (after a warm-up block), and its backend."""
    spec = learner_spec(cfg)
    rule = SOLSA(net, spec.loss, credit=spec.credit)
    learner = Learner(rule, torch.optim.SGD(parameter_groups(net, 1e-4, cfg.filter_lr_scale, cfg.filter_update),
                                            lr=1e-4))
    rule.reset(1)
    gen = torch.Generator().manual_seed(0)
    rows = [r.reshape(1, -1).contiguous() for r in torch.rand(block, net.n_inputs, generator=gen) * 2 - 1]
    targets = [torch.tensor([int(y)]) for y in torch.randint(0, net.n_outputs, (block,), generator=gen)]

    def run() -> float:
        start = time.process_time()  # CPU time, as clock() in the C program
        for t in range(block):
            rule.step(rows[t], targets[t])
            if update:
                learner.update()
        return (time.process_time() - start) / block

    run()
    return run, rule.active_backend


def _sizes(obj: Path) -> dict[str, int] | None:
    """``size`` (Berkeley format) of an object file: text, data, bss; None without the tool."""
    tool = shutil.which("size")
    if tool is None:
        return None
    line = subprocess.run([tool, str(obj)], capture_output=True, text=True, check=True).stdout.splitlines()[1]
    text, data, bss = (int(v) for v in line.split()[:3])
    return {"text": text, "data": data, "bss": bss}


def _footprint(net, cfg: TrainConfig, where: Path, learn: bool) -> dict[str, Any]:
    m = export_c(net, where, learn=learn, spec=learner_spec(cfg) if learn else None)
    sizes = _sizes(compile_export(where, shared=False))
    row: dict[str, Any] = {"learn": learn, "state_bytes": m["bytes"], "object": sizes}
    if sizes is not None:
        row["flash_bytes"] = sizes["text"] + sizes["data"]
        row["ram_bytes"] = sizes["data"] + sizes["bss"] + m["bytes"]["state"]
    return row


def run_device(hidden: tuple[int, ...] = (100, 100), inputs: int = 12, classes: int = 9, *, block: int = 200,
               repeats: int = 15, checkpoint: str | Path | None = None,
               cflags: tuple[str, ...] = ("-O3", "-march=native"),
               log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Time and bytes of the exported learner against the PyTorch rule (see the module docstring)."""
    if find_compiler() is None:
        raise RuntimeError("solsa bench device needs a C compiler (set $CC or install cc)")
    cfg = TrainConfig(hidden=tuple(hidden))
    torch.manual_seed(cfg.seed)
    net = build_network(cfg, inputs, classes)
    rule = SOLSA(net, learner_spec(cfg).loss, credit=learner_spec(cfg).credit)
    rule.reset(1)
    train_state_bytes = rule.train_state_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        log("bytes: compiling the learner and the inference export")
        footprint = {"learner": _footprint(net, cfg, tmp / "learn", True),
                     "inference": _footprint(net, cfg, tmp / "infer", False)}
        exe = _c_program(tmp / "learn", block, tuple(cflags))
        step_block, backend = _torch_block(net, cfg, block, update=False)
        update_block, _ = _torch_block(net, cfg, block, update=True)
        log(f"timing: {repeats} rounds of one block per mode, taking turns")
        c: dict[str, list[float]] = {"learn_step": [], "learn_step+apply": []}
        torch_step, torch_update = [], []
        for _ in range(repeats):  # the modes take turns: a slow moment of a shared machine hits all alike
            done = json.loads(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout)
            for key, value in done.items():
                c[key] += value
            torch_step.append(step_block())
            torch_update.append(update_block())
    med = {"c_learn_step": statistics.median(c["learn_step"]), "c_learn_step_apply": statistics.median(c["learn_step+apply"]),
           "torch_step": statistics.median(torch_step), "torch_step_update": statistics.median(torch_update)}
    ratios = {"step": med["c_learn_step"] / med["torch_step"],
              "step_with_update": med["c_learn_step_apply"] / med["torch_step_update"]}
    return {
        "benchmark": "device", "network": f"{inputs}-{'-'.join(map(str, hidden))}-{classes}",
        "credit": learner_spec(cfg).credit, "torch_backend": backend, "cflags": list(cflags), "block": block, "repeats": repeats,
        "step_us": {k: 1e6 * v for k, v in med.items()},
        "steps_per_second": {k: 1.0 / v for k, v in med.items()},
        "ratio_c_to_torch": ratios, "target_ratio": TARGET_RATIO,
        "meets_target": all(r <= TARGET_RATIO for r in ratios.values()),
        "train_state_bytes": train_state_bytes, "footprint": footprint,
        "samples_s": {"c": c, "torch_step": torch_step, "torch_step_update": torch_update},
        "q15": q15_accuracy(checkpoint, log) if checkpoint is not None else None,
        "machine": machine_info(),
    }


def q15_accuracy(checkpoint: str | Path, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Test accuracy of a checkpoint's network: PyTorch, the float32 export and the q15 export (the same scores,
    ``net.scores``, over each test series run from rest)."""
    from ..evaluation import checkpoint_task
    from ..export_c import export_checkpoint
    from ..export_c.native import CModel

    net, cfg, _, task = checkpoint_task(checkpoint)
    split = task.test
    result: dict[str, Any] = {"checkpoint": str(checkpoint), "task": task.name, "series": len(split)}
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for dtype in ("float32", "q15"):
            m = export_checkpoint(checkpoint, Path(tmp) / dtype, dtype=dtype)
            models[dtype] = CModel(Path(tmp) / dtype)
            result[f"{dtype}_param_bytes"] = m["bytes"]["params"]
        log(f"running {len(split)} test series through PyTorch, the float32 and the q15 export")
        correct = {"torch": 0, "float32": 0, "q15": 0}
        for b in range(len(split)):
            x = split.x[: int(split.lengths[b]), b].to(torch.float32)
            with torch.no_grad():
                outs = {"torch": net(x.unsqueeze(1))}
            for dtype, cm in models.items():
                cm.reset()
                outs[dtype] = torch.from_numpy(np.stack([cm.step(row.numpy()) for row in x]))[:, None]
            for key, out in outs.items():
                correct[key] += int(net.scores(out).argmax(-1).item() == int(split.y[b]))
    for key, n in correct.items():
        result[f"{key}_accuracy"] = n / max(len(split), 1)
    result["q15_loss_points"] = 100 * (result["float32_accuracy"] - result["q15_accuracy"])
    return result
