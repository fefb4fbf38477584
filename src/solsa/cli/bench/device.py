"""``solsa bench device`` (the exported C model on this machine) and ``solsa bench accuracy`` (real series)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ...config import MODELS
from ...validation import check_positive_int
from .common import _log, _threads



def _add_device(bench) -> None:
    p = bench.add_parser("device", help="the exported C learner (solsa export --format c): steps/s, state bytes "
                                       "and flash/RAM, beside the PyTorch rule's batch-1 streaming step")
    p.add_argument("--hidden", default="100,100", help="hidden layer sizes (default 100,100)")
    p.add_argument("--inputs", type=int, default=12, help="input channels (default 12)")
    p.add_argument("--classes", type=int, default=9, help="classes / output neurons (default 9)")
    p.add_argument("--checkpoint", default=None, help="also the test accuracy of this checkpoint's network in "
                   "PyTorch, exported as float32 and as q15 (fixed point)")
    p.add_argument("--cflags", default="-O3 -march=native", help="optimisation flags of the timed C program "
                   "(default '-O3 -march=native', those of PyTorch's fused kernel)")
    p.add_argument("--quick", action="store_true", help="smoke run in seconds (tiny network, few repeats)")
    p.add_argument("--out", default="runs/bench/device.json", help="JSON result (default runs/bench/device.json)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_run_device)


def _run_device(args) -> int:
    from ...config import parse_hidden
    from ...bench.common import write_result
    from ...bench.device import run_device

    _threads(argparse.Namespace(threads=1))
    hidden = (8,) if args.quick else parse_hidden(args.hidden)
    r = run_device(hidden, check_positive_int("inputs", args.inputs), check_positive_int("classes", args.classes),
                   block=20 if args.quick else 200, repeats=3 if args.quick else 15, checkpoint=args.checkpoint,
                   cflags=tuple(args.cflags.split()), log=_log(args.quiet))
    us = r["step_us"]
    print(f"network {r['network']}, SOLSA credit {r['credit']}, batch 1 (PyTorch backend {r['torch_backend']}; "
          f"C built with {' '.join(r['cflags'])})")
    print(f"{'':<34}{'us/step':>10}{'steps/s':>12}")
    for key, label in (("c_learn_step", "C solsa_learn_step"), ("torch_step", "PyTorch rule.step"),
                       ("c_learn_step_apply", "C learn_step + apply (SGD)"),
                       ("torch_step_update", "PyTorch step + update (SGD)")):
        print(f"{label:<34}{us[key]:>10.1f}{r['steps_per_second'][key]:>12,.0f}")
    ratio = r["ratio_c_to_torch"]
    print(f"C / PyTorch: {ratio['step']:.3f} (step), {ratio['step_with_update']:.3f} (with update); target "
          f"<= {r['target_ratio']}: {'met' if r['meets_target'] else 'MISSED'}")
    for kind, f in r["footprint"].items():
        b = f["state_bytes"]
        line = (f"{kind:<10} params {b['params']:,} B, state {b['state']:,} B (traces {b['traces']:,}, "
                f"accumulators {b['grads']:,}, scratch {b['work']:,})")
        if "flash_bytes" in f:
            line += f"; flash {f['flash_bytes']:,} B, RAM {f['ram_bytes']:,} B"
        print(line)
    print(f"train_state_bytes() of the PyTorch rule at batch 1: {r['train_state_bytes']:,}")
    q = r["q15"]
    if q is not None:
        print(f"{q['task']} test accuracy ({q['series']} series): PyTorch {q['torch_accuracy']:.4f}, C float32 "
              f"{q['float32_accuracy']:.4f}, C q15 {q['q15_accuracy']:.4f} ({q['q15_loss_points']:+.2f} points lost; "
              f"parameters {q['float32_param_bytes']:,} -> {q['q15_param_bytes']:,} B)")
    r["options"] = {k: v for k, v in vars(args).items() if k != "func"}
    print(f"wrote {write_result(args.out, r)}")
    return 0


# ---- accuracy on real series -------------------------------------------------------------------------------------

def _add_accuracy(bench) -> None:
    from ..options import parse_task_option
    from ...bench.accuracy import ACCURACY_RULES, SERIES_SETS

    p = bench.add_parser("accuracy", help="test accuracy of the rules on real UEA/UCR series beside MiniRocket "
                                         "(same split), the majority-class rate and s/epoch")
    p.add_argument("--sets", default=",".join(SERIES_SETS), help=f"UEA/UCR sets (default {','.join(SERIES_SETS)})")
    p.add_argument("--rules", default=",".join(ACCURACY_RULES), help=f"default {','.join(ACCURACY_RULES)}")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--epochs", type=int, default=None, help="default: the trainer's")
    p.add_argument("--hidden", default=None, help="hidden layer sizes (default: the trainer's)")
    p.add_argument("--model", choices=MODELS, default=None, help="default: the trainer's (every rule on the full model)")
    p.add_argument("--encoder", default=None, help="input encoder (default: the task's), see `solsa tasks`")
    p.add_argument("--task-option", dest="task_options", action="append", default=[], metavar="KEY=VALUE",
                   type=parse_task_option, help="task or encoder option, e.g. normalize=series (repeatable)")
    p.add_argument("--no-reference", action="store_true", help="skip MiniRocket")
    p.add_argument("--out", default="runs/bench/accuracy", help="folder: accuracy.json, accuracy.md and the runs")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_run_accuracy)


def _run_accuracy(args) -> int:
    from ...config import TrainConfig, parse_hidden
    from ...bench.accuracy import minirocket, run_accuracy

    given: dict[str, Any] = {k: v for k, v in (("epochs", args.epochs), ("model", args.model),
                                                ("encoder", args.encoder)) if v is not None}
    if args.hidden is not None:
        given["hidden"] = parse_hidden(args.hidden)
    if args.task_options:
        given["task_options"] = dict(args.task_options)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    run_accuracy(TrainConfig(**given), args.out, sets=sets, rules=rules,
                          seeds=list(range(check_positive_int("seeds", args.seeds))),
                          reference=None if args.no_reference else minirocket, log=_log(args.quiet))
    print((Path(args.out) / "accuracy.md").read_text(), end="")
    print(f"wrote {Path(args.out) / 'accuracy.json'} and accuracy.md")
    return 0
