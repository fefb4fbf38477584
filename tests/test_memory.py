"""Training memory: SOLSA's state does not grow with T; BPTT's saved tensors do."""

import torch

from solsa import SNN
from solsa.rules import BPTT, SOLSA


def state_bytes(rule_cls, T):
    torch.manual_seed(0)
    net = SNN(12, [32, 32], 9, alpha=0.5)
    x = (torch.rand(T, 4, 12) < 0.3).float()
    rule = rule_cls(net, "mse")
    rule.sequence(x, torch.randint(0, 9, (4,)))
    return rule.train_state_bytes()


def test_solsa_memory_independent_of_T():
    short, long = state_bytes(SOLSA, 10), state_bytes(SOLSA, 1000)
    assert short == long > 0
    # the W traces alone: B * Σ N_out N_in floats
    assert short >= 4 * (32 * 12 + 32 * 32 + 9 * 32) * 4


def test_bptt_saved_tensors_grow_with_T():
    short, long = state_bytes(BPTT, 10), state_bytes(BPTT, 1000)
    assert long > 50 * short  # linear in T (100x the steps)


def test_bptt_counts_saved_tensors_through_hooks():
    """The count is the bytes of the distinct storages autograd saved (parameters excluded)."""
    net = SNN(3, [], 2, alpha=0.5)
    rule = BPTT(net, "mse")
    rule.sequence(torch.ones(5, 1, 3), torch.tensor([0]))
    assert rule.train_state_bytes() > 0
