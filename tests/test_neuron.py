"""The single-step function against values computed by hand (spike, reset, decay)."""

import pytest
import torch

from solsa.functional import LIFConfig, LIFParams, LIFState, lif_step

D = torch.float64


def one_neuron(reset, alpha=0.5, beta=2.0, lam=0.5, w=1.0, b=0.0):
    p = LIFParams(torch.tensor([[w]], dtype=D), torch.tensor([b], dtype=D), torch.tensor(alpha, dtype=D),
                  torch.tensor(beta, dtype=D), torch.tensor(lam, dtype=D))
    cfg = LIFConfig(threshold=1.0, reset_amount=1.0, reset=reset)
    return p, cfg


def run(p, cfg, xs):
    s = LIFState(torch.zeros(1, 1, dtype=D), torch.zeros(1, 1, dtype=D), torch.zeros(1, 1, dtype=D))
    out = []
    for x in xs:
        s = lif_step(torch.tensor([[x]], dtype=D), s, p, cfg)
        out.append((s.F.item(), s.V.item(), s.o.item()))
    return out


# Input 1, 0, 0, 0 with α=0.5, β=2, λ=0.5, W=1:
# F: 2, 1, 0.5, 0.25
# subtract: V1 = 2 -> spike; V2 = 0.5*2 + 1 - 1 = 1.0 (not > 1, no spike); V3 = 0.5 + 0.5 = 1.0; V4 = 0.5 + 0.25 = 0.75
# zero:     V1 = 2 -> spike; V2 = 0 + 1 = 1.0; V3 = 0.5 + 0.5 = 1.0; V4 = 0.75
# none:     V1 = 2 -> spike; V2 = 1 + 1 = 2 -> spike; V3 = 1 + 0.5 = 1.5 -> spike; V4 = 0.75 + 0.25 = 1.0
EXPECTED = {
    "subtract": [(2, 2.0, 1), (1, 1.0, 0), (0.5, 1.0, 0), (0.25, 0.75, 0)],
    "zero": [(2, 2.0, 1), (1, 1.0, 0), (0.5, 1.0, 0), (0.25, 0.75, 0)],
    "none": [(2, 2.0, 1), (1, 2.0, 1), (0.5, 1.5, 1), (0.25, 1.0, 0)],
}


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_step_by_hand(reset):
    p, cfg = one_neuron(reset)
    got = run(p, cfg, [1.0, 0.0, 0.0, 0.0])
    for (F, V, o), (eF, eV, eo) in zip(got, EXPECTED[reset]):
        assert F == pytest.approx(eF) and V == pytest.approx(eV) and o == eo


def test_subtract_and_zero_differ_with_residual():
    # a big input leaves a residual above threshold: subtract keeps it, zero discards it
    p, _ = one_neuron("subtract", alpha=0.0, beta=1.0, lam=0.5)
    sub = run(p, LIFConfig(reset="subtract"), [3.0, 0.0])
    zero = run(p, LIFConfig(reset="zero"), [3.0, 0.0])
    assert sub[1][1] == pytest.approx(0.5 * 3.0 - 1.0)  # 0.5
    assert zero[1][1] == pytest.approx(0.0)


def test_bias_and_reset_amount():
    p = LIFParams(torch.tensor([[1.0]], dtype=D), torch.tensor([0.3], dtype=D), torch.tensor(0.0, dtype=D),
                  torch.tensor(1.0, dtype=D), torch.tensor(0.0, dtype=D))
    cfg = LIFConfig(threshold=1.0, reset_amount=0.4, reset="subtract")
    got = run(p, cfg, [1.0, 1.0])
    assert got[0][1] == pytest.approx(1.3) and got[0][2] == 1
    assert got[1][1] == pytest.approx(0.0 + 1.0 + 0.3 - 0.4)


def test_readout_is_leaky_integrator():
    p, _ = one_neuron("none", alpha=0.0, beta=1.0, lam=0.25)
    cfg = LIFConfig(spiking=False)
    got = run(p, cfg, [4.0, 0.0, 0.0])
    assert [v for _, v, _ in got] == pytest.approx([4.0, 1.0, 0.25])
    assert [o for _, _, o in got] == pytest.approx([4.0, 1.0, 0.25])  # output is V, no threshold, no reset
