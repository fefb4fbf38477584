"""Agreement with independent implementations: snnTorch (native and through NIR) and Norse (through NIR).

Known difference, asserted rather than hidden: NIR's CubaLIF resets to v_reset (hard reset) and
nir 1.0.8 has no field for solsa's soft reset, so snnTorch's and Norse's importers build a
hard-reset neuron. Through NIR they therefore reproduce solsa's ``reset="zero"`` model exactly,
and differ from the soft-reset (``"subtract"``) model it was exported from.
"""

import warnings

import pytest
import torch

from solsa import SNN
from solsa.interop import NIRCompatibilityWarning, to_nir

snn = pytest.importorskip("snntorch")


def _net(reset: str, dtype=torch.float64, seed: int = 0) -> SNN:
    torch.manual_seed(seed)
    return SNN(8, [30, 20], 5, readout="spike", filter_granularity="layer", alpha=0.5, beta=1.0, lam=0.75,
               bias=False, reset=reset, weight_scale=2.5, dtype=dtype)


def _inputs(dtype=torch.float64, T=60, B=6, seed=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, 8, generator=g) < 0.3).to(dtype)


def _solsa_trace(net: SNN, x: torch.Tensor):
    """Per step and layer: (I = F Wᵀ, V, o)."""
    states, out = net.init_state(x.shape[1]), []
    with torch.no_grad():
        for x_t in x:
            _, states = net.step(x_t, states)
            out.append([(s.F @ layer.weight.t(), s.V, s.o) for s, layer in zip(states, net.layers)])
    return out


def _outputs(net: SNN, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


def _export(net: SNN, dt: float):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRCompatibilityWarning)
        return to_nir(net, dt=dt)


def test_snntorch_synaptic_matches_step_by_step():
    """solsa (one α per layer, β = 1, no bias, soft reset) == snnTorch Synaptic(reset 'subtract'), float64."""
    net = _net("subtract")
    x = _inputs()
    ref = _solsa_trace(net, x)
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    neurons = [snn.Synaptic(alpha=f64(layer.alpha.item()), beta=f64(layer.lam.item()), threshold=1.0,
                            reset_mechanism="subtract") for layer in net.layers]
    syn = [torch.zeros(x.shape[1], layer.out_features, dtype=torch.float64) for layer in net.layers]
    mem = [s.clone() for s in syn]
    got = []
    with torch.no_grad():
        for x_t in x:
            inp, step = x_t, []
            for i, (layer, neuron) in enumerate(zip(net.layers, neurons)):
                spk, syn[i], mem[i] = neuron(inp @ layer.weight.t(), syn[i], mem[i])
                inp = spk.to(torch.float64)  # snnTorch's spikes are float32 whatever the input
                step.append((syn[i], mem[i], inp))
            got.append(step)
    for i in range(len(net.layers)):
        for k, what in enumerate(("synaptic current", "membrane", "spikes")):
            a = torch.stack([step[i][k] for step in got])  # [T, B, N]
            b = torch.stack([step[i][k] for step in ref])
            if what == "spikes":
                assert b.sum() > 20, f"layer {i} barely spikes: the comparison would be vacuous"
                assert torch.equal(a, b), f"layer {i}: {(a != b).sum()} of {b.numel()} spikes differ"
            else:
                torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=f"layer {i}: {what}")


def _run_snntorch_nir(graph, x: torch.Tensor) -> torch.Tensor:
    from snntorch.import_nir import import_from_nir

    module = import_from_nir(graph)  # neurons keep their state inside (init_hidden=True)
    with torch.no_grad():
        return torch.stack([module(x_t)[0] for x_t in x])


