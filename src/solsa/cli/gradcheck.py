"""``solsa gradcheck``: each online rule's gradient against BPTT's, at float64."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    from ..functional import RESET_MODES
    from .options import parse_bool
    from ..functional import NEURONS
    from ..layers import ADAPT, FILTER_GRANULARITIES, LAM_GRANULARITIES, READOUTS, RHO
    from ..rules.credit import CREDIT_MODES, DEFAULT_CREDIT
    from ..rules.solsa import TRACE_DTYPES
    from ..surrogate import SURROGATES

    p = sub.add_parser("gradcheck", help="compare the SOLSA gradient with BPTT on a random network")
    p.add_argument("--layers", type=int, default=1, help="number of LIF layers, output layer included (default 1)")
    p.add_argument("--T", type=int, default=50, help="sequence length (default 50)")
    p.add_argument("--reset", default="subtract", choices=RESET_MODES)
    p.add_argument("--surrogate", default="gaussian", choices=list(SURROGATES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=0,
                   help="summarise seeds 0..N-1 (mean per-layer cosine, seeds with BPTT's sign); overrides --seed")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--hidden", type=int, default=20, help="width of each hidden layer (default 20)")
    p.add_argument("--readout", default="spike", choices=READOUTS)
    p.add_argument("--filter-granularity", default="layer", choices=FILTER_GRANULARITIES)
    p.add_argument("--lam-granularity", default="neuron", choices=LAM_GRANULARITIES,
                   help="one membrane decay per layer or per neuron, in every layer (default neuron)")
    p.add_argument("--credit", default=DEFAULT_CREDIT, choices=list(CREDIT_MODES),
                   help=f"SOLSA's cross-layer credit (docs/credit.md; default {DEFAULT_CREDIT}); "
                        "modes other than same-step print same-step's numbers beside")
    p.add_argument("--alpha", type=float, default=0.5, help="initial synaptic decay of every layer (default 0.5)")
    p.add_argument("--lam", type=float, default=0.7, help="membrane decay of every layer (default 0.7)")
    p.add_argument("--weight-scale", type=float, default=2.0, help="weight scale (default 2.0: every layer spikes)")
    p.add_argument("--neuron", default="lif", choices=NEURONS, help="lif or alif (adaptive threshold) in every "
                   "spiking layer (default lif)")
    p.add_argument("--adapt", type=float, default=ADAPT, help=f"ALIF threshold rise per spike (default {ADAPT})")
    p.add_argument("--rho", type=float, default=RHO, help=f"ALIF adaptation decay (default {RHO})")
    p.add_argument("--recurrent", type=parse_bool, default=False, metavar="BOOL",
                   help="recurrent weights in every spiking layer: SOLSA's traces are then truncated (default false)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--trace-dtype", default=None, choices=list(TRACE_DTYPES),
                   help="store SOLSA's [B, N_out, N_in] traces in this dtype (arithmetic in --dtype); prints the "
                        "error against full storage")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_gradcheck)


def _run_gradcheck(args) -> int:
    import torch

    from ..gradcheck import gradcheck, gradcheck_seeds

    options = dict(
        layers=args.layers, T=args.T, reset=args.reset, surrogate=args.surrogate,
        batch=args.batch, hidden=args.hidden, readout=args.readout, filter_granularity=args.filter_granularity,
        lam_granularity=args.lam_granularity, credit=args.credit, alpha=args.alpha, lam=args.lam,
        weight_scale=args.weight_scale, neuron=args.neuron, adapt=args.adapt, rho=args.rho, recurrent=args.recurrent,
        dtype=getattr(torch, args.dtype), trace_dtype=args.trace_dtype,
    )
    if args.seeds:
        report = gradcheck_seeds(args.seeds, **options)
        cos_key, sign_key, what = "per_layer_cosine_mean", "per_layer_sign_agreement", f"seeds 0..{args.seeds - 1}"
    else:
        report = gradcheck(seed=args.seed, **options)
        cos_key, sign_key, what = "per_layer_cosine", "per_layer_sign", f"seed {args.seed}"
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"SOLSA (credit={args.credit}) vs BPTT: {args.layers} layer(s), T={args.T}, reset={args.reset}, "
          f"surrogate={args.surrogate}, readout={args.readout}, neuron={args.neuron}, "
          f"recurrent={str(args.recurrent).lower()}, {report['dtype']}, {what}")
    print(f"spike rate per layer: {report.get('spike_rate_mean', report.get('spike_rate'))}")
    sign = (lambda v: f"{v:4.1f}/{args.seeds}") if args.seeds else (lambda v: f"{v:7.2f}")
    print(f"cosine: {'mean over seeds' if args.seeds else 'per layer'}; sign: "
          f"{'seeds with BPTT sign (tensors: summed fraction of entries)' if args.seeds else 'fraction of entries with BPTT sign'}")
    base = report.get("same_step")
    columns = [args.credit] + (["same-step"] if base else [])
    print(f"{'parameter':<10} {'layer':>5} {'max_rel_error':>13}" + "".join(f"   {c + ' cosine':>17} {'sign':>7}" for c in columns))
    for kind, err in report["max_rel_error"].items():
        for i, cos in enumerate(report[cos_key][kind]):
            line = f"{kind if i == 0 else '':<10} {i + 1:>5} {f'{err:.3e}' if i == 0 else '':>13}"
            line += f"   {cos:>17.4f} {sign(report[sign_key][kind][i]):>7}"
            if base:
                line += f"   {base[cos_key][kind][i]:>17.4f} {sign(base[sign_key][kind][i]):>7}"
            print(line)
    if "storage_rel_error" in report:
        print(f"trace_dtype {args.trace_dtype}: max relative error against full storage: "
              + ", ".join(f"{k} {v:.2e}" for k, v in report["storage_rel_error"].items()))
    return 0
