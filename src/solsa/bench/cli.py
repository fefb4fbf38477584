"""``solsa bench``: the command-line entry of the benchmarks (memory, workload, speed, stream, longrun, device).

Every sub-command writes a JSON result (``--out``) and a plot beside it (same
name, ``.png``), prints a short summary, and takes ``--quick`` for a smoke run
of a few seconds (tiny network, short sequences, few repeats).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..config import MODELS
from ..layers import FILTER_GRANULARITIES, READOUTS
from ..validation import check_choice, check_positive_int

__all__ = ["add_parser"]

QUICK_NET = {"inputs": 6, "hidden": (8,), "classes": 3}


def _log(quiet: bool):
    return (lambda s: None) if quiet else (lambda s: print(s, file=sys.stderr, flush=True))


def _common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--rules", default=None,
                   help="comma-separated rules, NAME or NAME@BACKEND (e.g. solsa@reference); "
                        "default: every non-ablation rule in `solsa rules`")
    p.add_argument("--hidden", default=None, help="hidden layer sizes (default 100,100)")
    p.add_argument("--inputs", type=int, default=None, help="input channels (default 12)")
    p.add_argument("--classes", type=int, default=None, help="classes / output neurons (default 9)")
    p.add_argument("--model", choices=MODELS, default="full",
                   help="full: every rule trains the SOLSA model (default); paper: each rule's own neuron model")
    p.add_argument("--readout", choices=READOUTS, default=None, help="default: the trainer's")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: at these sizes more threads only add OpenMP wake-up latency)")
    p.add_argument("--quick", action="store_true", help="smoke run in seconds (tiny sizes, few repeats)")
    p.add_argument("--out", default=out, help=f"JSON result; the plot goes beside it (default {out})")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _spec(args, granularity: str = "layer"):
    from ..config import parse_hidden
    from .common import NetSpec

    net: dict[str, Any] = dict(QUICK_NET) if args.quick else {}
    if args.hidden is not None:
        net["hidden"] = parse_hidden(args.hidden)
    if args.inputs is not None:
        net["inputs"] = args.inputs
    if args.classes is not None:
        net["classes"] = args.classes
    return NetSpec(filter_granularity=granularity, model=args.model, readout=args.readout, **net)


def _finish(args, result: dict, plot) -> int:
    from .common import write_result

    result["options"] = {k: v for k, v in vars(args).items() if k != "func"}
    path = write_result(args.out, result)
    msg = f"wrote {path}"
    if not args.no_plot:
        png = plot(result, Path(args.out).with_suffix(".png"))
        msg += f" and {png}"
    print(msg)
    return 0


def _threads(args) -> None:
    import torch

    torch.set_num_threads(check_positive_int("threads", args.threads))


# ---- memory -----------------------------------------------------------------------------------------------------

def _add_memory(bench) -> None:
    p = bench.add_parser("memory", help="train-state bytes and measured peak RSS against T, per rule")
    _common(p, "runs/bench/memory.json")
    p.add_argument("--T", default=None, help="sequence lengths (default 30,100,300,1000,3000,10000)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--filter-granularity", default="layer,channel",
                   help="layer, channel or both comma-separated (default both)")
    p.add_argument("--no-rss", action="store_true", help="exact accounting only, no subprocess measurement")
    p.add_argument("--jobs", type=int, default=1, help="measurement subprocesses run at once (default 1)")
    p.add_argument("--break-even-batches", default=None,
                   help="batch sizes of the break-even table (default 1,4,32,128)")
    p.add_argument("--break-even-hiddens", default=None,
                   help="more hidden widths (two layers, at --batch) for the break-even table (default 256,512; "
                        "'none' for none)")
    p.add_argument("--suite", default=None,
                   help="the default rule's bytes beside BPTT's for every task of this compare suite (default "
                        "paper; 'none' to skip; skipped by --quick unless given)")
    p.add_argument("--candidates", action="store_true",
                   help="also measure the storage candidates on the paper network at T=100 "
                        "(bytes, seconds, gradient against float64)")
    p.set_defaults(func=_run_memory)


def _run_memory(args) -> int:
    from .common import parse_ints, parse_rules
    from .memory import DEFAULT_T, plot_memory, run_memory

    _threads(args)
    grans = [g.strip() for g in args.filter_granularity.split(",") if g.strip()]
    for g in grans:
        check_choice("filter_granularity", g, FILTER_GRANULARITIES)
    Ts = parse_ints(args.T, "T") if args.T else ([5, 20] if args.quick else list(DEFAULT_T))
    be = parse_ints(args.break_even_batches, "break_even_batches") if args.break_even_batches else (
        [2] if args.quick else [1, 4, 32, 128])
    if args.break_even_hiddens is None:
        widths = [] if args.quick else [256, 512]
    elif args.break_even_hiddens.strip().lower() == "none":
        widths = []
    else:
        widths = parse_ints(args.break_even_hiddens, "break_even_hiddens")
    depth = len(_spec(args).hidden) or 1
    result = run_memory(parse_rules(args.rules), Ts, args.batch, _spec(args), grans, rss=not args.no_rss,
                        break_even_batches=be, break_even_hiddens=[(w,) * depth for w in widths],
                        jobs=max(1, args.jobs), log=_log(args.quiet))
    suite = args.suite or (None if args.quick else "paper")
    if suite and suite.lower() != "none":
        from ..compare import SUITES
        from .memory_default import suite_ratios

        check_choice("suite", suite, SUITES)
        result["suite"] = suite_ratios(suite, log=_log(args.quiet))
    if args.candidates:
        from .memory_default import storage_candidates

        result["candidates"] = storage_candidates(batch=args.batch, log=_log(args.quiet))
    _print_memory(result)
    return _finish(args, result, plot_memory)


def _print_memory(result: dict) -> None:
    print(f"{'granularity':<11} {'rule':<16} {'T':>6} {'train_state_bytes':>18} {'peak_rss_delta':>15}")
    for r in result["rows"]:
        print(f"{r['filter_granularity']:<11} {r['rule']:<16} {r['T']:>6} {str(r.get('train_state_bytes')):>18} "
              f"{str(r.get('peak_rss_delta_bytes')):>15}" + (f"  error: {r['error']}" if r.get("error") else ""))
    for c in result["break_even"]:
        if c.get("break_even_T") is not None:
            print(f"break-even {c['rule']:<14} filter per {c['filter_granularity']:<7} batch {c['batch']:<4} "
                  f"hidden {'x'.join(map(str, c['hidden'])):<8}: "
                  f"{c['rule']} holds more than BPTT for T < {c['break_even_T']}")
    for gran, t in result["targets"].items():
        print(f"targets ({gran}): {t}")
    for r in result.get("suite", []):
        print(f"suite {r['task']:<24} T={r['T']:<4} batch {r['batch']:<3} filter per {r['filter_granularity']:<7} "
              f"solsa {r['solsa_bytes']:>10} bptt {r['bptt_bytes']:>10} ratio {r['ratio_to_bptt']:.3f}")
    for r in result.get("candidates", []):
        print(f"candidate {r['candidate']:<22} {r['train_state_bytes']:>9} bytes  {r['backend']:<9} "
              f"{r['seconds_per_sequence']:.3f} s/seq  cosine {r['cosine_to_float64']:.8f}  "
              f"max rel err {r['max_rel_error_to_float64']:.2e}")


# ---- workload ---------------------------------------------------------------------------------------------------

def _add_workload(bench) -> None:
    p = bench.add_parser("workload", help="time and operations per time step of a training sequence, per rule")
    _common(p, "runs/bench/workload.json")
    p.add_argument("--T", type=int, default=None, help="sequence length (default 100)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=None, help="repeats per rule (default 20)")
    p.add_argument("--no-ops", action="store_true", help="skip the operation count")
    p.set_defaults(func=_run_workload)


def _run_workload(args) -> int:
    from .common import parse_rules
    from .workload import plot_workload, run_workload

    _threads(args)
    T = args.T or (6 if args.quick else 100)
    repeats = args.repeats or (2 if args.quick else 20)
    check_positive_int("T", T)
    check_positive_int("repeats", repeats)
    result = run_workload(parse_rules(args.rules), T, args.batch, _spec(args), repeats, count_ops=not args.no_ops,
                          log=_log(args.quiet))
    print(f"{'rule':<16} {'backend':<10} {'mean step':>11} {'peak/mean t':>12} {'peak/mean ops':>14} {'latency':>10}")
    for e in result["rules"]:
        print(f"{e['rule']:<16} {e['backend']:<10} {e['mean_step_seconds'] * 1e6:>9.1f}us "
              f"{e['peak_to_mean_time']:>12.2f} {e.get('peak_to_mean_ops', float('nan')):>14.2f} "
              f"{e['latency_to_updated_weights_seconds']['median'] * 1e3:>8.2f}ms")
    return _finish(args, result, plot_workload)


# ---- speed ------------------------------------------------------------------------------------------------------

def _add_speed(bench) -> None:
    p = bench.add_parser("speed", help="throughput, streaming step latency and seconds per epoch, per rule")
    _common(p, "runs/bench/speed.json")
    p.add_argument("--batches", default=None, help="batch sizes of the throughput test (default 1,4,32)")
    p.add_argument("--hiddens", default=None,
                   help="hidden widths of the throughput test, one per network of two hidden layers (default 100,512)")
    p.add_argument("--T", type=int, default=None, help="sequence length of the throughput test (default 30)")
    p.add_argument("--repeats", type=int, default=None, help="repeats (default 5)")
    p.add_argument("--stream-steps", type=int, default=None, help="timed streaming steps per rule (default 2000)")
    p.add_argument("--epoch-rules", default="solsa,bptt,solsa@reference",
                   help="rules of the epoch test ('' to skip it)")
    p.add_argument("--epochs", type=int, default=None, help="timed epochs per rule (default 10)")
    p.add_argument("--epoch-task", default="uea:JapaneseVowels")
    p.add_argument("--epoch-threads", type=int, default=1)
    p.add_argument("--epoch-batches", type=int, default=None, help="stop each epoch after this many batches")
    p.set_defaults(func=_run_speed)


def _run_speed(args) -> int:
    from .common import parse_ints, parse_rules
    from .speed import plot_speed, run_speed

    _threads(args)
    q = args.quick
    rules = parse_rules(args.rules, extra=("solsa@reference",))
    batches = parse_ints(args.batches, "batches") if args.batches else ([1, 2] if q else [1, 4, 32])
    if args.hiddens:
        widths = parse_ints(args.hiddens, "hiddens")
        depth = len(_spec(args).hidden) or 1
        hiddens = [(w,) * depth for w in widths]
    else:
        hiddens = [_spec(args).hidden] if q else [(100, 100), (512, 512)]
    epoch_rules = parse_rules(args.epoch_rules) if args.epoch_rules.strip() else []
    result = run_speed(
        rules, batches, hiddens, T=args.T or (5 if q else 30), repeats=args.repeats or (1 if q else 5),
        spec=_spec(args), stream_steps=args.stream_steps or (20 if q else 2000), stream_block=10 if q else 100,
        stream_T=10 if q else 100, stream_hidden=_spec(args).hidden if (q or args.hidden) else (100, 100),
        epoch_rules=epoch_rules, epochs=args.epochs or (1 if q else 10), epoch_task=args.epoch_task or None,
        epoch_threads=args.epoch_threads, epoch_batches=args.epoch_batches or (2 if q else None),
        log=_log(args.quiet),
    )
    for r in result["streaming"]:
        print(f"streaming {r['rule']:<16} {r['backend']:<10} median {r['step_us']['median']:8.1f} us/step")
    for r in result.get("epoch", {}).get("rows", []):
        print(f"epoch     {r['rule']:<16} {r['backend']:<10} median {r['seconds_per_epoch']['median']:.3f} s")
    print(f"targets: {result['targets']}")
    return _finish(args, result, plot_speed)


# ---- peers: ms per batch beside braintrace ---------------------------------------------------------------------

def _add_peers(bench) -> None:
    p = bench.add_parser("peers", help="ms per training batch of solsa's BPTT and SOLSA beside braintrace's BPTT, "
                                      "ES-D-RTRL and D-RTRL (when installed), one thread")
    p.add_argument("--task", default="uea:JapaneseVowels")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--hidden", default="100,100", help="hidden layer sizes (default 100,100)")
    p.add_argument("--repeats", type=int, default=None, help="timed epochs (default 5)")
    p.add_argument("--max-batches", type=int, default=None, help="batches per epoch (default all)")
    p.add_argument("--no-peer", action="store_true", help="solsa's rows only, even when braintrace is installed")
    p.add_argument("--compiled", action="store_true",
                   help="add BPTT's backend=compiled row (compiles each length and layer shape first: minutes)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 batches, 1 timed epoch")
    p.add_argument("--out", default="runs/bench/peers.json", help="JSON result; the markdown table goes beside it")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_run_peers)


def _run_peers(args) -> int:
    from ..config import parse_hidden
    from .common import write_result
    from .peers import peers_markdown, run_peers
    from .peers_braintrace import single_thread_jax

    single_thread_jax()  # before anything imports jax
    result = run_peers(args.task, check_positive_int("batch", args.batch), parse_hidden(args.hidden),
                       repeats=check_positive_int("repeats", args.repeats or (1 if args.quick else 5)),
                       max_batches=args.max_batches or (2 if args.quick else None), peer=not args.no_peer,
                       compiled=args.compiled,
                       log=_log(args.quiet))
    text = peers_markdown(result)
    print(text, end="")
    result["options"] = {k: v for k, v in vars(args).items() if k != "func"}
    path = write_result(args.out, result)
    md = Path(args.out).with_suffix(".md")
    md.write_text(text, encoding="utf-8")
    print(f"wrote {path} and {md}")
    return 0


# ---- stream learner: facade cost, long run --------------------------------------------------------------------

def _stream_common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--hidden", default=None, help="hidden layer sizes (default 100,100: the paper's network)")
    p.add_argument("--inputs", type=int, default=None, help="input channels (default 12)")
    p.add_argument("--classes", type=int, default=None, help="classes / output neurons (default 9)")
    p.add_argument("--update-every", type=int, default=10, help="steps between updates (default 10)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--quick", action="store_true", help="smoke run in seconds (tiny network, few steps)")
    p.add_argument("--out", default=out, help=f"JSON result; the plot goes beside it (default {out})")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(model="full", readout=None)


def _add_stream(bench) -> None:
    p = bench.add_parser("stream", help="time per step of the stream learner (learn_one, river's loop) vs the "
                                       "rule's own step, batch 1")
    _stream_common(p, "runs/bench/stream.json")
    p.add_argument("--block", type=int, default=None, help="steps per timed block (default 100)")
    p.add_argument("--repeats", type=int, default=None, help="blocks per mode (default 30)")
    p.set_defaults(func=_run_stream)


def _run_stream(args) -> int:
    from .stream import plot_facade, run_facade

    _threads(args)
    result = run_facade(_spec(args), update_every=check_positive_int("update_every", args.update_every),
                        block=check_positive_int("block", args.block or (10 if args.quick else 100)),
                        repeats=check_positive_int("repeats", args.repeats or (2 if args.quick else 30)),
                        log=_log(args.quiet))
    for r in result["rows"]:
        print(f"{r['mode']:<30} median {r['step_us']['median']:8.1f} us/step  {r['ratio_to_rule']:5.2f}x the rule")
    print(f"targets: {result['targets']}")
    return _finish(args, result, plot_facade)


def _add_longrun(bench) -> None:
    p = bench.add_parser("longrun", help="one endless stream through the stream learner: steps/s, RSS, "
                                        "max |trace|, NaN/inf")
    _stream_common(p, "runs/bench/longrun.json")
    p.add_argument("--steps", type=int, default=None, help="stream steps (default 1,000,000)")
    p.add_argument("--segment", type=int, default=50, help="steps each label is held (default 50; no reset)")
    p.set_defaults(func=_run_longrun)


def _run_longrun(args) -> int:
    from .stream import plot_longrun, run_longrun

    _threads(args)
    steps = check_positive_int("steps", args.steps or (2000 if args.quick else 1_000_000))
    r = run_longrun(steps, _spec(args), update_every=check_positive_int("update_every", args.update_every),
                    segment=check_positive_int("segment", args.segment), log=_log(args.quiet))
    print(f"{r['steps']:,} steps in {r['seconds']:.1f} s: {r['steps_per_second']:,.0f} steps/s; RSS "
          f"{r['rss_start_bytes'] / 2**20:.1f} -> {r['rss_end_bytes'] / 2**20:.1f} MiB (max "
          f"{r['rss_max_bytes'] / 2**20:.1f}); max |trace| {r['max_abs_trace']:.4g}; max |param| "
          f"{r['max_abs_param']:.4g}; all finite: {r['all_finite']}")
    return _finish(args, r, plot_longrun)


def _add_device(bench) -> None:
    p = bench.add_parser("device", help="the exported C learner (solsa export --format c): steps/s, state bytes "
                                       "and flash/RAM, beside the PyTorch rule's batch-1 streaming step")
    p.add_argument("--hidden", default="100,100", help="hidden layer sizes (default 100,100)")
    p.add_argument("--inputs", type=int, default=12, help="input channels (default 12)")
    p.add_argument("--classes", type=int, default=9, help="classes / output neurons (default 9)")
    p.add_argument("--checkpoint", default=None, help="also the test accuracy of this checkpoint's network in "
                   "PyTorch, exported as float32 and as q15 (fixed point)")
    p.add_argument("--cflags", default="-O2", help="optimisation flags of the timed C program (default -O2; "
                   "the fused kernel is built with '-O3 -march=native')")
    p.add_argument("--quick", action="store_true", help="smoke run in seconds (tiny network, few repeats)")
    p.add_argument("--out", default="runs/bench/device.json", help="JSON result (default runs/bench/device.json)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_run_device)


def _run_device(args) -> int:
    from ..config import parse_hidden
    from .common import write_result
    from .device import run_device

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


# ---- accuracy on real series -------------------------------------------------------------------------------------

def _add_accuracy(bench) -> None:
    from ..cli_options import parse_task_option
    from .accuracy import ACCURACY_RULES, SERIES_SETS

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
    from ..config import TrainConfig, parse_hidden
    from .accuracy import minirocket, run_accuracy

    given: dict[str, Any] = {k: v for k, v in (("epochs", args.epochs), ("model", args.model),
                                                ("encoder", args.encoder)) if v is not None}
    if args.hidden is not None:
        given["hidden"] = parse_hidden(args.hidden)
    if args.task_options:
        given["task_options"] = dict(args.task_options)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    result = run_accuracy(TrainConfig(**given), args.out, sets=sets, rules=rules,
                          seeds=list(range(check_positive_int("seeds", args.seeds))),
                          reference=None if args.no_reference else minirocket, log=_log(args.quiet))
    print((Path(args.out) / "accuracy.md").read_text(), end="")
    print(f"wrote {Path(args.out) / 'accuracy.json'} and accuracy.md")
    return 0


def add_parser(sub) -> None:
    """Register ``solsa bench memory|workload|speed|peers|stream|longrun|device|accuracy`` on the ``solsa``
    sub-command parser."""
    p = sub.add_parser("bench", help="benchmarks: memory, workload, speed, peers, stream, longrun, device, accuracy")
    bench = p.add_subparsers(dest="bench", required=True)
    _add_memory(bench)
    _add_workload(bench)
    _add_speed(bench)
    _add_peers(bench)
    _add_stream(bench)
    _add_longrun(bench)
    _add_device(bench)
    _add_accuracy(bench)
