"""Data-parallel training: 2 gloo processes (as torchrun starts them) equal one process on the whole batch."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from solsa.distributed import DataParallel

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, out, world=1):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if world == 1:
        env.pop("WORLD_SIZE", None)
        return [subprocess.run([sys.executable, "-m", "solsa.cli", *args, "--out", str(out)], env=env,
                               capture_output=True, text=True, timeout=300)]
    port = str(_free_port())
    procs = []
    for rank in range(world):
        penv = {**env, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        procs.append(subprocess.Popen([sys.executable, "-m", "solsa.cli", *args, "--out", str(out)], env=penv,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return results


@pytest.mark.parametrize("rule,extra", [("solsa", ["--schedule", "every:4", "--early-stop", "true",
                                                   "--early-stop-warmup", "0", "--early-stop-rho", "0.6",
                                                   "--early-stop-p", "0.6"]),
                                        ("bptt", [])])
def test_two_gloo_processes_equal_one_process_on_the_combined_batch(npz_task, tmp_path, rule, extra):
    args = ["train", "--task", npz_task, "--rule", rule, "--hidden", "8", "--epochs", "3", "--batch-size", "7",
            "--dtype", "float64", "--quiet", *extra]  # 7 per batch: shards of 4 and 3 (+1 zero-weight pad)
    one, two = tmp_path / "one", tmp_path / "two"
    for res in _run(args, one) + _run(args, two, world=2):
        assert res.returncode == 0, res.stderr
    a = torch.load(one / "checkpoint.pt", weights_only=True)["state_dict"]
    b = torch.load(two / "checkpoint.pt", weights_only=True)["state_dict"]
    for k in a:
        assert (a[k] - b[k]).abs().max() <= 1e-6 * max(1.0, a[k].abs().max().item()), k
    ma, mb = (json.loads((f / "metrics.json").read_text()) for f in (one, two))
    assert mb["processes"] == 2 and ma["processes"] == 1
    for key in ("best_epoch", "val_accuracy", "test_accuracy", "update_steps", "steps_processed_fraction"):
        assert ma[key] == mb[key], key


def test_shards_cover_the_batch_once():
    n, world = 7, 3
    seen = []
    for rank in range(world):
        idx, valid = DataParallel(rank, world).shard(n)
        assert len(idx) == 3
        seen += idx[valid].tolist()
    assert sorted(seen) == list(range(n))
