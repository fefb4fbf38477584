"""Scratch sweep: SOLSA on validation, candidates x sets x seeds (run_accuracy, no reference)."""
import json, sys, time
from solsa.config import TrainConfig
from solsa.bench.accuracy import run_accuracy
CANDS = {
 "default": {},
 "direct": {"encoder": "direct"},
 "bank4": {"encoder": "bank", "task_options": {"n_per_channel": 4}},
 "bank8": {"encoder": "bank", "task_options": {"n_per_channel": 8}},
 "bank8_tau64": {"encoder": "bank", "task_options": {"n_per_channel": 8, "tau_max": 64.0}},
 "slowalpha": {"alpha": 0.8, "beta": 1.7},
 "bank4_slow": {"encoder": "bank", "task_options": {"n_per_channel": 4}, "alpha": 0.8, "beta": 1.7},
 "bank8_last": {"encoder": "bank", "task_options": {"n_per_channel": 8}, "readout_score": "last"},
 "bank8_b8": {"encoder": "bank", "task_options": {"n_per_channel": 8}, "batch_size": 8},
 "bank8_max": {"encoder": "bank", "task_options": {"n_per_channel": 8}, "readout_score": "max"},
}
sets = sys.argv[1].split(","); epochs = int(sys.argv[2]); seeds = [int(s) for s in sys.argv[3].split(",")]
pool = sys.argv[4] if len(sys.argv) > 4 else ""
names = sys.argv[5].split(",") if len(sys.argv) > 5 else list(CANDS)
for name in names:
    c = dict(CANDS[name]); opts = dict(c.pop("task_options", {}))
    if pool: opts["max_steps"] = "none" if pool == "full" else int(pool)
    base = TrainConfig(epochs=epochs, task_options=opts, **c)
    t0 = time.time()
    tag = f"{name}_p{pool or 'none'}_e{epochs}"
    r = run_accuracy(base, f"/tmp/ser/runs/{tag}", sets=sets, rules=["solsa"], seeds=seeds, reference=None)
    vals = {row["set"]: row["rules"]["solsa"]["val_accuracy_mean"] for row in r["rows"]}
    tests = {row["set"]: row["rules"]["solsa"]["test_accuracy_mean"] for row in r["rows"]}
    line = {"cand": tag, "val": vals, "mean_val": sum(vals.values())/len(vals), "sec": round(time.time()-t0)}
    print(json.dumps(line), flush=True)
    open("/tmp/ser/results.jsonl", "a").write(json.dumps(line) + "\n")
