"""The fused kernel's fast entry points give the per-step results (float64): a stretch of steps in one call
(``solsa_sequence``, taken by the learner) equals the per-step fused path and the reference; the lean
streaming step (``quick_step``) gives the bits of the checked one."""

import itertools

import pytest
import torch

from solsa import SNN
from solsa.early_stop import EarlyStop
from solsa.fast import fused_available, fused_unavailable_reason
from solsa.learner import Learner
from solsa.losses import SpikeMSE
from solsa.rules import SOLSA

D = torch.float64
TOL = 1e-10
pytestmark = pytest.mark.skipif(not fused_available(), reason=f"fused kernel unavailable ({fused_unavailable_reason()})")


def _net(reset="subtract", readout="spike", hidden=(7, 6), seed=0) -> SNN:
    torch.manual_seed(seed)
    return SNN(5, list(hidden), 4, readout=readout, readout_lam=0.4, alpha=0.6, beta=1.2, lam=0.7, threshold=0.5,
               reset=reset, weight_scale=2.5, dtype=D)


def _data(T=14, B=3, kind="labels", seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, 5, generator=g, dtype=D) * 1.5
    if kind == "labels":
        y = torch.randint(0, 4, (B,), generator=g)
    elif kind == "per-step":
        y = torch.randint(0, 4, (T, B), generator=g)
    else:
        y = (torch.rand(T, B, 4, generator=g) < 0.3).to(D)
    mask = torch.ones(T, B, dtype=D)
    mask[9:, 1:] = 0  # padded: samples 1 and 2 are shorter
    mask[5:, 2:] = 0
    return x, y, mask


def _train(net, backend, credit, x, y, mask, per_step, points=None, early_stop=None, loss=None):
    """Two batches through the learner with SGD; returns outputs, losses, steps and the final parameters."""
    state = {k: v.clone() for k, v in net.state_dict().items()}
    rule = SOLSA(net, loss or ("ce" if net.readout == "leaky" else "mse"), backend=backend, credit=credit)
    learner = Learner(rule, torch.optim.SGD(net.parameters(), lr=0.1))
    on_step = (lambda t: None) if per_step else None  # asking for each step keeps the per-step loop
    runs = [learner.sequence(x, y, mask, points=points, early_stop=early_stop, on_step=on_step) for _ in range(2)]
    rule.reset(x.shape[1])
    params = {k: p.detach().clone() for k, p in net.named_parameters()}
    net.load_state_dict(state)
    return runs, params, rule


def _assert_close(a, b):
    runs_a, params_a, _ = a
    runs_b, params_b, _ = b
    for ra, rb in zip(runs_a, runs_b):
        assert (ra.steps, ra.updates, ra.state_bytes) == (rb.steps, rb.updates, rb.state_bytes)
        torch.testing.assert_close(ra.outputs, rb.outputs, atol=TOL, rtol=0)
        assert abs(float(ra.loss) - float(rb.loss)) <= TOL * max(1.0, abs(float(ra.loss)))
    for k in params_a:
        scale = max(1.0, params_a[k].abs().max().item())
        assert (params_a[k] - params_b[k]).abs().max().item() <= TOL * scale, k


CASES = list(itertools.product(["cascade", "next", "same-step"], ["spike", "leaky"], ["subtract", "zero", "none"]))


@pytest.mark.parametrize("credit,readout,reset", CASES)
def test_one_call_equals_per_step_and_reference(credit, readout, reset):
    net = _net(reset, readout)
    x, y, mask = _data(kind="per-step" if reset == "zero" else "labels")
    whole = _train(net, "fused", credit, x, y, mask, per_step=False)
    assert whole[2].active_backend == "fused"
    per_step = _train(net, "fused", credit, x, y, mask, per_step=True)
    for ra, rb in zip(whole[0], per_step[0]):  # the same compiled step in a loop: the same bits
        assert torch.equal(ra.outputs, rb.outputs)
    assert all(torch.equal(whole[1][k], per_step[1][k]) for k in whole[1])
    _assert_close(whole, _train(net, "reference", credit, x, y, mask, per_step=True))
    assert any((whole[1][k] - v).abs().max() > 1e-3 for k, v in net.named_parameters())  # it learned


