"""Prepare the worked example of docs/embedded.md: the network `solsa stream` starts from, as a checkpoint, and
the stream it learns, as a binary file the C program reads.

    python3 benchmarks/embedded/prepare.py OUT_DIR [solsa stream options, e.g. --optimizer sgd]

writes OUT_DIR/checkpoint.pt (the untrained network of `solsa stream` with these options: same seed, same
build) and OUT_DIR/stream.bin: int32 n_steps, int32 n_inputs, int32 bytes per value (4: float32, 8: float64,
the network's dtype, --dtype), then per step int32 starts-a-segment, int32 label, x[n_inputs] (the stream of
`solsa stream --task ...`, in its order, in the network's dtype).
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import torch

from solsa.cli.options import add_config_options, resolve_config
from solsa.factories import build_network
from solsa.io import save_checkpoint
from solsa.stream.sources import TaskStream


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    add_config_options(p)
    args = p.parse_args(argv)
    cfg, _ = resolve_config(args)
    source = TaskStream(cfg.task, seed=cfg.seed, encoder=cfg.encoder, **cfg.task_options)
    torch.manual_seed(cfg.seed)  # as solsa.stream.run._open builds the network
    net = build_network(cfg, source.n_inputs, len(source.classes))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "checkpoint.pt", {k: v.detach() for k, v in net.state_dict().items()},
                    {"train": cfg.to_dict(), "n_inputs": source.n_inputs, "n_classes": len(source.classes)})
    steps = list(source.steps())
    double = cfg.dtype == "float64"
    with open(out / "stream.bin", "wb") as f:
        f.write(struct.pack("<iii", len(steps), source.n_inputs, 8 if double else 4))
        for s in steps:
            f.write(struct.pack("<ii", int(s.start), int(s.label)))
            f.write(s.x.to(torch.float64 if double else torch.float32).numpy().astype("<f8" if double else "<f4")
                    .tobytes())
    print(f"wrote {out}/checkpoint.pt and {out}/stream.bin ({len(steps):,} steps of {source.name}); "
          f"lr {cfg.lr:g}, optimizer {cfg.optimizer}, dtype {cfg.dtype}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