def test_snntorch_reads_our_nir_as_hard_reset(capsys):
    x = _inputs(torch.float32)
    soft, hard = _net("subtract", torch.float32), _net("zero", torch.float32)  # same weights and decays
    got = _run_snntorch_nir(_export(soft, dt=1e-4), x)  # snnTorch's importer assumes dt = 1e-4
    capsys.readouterr()  # the importer prints its own notes
    # identical to solsa's hard-reset model ...
    assert torch.equal(got, _outputs(hard, x)) and got.sum() > 20
    # ... and not to the soft-reset model it came from: NIR has no soft reset, the importer builds
    # Synaptic(reset_mechanism="zero"); the node's metadata["reset"] = "subtract" is not read.
    differ = int((got != _outputs(soft, x)).sum())
    assert differ > 0, "the known hard/soft reset difference vanished: update the docs and this test"


def test_snntorch_rejects_the_li_form():
    """A per-channel filter needs LI → Affine → LIF, which snnTorch's importer does not accept (documented)."""
    from snntorch.import_nir import import_from_nir

    net = SNN(4, [5], 3, filter_granularity="channel", readout="spike", bias=False)
    with torch.no_grad():
        net.layers[0].alpha.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    with pytest.raises(ValueError, match="Unknown node type .*LI"):
        import_from_nir(_export(net, dt=1e-4))


def _norse():
    with warnings.catch_warnings():  # norse's import emits DeprecationWarnings under torch 2.13
        warnings.simplefilter("ignore")
        return pytest.importorskip("norse.torch")


def _run_norse(graph, x: torch.Tensor, dt: float) -> torch.Tensor:
    norse = _norse()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = norse.from_nir(graph, dt=dt)
    state, out = None, []
    with torch.no_grad():
        for x_t in x:
            z, state = module(x_t, state)
            out.append(z)
    return torch.stack(out)


def test_norse_reads_our_nir_with_the_same_dt():
    x = _inputs(torch.float32)
    soft, hard = _net("subtract", torch.float32), _net("zero", torch.float32)
    graph = _export(soft, dt=1e-3)
    got = _run_norse(graph, x, dt=float(graph.metadata["dt"]))
    assert torch.equal(got, _outputs(hard, x)) and got.sum() > 20  # hard reset, as with snnTorch
    assert int((got != _outputs(soft, x)).sum()) > 0


def test_norse_with_another_dt_changes_the_spikes_silently():
    """A graph does not store dt for Norse: from_nir's default 1e-3 on a 1e-4 graph runs another model."""
    x = _inputs(torch.float32)
    hard = _net("zero", torch.float32)
    graph = _export(hard, dt=1e-4)
    assert torch.equal(_run_norse(graph, x, dt=1e-4), _outputs(hard, x))
    assert not torch.equal(_run_norse(graph, x, dt=1e-3), _outputs(hard, x))


def test_a_model_trained_by_solsa_train_without_bias_opens_in_snntorch(npz_task, tmp_path, capsys):
    """`solsa train --bias false --filter-granularity layer --readout spike` exports as Affine → CubaLIF, which
    snnTorch's importer reads; with --reset zero (NIR's hard reset) its outputs are solsa's, spike for spike."""
    import nir

    from solsa.cli import main
    from solsa.evaluation import network_from_checkpoint

    out = tmp_path / "run"
    assert main(["train", "--task", npz_task, "--hidden", "8", "--epochs", "2", "--batch-size", "8", "--quiet",
                 "--bias", "false", "--filter-granularity", "layer", "--readout", "spike", "--reset", "zero",
                 "--weight-scale", "3", "--out", str(out)]) == 0
    assert main(["export", str(out / "checkpoint.pt"), str(tmp_path / "net.nir")]) == 0
    assert "Affine → CubaLIF → Affine → CubaLIF" in capsys.readouterr().out
    net, _, _ = network_from_checkpoint(out / "checkpoint.pt")
    assert all(layer.bias is None for layer in net.layers)
    x = _inputs(torch.float32, T=30, B=4)[..., :4]
    got = _run_snntorch_nir(nir.read(tmp_path / "net.nir"), x)
    capsys.readouterr()
    assert torch.equal(got, _outputs(net, x)) and got.sum() > 0