@pytest.mark.parametrize("kind", ["labels", "per-step", "dense"])
def test_stretches_between_updates_and_targets(kind):
    """Updates every 4 steps run as stretches of 4 steps; labels, per-step labels and dense targets."""
    net = _net(hidden=(6, 5, 4))
    x, y, mask = _data(T=13, kind=kind)
    points = {3, 7, 11}  # the last step is not an update point: its gradient waits for the next one
    whole = _train(net, "fused", "cascade", x, y, mask, per_step=False, points=points)
    assert whole[0][0].updates == 3
    _assert_close(whole, _train(net, "fused", "cascade", x, y, mask, per_step=True, points=points))
    _assert_close(whole, _train(net, "reference", "cascade", x, y, mask, per_step=True, points=points))


def test_early_stop_keeps_its_semantics():
    net = _net()
    x, y, mask = _data(T=16)
    stop = EarlyStop(rho=0.0, p=0.0, h=2)  # stops at the second check: after step 7
    points = {3, 7, 11, 15}
    whole = _train(net, "fused", "cascade", x, y, mask, per_step=False, points=points, early_stop=stop)
    assert whole[0][0].steps == 8 and whole[0][0].updates == 2
    _assert_close(whole, _train(net, "fused", "cascade", x, y, mask, per_step=True, points=points, early_stop=stop))


def test_custom_loss_runs_step_by_step():
    class Scaled(SpikeMSE):  # not the built-in type: the kernel cannot evaluate it
        pass

    net = _net()
    x, y, mask = _data()
    whole = _train(net, "fused", "cascade", x, y, mask, per_step=False, loss=Scaled())
    _assert_close(whole, _train(net, "reference", "cascade", x, y, mask, per_step=True, loss=Scaled()))


def test_label_out_of_range_named():
    net = _net()
    rule = SOLSA(net, "mse", backend="fused")
    rule.reset(2)
    with pytest.raises(ValueError, match="class labels must be in"):
        rule.run_sequence(torch.zeros(4, 2, 5, dtype=D), torch.tensor([[0, 1]] * 3 + [[0, 9]]),
                          torch.ones(4, 2, dtype=D))


def test_quick_step_gives_the_checked_steps_bits():
    """``rule.step`` with ready tensors (the lean path) against the same steps through the checked path
    (int32 labels, converted there), also after an optimizer step and a ``.data`` replacement of W."""
    x, y, _ = _data(T=12, B=1)
    results = []
    for labels in (y, y.to(torch.int32)):
        net = _net()
        rule = SOLSA(net, "mse", backend="fused")
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        rule.reset(1)
        outs = []
        for t in range(12):
            res = rule.step(x[t], labels, None)
            outs += [res.output, res.loss]
            if t == 5:
                rule.flush()
                opt.step()
                opt.zero_grad(set_to_none=True)
            if t == 8:
                net.layers[0].weight.data = net.layers[0].weight.data * 0.9  # a new tensor: a new pointer
        rule.flush()
        results.append((outs, [p.grad.clone() for p in net.parameters() if p.grad is not None]))
    (outs_a, grads_a), (outs_b, grads_b) = results
    assert len(grads_a) == len(grads_b) > 0
    assert all(torch.equal(a, b) for a, b in zip(outs_a, outs_b))
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def test_quick_step_leaves_other_calls_to_the_checked_path():
    net = _net()
    rule = SOLSA(net, "mse", backend="fused")
    rule.reset(2)
    fused = rule._fused
    x = torch.zeros(2, 5, dtype=D)
    labels = torch.zeros(2, dtype=torch.long)
    assert fused.quick_step(x, labels, None) is not None
    for args in [(x.float(), labels, None), (torch.zeros(3, 5, dtype=D), labels, None),
                 (x, labels.int(), None), (x, labels, torch.ones(2)), (x, torch.zeros(2, 4), None)]:
        assert fused.quick_step(*args) is None
    with pytest.raises(ValueError, match="shape"):
        rule.step(torch.zeros(3, 5, dtype=D), labels)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        rule.step([[0.0] * 5] * 2, labels)
    with pytest.raises(ValueError, match="class labels"):
        rule.step(x, torch.tensor([0, 7]))
