"""The analytic per-step loss gradients used by the online rules equal autograd's."""

import pytest
import torch

from solsa.losses import CrossEntropy, SpikeMSE

D = torch.float64


@pytest.mark.parametrize("loss", [SpikeMSE(), CrossEntropy()])
@pytest.mark.parametrize("dense", [False, True])
def test_grad_matches_autograd(loss, dense):
    y = torch.randn(5, 4, dtype=D, requires_grad=True)
    target = torch.randint(0, 4, (5,))
    if dense:
        target = torch.rand(5, 4, dtype=D).round()
    w = torch.rand(5, dtype=D)
    value = loss(y, target, w)
    (expected,) = torch.autograd.grad(value, y)
    v2, g = loss.grad(y.detach(), target, w)
    assert torch.allclose(v2, value.detach())
    assert torch.allclose(g, expected, rtol=1e-12, atol=1e-14)


def test_mse_is_zero_on_target():
    y = torch.tensor([[0.0, 1.0, 0.0]], dtype=D)
    assert SpikeMSE()(y, torch.tensor([1]), torch.ones(1, dtype=D)).item() == 0.0
