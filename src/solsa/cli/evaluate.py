"""``solsa evaluate``: a checkpoint on its task (NeuroBench metrics on request)."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="test accuracy of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--task", help="task spec (default: the checkpoint's task)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.add_argument("--metrics", action="store_true",
                   help="also NeuroBench's metrics: activation sparsity, synaptic operations, footprint")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    from ..evaluation import evaluate_checkpoint

    r = evaluate_checkpoint(args.checkpoint, args.task, args.device)
    if args.metrics:
        from ..interop.neurobench import checkpoint_metrics, format_metrics

        r["neurobench"] = checkpoint_metrics(args.checkpoint, args.task, args.device)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{r['task']}: test accuracy {r['test_accuracy']:.4f} (recorded at training: {r['recorded_test_accuracy']})")
        if args.metrics:
            print(format_metrics(r["neurobench"]))
    return 0
