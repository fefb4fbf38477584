"""Every rule on a GPU (skipped where there is none; nothing on the CPU path needs CUDA)."""

import pytest
import torch

from solsa.config import TrainConfig
from solsa.factories import build_network, build_rule
from solsa.rules import RULES
from solsa.training import train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@cuda
@pytest.mark.parametrize("name", list(RULES))
def test_every_rule_steps_on_cuda_and_matches_the_cpu(name):
    cfg = TrainConfig(rule=name, hidden=(6,), dtype="float64", alpha=0.3)
    grads = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        net = build_network(cfg, 4, 3).to(device)
        rule = build_rule(cfg, net)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(12, 3, 4, generator=g, dtype=torch.float64).to(device)
        rule.sequence(x, torch.randint(0, 3, (3,), generator=g).to(device))
        if device == "cuda":
            assert rule.active_backend == "reference"  # the fused CPU kernel steps aside
        grads.append(torch.cat([p.grad.flatten().cpu() for p in net.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-8, atol=1e-10)


@cuda
def test_train_on_cuda(npz_task, tmp_path):
    m = train(TrainConfig(task=npz_task, hidden=(8,), epochs=2, batch_size=8, device="cuda"), tmp_path / "run",
              progress=False, log=None)
    assert m["backend"] == "reference" and "CPU only" in m["backend_note"]
