"""Subprocess of ``solsa bench memory``: train ONE sequence in a fresh process and report its memory.

Run as ``python -m solsa.bench._memory_worker '<json job>'``; prints one JSON line.

Measurement: build the network and rule, allocate the input, then train a short
warm-up sequence twice (loads every library and fills the allocator's pools).
The baseline is the resident set size after that; the peak high-water mark is
then reset (``/proc/self/clear_refs`` ``5``, Linux ≥ 4.0) so that the peak read
after the measured sequence is that sequence's own. Without ``clear_refs`` the
peak since process start (``ru_maxrss``) is used and the baseline is the peak
after warm-up. The measured loop keeps no outputs, only the training state.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run(job: dict) -> dict:
    import torch

    from .common import NetSpec, build_learner, make_batch, train_one_sequence

    torch.set_num_threads(int(job.get("threads", 1)))
    spec = NetSpec(**job["net"])
    learner = build_learner(job["rule"], spec, seed=job.get("seed", 0))
    T, B = int(job["T"]), int(job["batch"])
    x, y, _ = make_batch(T, B, spec, seed=job.get("seed", 0))
    warm = min(int(job.get("warmup_T", 10)), T)
    for _ in range(2):
        train_one_sequence(learner, x[:warm], y)
    gc.collect()
    cleared = _reset_peak()
    base_kib = _status_kib("VmRSS") if cleared else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    loss = train_one_sequence(learner, x, y)
    seconds = time.perf_counter() - t0
    peak_kib = _status_kib("VmHWM") if cleared else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "rule": job["rule"],
        "T": T,
        "batch": B,
        "train_state_bytes": int(learner.rule.train_state_bytes()),
        "peak_rss_delta_bytes": max(0, int(peak_kib) - int(base_kib)) * 1024,
        "baseline_rss_bytes": int(base_kib) * 1024,
        "rss_method": "VmHWM after clear_refs" if cleared else "ru_maxrss",
        "backend": learner.rule.active_backend,
        "seconds": seconds,
        "loss": loss,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    result = run(json.loads(argv[0]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
