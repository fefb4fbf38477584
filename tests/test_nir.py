"""NIR export and import: exact round trip, the node mapping, dt, warnings and refusals."""

import warnings

import numpy as np
import pytest
import torch

from solsa import SNN
from solsa.interop import NIRCompatibilityWarning, from_nir, layer_form, to_nir, write_nir
from solsa.io import save_checkpoint
from solsa.config import TrainConfig
from solsa.factories import build_network

nir = pytest.importorskip("nir")


def _trace(net: SNN, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(V, o) of every layer at every step: ``[T, B, N_l]`` each."""
    states = net.init_state(x.shape[1])
    rec = [([], []) for _ in net.layers]
    with torch.no_grad():
        for x_t in x:
            _, states = net.step(x_t, states)
            for (vs, os_), s in zip(rec, states):
                vs.append(s.V)
                os_.append(s.o)
    return [(torch.stack(v), torch.stack(o)) for v, o in rec]


def _export(net: SNN, dt: float = 1e-3):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRCompatibilityWarning)
        return to_nir(net, dt=dt)


def _random_filters(net: SNN, seed: int, alpha: bool = True) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in net.layers:
            if alpha:
                layer.alpha.copy_(torch.rand(layer.alpha.shape, generator=g, dtype=torch.float64) * 0.9)
            layer.beta.copy_(0.5 + torch.rand(layer.beta.shape, generator=g, dtype=torch.float64))
            layer.lam.copy_(torch.rand(layer.lam.shape, generator=g, dtype=torch.float64) * 0.9)
            if layer.bias is not None:
                layer.bias.copy_(torch.rand(layer.bias.shape, generator=g, dtype=torch.float64) * 0.6 - 0.3)


CASES = {
    "cuba, per-layer filter, no bias": dict(filter_granularity="layer", bias=False, readout="spike"),
    "cuba, alpha 0 with bias": dict(filter_granularity="layer", alpha=0.0, learn_alpha=False, readout="leaky"),
    "li, per-channel filter and bias": dict(filter_granularity="channel", lam_granularity="neuron", readout="leaky"),
    "li, hard reset": dict(filter_granularity="channel", reset="zero", readout="spike"),
    "cuba, no reset, reset amount": dict(filter_granularity="layer", bias=False, reset="none", readout="spike"),
    "li, subtract 0.5, threshold 0.8": dict(filter_granularity="channel", reset_amount=0.5, threshold=0.8,
                                           surrogate="atan", readout="spike"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_gives_identical_spikes(case, tmp_path):
    opts = {"lam": 0.6, "alpha": 0.4, "weight_scale": 2.5, **CASES[case]}
    torch.manual_seed(1)
    net = SNN(6, [12, 10], 4, dtype=torch.float64, **opts)
    _random_filters(net, seed=2, alpha="alpha" not in CASES[case])
    write_nir(_export(net), tmp_path / "net.nir")
    back = from_nir(tmp_path / "net.nir", dtype=torch.float64)
    x = (torch.rand(60, 5, 6, dtype=torch.float64) < 0.3).double()
    ref, got = _trace(net, x), _trace(back, x)
    for i, ((v0, o0), (v1, o1)) in enumerate(zip(ref, got)):
        if net.layers[i].spiking:
            assert o0.sum() > 0, f"layer {i} never spikes: the test would be vacuous"
            assert torch.equal(o0, o1), f"layer {i}: {(o0 != o1).sum()} spikes differ"
        torch.testing.assert_close(v1, v0, rtol=0, atol=1e-12)
    for a, b in zip(net.layers, back.layers):
        assert (b.config.reset, b.config.threshold, b.config.reset_amount, b.config.surrogate) == \
               (a.config.reset, a.config.threshold, a.config.reset_amount, a.config.surrogate)


def test_node_mapping_and_metadata_survive_write_and_read(tmp_path):
    net = SNN(4, [5], 3, filter_granularity="layer", bias=False, alpha=0.5, lam=0.75, readout="spike")
    graph = _export(net, dt=2e-4)
    write_nir(graph, tmp_path / "g.nir")
    g = nir.read(tmp_path / "g.nir")
    kinds = [type(g.nodes[b]).__name__ for _, b in g.edges]
    assert kinds == ["Affine", "CubaLIF", "Affine", "CubaLIF", "Output"]
    assert float(g.metadata["dt"]) == 2e-4
    lif = g.nodes["l0_lif"]
    assert lif.metadata["reset"] == "subtract" and float(lif.metadata["reset_amount"]) == 1.0
    # Euler: decay = 1 - dt/tau, unit input gains w_in*dt/tau_syn = r*dt/tau_mem = 1
    np.testing.assert_allclose(1 - 2e-4 / lif.tau_syn, 0.5)
    np.testing.assert_allclose(1 - 2e-4 / lif.tau_mem, 0.75)
    np.testing.assert_allclose(lif.w_in * 2e-4 / lif.tau_syn, 1.0)
    np.testing.assert_allclose(lif.r * 2e-4 / lif.tau_mem, 1.0)
    assert layer_form(net.layers[0]) == "cuba"


def test_per_channel_beta_folds_into_the_affine_weights():
    net = SNN(3, [], 2, filter_granularity="channel", alpha=0.3, beta=1.0, bias=False, readout="spike")
    with torch.no_grad():
        net.layers[0].beta.copy_(torch.tensor([0.5, 1.0, 2.0]))
    graph = _export(net)
    assert layer_form(net.layers[0]) == "cuba"  # one α: the filter moves behind the weights
    np.testing.assert_allclose(graph.nodes["l0_affine"].weight,
                               (net.layers[0].weight * net.layers[0].beta).detach().numpy(), rtol=1e-7)


def test_default_main_job_model_exports_and_reads_back(tmp_path):
    """The network `solsa train` builds by default (12-100-100-9, per-channel filters, leaky readout)."""
    torch.manual_seed(0)
    net = build_network(TrainConfig(), 12, 9)
    _random_filters(net, seed=3)
    with pytest.warns(NIRCompatibilityWarning) as rec:
        graph = to_nir(net)
    assert [str(w.message).split("'")[1] for w in rec] == ["l0_lif", "l1_lif", "l2_readout"]
    write_nir(graph, tmp_path / "main.nir")
    g = nir.read(tmp_path / "main.nir")
    kinds = [type(g.nodes[b]).__name__ for _, b in g.edges]
    assert kinds == ["LI", "Affine", "LIF"] * 2 + ["LI", "Affine", "LI", "Output"]
    assert g.nodes["l0_affine"].weight.shape == (100, 12) and g.nodes["l2_affine"].weight.shape == (9, 100)
    back = from_nir(g)
    x = torch.randn(29, 3, 12)
    torch.testing.assert_close(back(x), net(x).detach(), rtol=1e-5, atol=1e-5)


def test_export_warns_naming_each_node_consumers_will_not_reproduce():
    soft = SNN(3, [4], 2, filter_granularity="layer", bias=False, readout="spike")
    with pytest.warns(NIRCompatibilityWarning) as rec:
        to_nir(soft)
    assert [str(w.message).split("'")[1] for w in rec] == ["l0_lif", "l1_lif"]
    assert all("hard reset" in str(w.message) and "subtract" in str(w.message) for w in rec)
    hard = SNN(3, [4], 2, filter_granularity="layer", bias=False, readout="spike", reset="zero")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_nir(hard)  # plain hard-reset CubaLIF everywhere: nothing to warn about


def _graph(*nodes, metadata=None):
    g = nir.NIRGraph.from_list(*nodes)
    g.metadata = {"dt": 1e-3} if metadata is None else metadata
    return g


def _lif(n, **kw):
    p = dict(tau_syn=np.full(n, 2e-3), tau_mem=np.full(n, 4e-3), r=np.full(n, 4.0), v_leak=np.zeros(n),
             v_threshold=np.ones(n), w_in=np.full(n, 2.0))
    p.update(kw)
    return nir.CubaLIF(**p)


def _affine(n_out, n_in):
    return nir.Affine(weight=np.ones((n_out, n_in)), bias=np.zeros(n_out))


def test_a_plain_hard_reset_cubalif_graph_imports_as_reset_zero():
    net = from_nir(_graph(_affine(3, 2), _lif(3)))
    layer = net.layers[0]
    assert layer.config.reset == "zero" and net.readout == "spike"
    assert layer.alpha.item() == pytest.approx(0.5) and layer.lam.item() == pytest.approx(0.75)
    assert layer.beta.item() == 1.0 and torch.allclose(layer.weight, torch.ones(3, 2))  # unit gains


@pytest.mark.parametrize(
    "nodes, match",
    [
        (lambda: [_affine(3, 2), nir.Scale(scale=np.ones(3)), _lif(3)], "node 'scale' of type Scale is not supported"),
        (lambda: [_affine(3, 2), _lif(3, v_leak=np.full(3, 0.1))], r"'cubalif' \(CubaLIF\): solsa needs v_leak = 0"),
        (lambda: [_affine(3, 2), _lif(3, v_threshold=np.array([1.0, 2.0, 1.0]))], "one v_threshold per layer"),
        (lambda: [_affine(3, 2), _lif(3, tau_syn=np.array([2e-3, 3e-3, 2e-3]))], "one tau_syn per layer"),
        (lambda: [_affine(3, 2), _lif(3, tau_mem=np.full(3, 1e-4))], "tau_mem .* shorter than dt"),
        (lambda: [_affine(3, 2), _lif(3, v_reset=np.full(3, -0.5))], "solsa needs v_reset = 0"),
        (lambda: [_lif(2), _affine(3, 2), _lif(3)], r"'cubalif' \(CubaLIF\) is out of place"),
        (lambda: [_affine(3, 2), nir.LI(tau=np.full(3, 1e-3), r=np.ones(3), v_leak=np.zeros(3)),
                  _affine(2, 3), _lif(2)],
         r"'li' \(LI\) is a non-spiking layer before the last one"),
    ],
)
def test_unsupported_graphs_are_refused_naming_the_node(nodes, match):
    with pytest.raises(ValueError, match=match):
        from_nir(_graph(*nodes()))


def test_dt_must_be_known_and_consistent():
    g = _graph(_affine(3, 2), _lif(3), metadata={})
    with pytest.raises(ValueError, match="does not store dt"):
        from_nir(g)
    assert from_nir(g, dt=1e-3).layers[0].alpha.item() == pytest.approx(0.5)
    g.metadata = {"dt": 1e-3}
    with pytest.raises(ValueError, match="differs from the dt=0.001 stored"):
        from_nir(g, dt=1e-4)
    with pytest.raises(ValueError, match="dt must be a positive number"):
        to_nir(SNN(2, [], 2), dt=0.0)


def test_branching_graph_is_refused():
    a, b = _affine(3, 2), _lif(3)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}), "a": a, "b": b,
                            "c": _lif(3), "output": nir.Output(output_type={"output": np.array([3])})},
                     edges=[("input", "a"), ("a", "b"), ("a", "c"), ("b", "output"), ("c", "output")],
                     metadata={"dt": 1e-3})
    with pytest.raises(ValueError, match=r"'a' \(Affine\) has 2 outgoing edges"):
        from_nir(g)


def test_a_file_that_is_not_nir_is_refused(tmp_path):
    bad = tmp_path / "bad.nir"
    bad.write_text("not hdf5")
    with pytest.raises(ValueError, match="bad.nir could not be read as a NIR graph"):
        from_nir(bad)


def test_a_file_with_a_node_type_nir_cannot_read_names_the_node(tmp_path):
    """nir's reader fails on an unknown node type with an empty AssertionError; the node is named instead."""
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "g.nir"
    write_nir(_graph(_affine(3, 2), _lif(3)), path)
    with h5py.File(path, "r+") as f:
        del f["node/nodes/cubalif/type"]
        f["node/nodes/cubalif/type"] = b"Conv3d"
    with pytest.raises(ValueError, match=r"node\(s\) 'cubalif' \(Conv3d\) cannot be imported by solsa "
                                         r"\(supported: Input, Output, Affine"):
        from_nir(path)


@pytest.mark.parametrize("node, field", [(0, "weight"), (0, "bias"), (1, "tau_mem")])
def test_non_finite_parameters_are_refused(node, field):
    nodes = [_affine(3, 2), _lif(3)]
    getattr(nodes[node], field)[0] = np.nan
    with pytest.raises(ValueError, match=f"{field} holds NaN or inf"):
        from_nir(_graph(*nodes))


def test_cli_export(tmp_path, capsys):
    from solsa.cli import main

    cfg = TrainConfig(hidden=(7,))
    net = build_network(cfg, 4, 3)
    ckpt = {"train": cfg.to_dict(), "n_inputs": 4, "n_classes": 3, "task": "x", "test_accuracy": 0.5}
    save_checkpoint(tmp_path / "checkpoint.pt", {k: v.detach() for k, v in net.state_dict().items()}, ckpt)
    assert main(["export", str(tmp_path / "checkpoint.pt"), str(tmp_path / "net.nir"), "--dt", "1e-3"]) == 0
    out, err = capsys.readouterr()
    # a fresh network has α = 0 on every channel: one α, so the CubaLIF form, and a readout without filter
    assert "Input → Affine → CubaLIF → Affine → LI → Output" in out
    assert "warning: NIR node 'l0_lif' (CubaLIF)" in err and "warning: NIR node 'l1_readout' (LI)" in err
    assert float(nir.read(tmp_path / "net.nir").metadata["dt"]) == 1e-3

    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    assert main(["export", str(tmp_path / "other.pt"), str(tmp_path / "o.nir")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "other.pt is not a solsa checkpoint" in err
    assert not (tmp_path / "o.nir").exists()
