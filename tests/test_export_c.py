"""The C export (solsa.export_c): compiled with the system C compiler, driven through ctypes, held equal to the
PyTorch SOLSA rule (reference backend) with per-step SGD applied by the Learner, step by step.

Tolerances: spikes (every layer) identical; W within 1e-5 relative (norm) after 1,000 per-step updates; the
other parameters within 1e-4, since the float32 rounding of the rule itself moves them about that far (PyTorch
float32 against float64 on the same run: biases 2e-5, α 7e-6, measured while writing this test).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from solsa import SNN
from solsa.config import TrainConfig
from solsa.export_c import CExportError, InputSpec, LearnerSpec, export_c, export_checkpoint, learner_spec
from solsa.export_c.native import CModel, find_compiler
from solsa.factories import build_network, parameter_groups
from solsa.io import save_checkpoint
from solsa.learner import Learner
from solsa.rules import SOLSA

pytestmark = pytest.mark.skipif(find_compiler() is None, reason="no C compiler (cc) on this machine")

PARAM_NAMES = {"W": "weight", "b": "bias", "alpha": "alpha", "beta": "beta", "lam": "lam"}


def _stream(n_in: int, n_classes: int, T: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, n_in, generator=g) + 0.3, torch.randint(0, n_classes, (T,), generator=g)


def _drive(net: SNN, spec: LearnerSpec, tmp_path, T: int = 1000, lr: float = 0.01, dtype: str = "float32",
           inputs: InputSpec | None = None, encode=None, segments: int = 1) -> tuple[CModel, SNN, int]:
    """Train the export and the PyTorch rule side by side (update after every step); returns the compiled
    model, the trained network and the number of hidden and output spikes seen. With ``inputs`` the export is
    fed raw samples and the rule ``encode(raw)`` ([T, C] -> [T, network inputs], the PyTorch encoder); the T
    steps are ``segments`` sequences, both sides reset (and each sequence encoded afresh) between them."""
    export_c(net, tmp_path, learn=True, spec=spec, dtype=dtype, inputs=inputs)
    cm = CModel(tmp_path)
    cm.lib.solsa_init(cm.state)
    rule = SOLSA(net, spec.loss, credit=spec.credit, reset_feedback=spec.reset_feedback, backend="reference")
    groups = parameter_groups(net, lr, spec.filter_lr_scale, spec.filter_update)
    learner = Learner(rule, torch.optim.SGD(groups, lr=lr, momentum=spec.momentum))
    rule.reset(1)
    assert cm.manifest["bytes"]["traces"] == rule.train_state_bytes()
    xs, ys = _stream(net.n_inputs if inputs is None else inputs.n_raw(net.n_inputs), net.n_outputs, T)
    seg = -(-T // segments)
    feed = torch.cat([encode(xs[k:k + seg]) for k in range(0, T, seg)]) if encode else xs
    xs, feed = xs.to(net.layers[0].weight.dtype), feed.to(net.layers[0].weight.dtype)
    tol = (1e-4, 1e-5) if dtype == "float32" else (1e-10, 1e-12)
    spikes = 0
    for t in range(T):
        if t and t % seg == 0:
            rule.reset(1)
            cm.reset()
        y = rule.step(feed[t:t + 1], ys[t:t + 1]).output[0]
        learner.update()
        y_c = cm.learn_step(xs[t].numpy(), int(ys[t]))
        cm.apply(lr)
        for l, (layer, tr) in enumerate(zip(net.layers, rule.traces)):
            if layer.spiking:
                o = tr.state.o[0].numpy()
                assert np.array_equal(cm.array(f"o{l}"), o), f"spikes of layer {l} differ at step {t}"
                spikes += int(o.sum())
        np.testing.assert_allclose(y_c, y.numpy(), rtol=tol[0], atol=tol[1], err_msg=f"output at step {t}")
    return cm, net, spikes


def _check_parameters(cm: CModel, net: SNN, tol: tuple[float, float] = (1e-5, 1e-4)) -> None:
    """Relative (norm) difference of W within tol[0], of the other parameters within tol[1]."""
    c = cm.parameters()
    for l, layer in enumerate(net.layers):
        for short, name in PARAM_NAMES.items():
            if f"{short}{l}" not in c:
                continue
            ref = getattr(layer, name).detach().reshape(-1)
            rel = float((c[f"{short}{l}"] - ref).norm() / ref.norm().clamp(min=1e-12))
            assert rel <= tol[0 if short == "W" else 1], f"{name} of layer {l}: relative difference {rel:.2e}"


def _small(**options) -> SNN:
    torch.manual_seed(0)
    base = dict(alpha=0.3, weight_scale=2.0, filter_granularity="channel", learn_lam=True)
    return SNN(5, (8, 7), 4, **{**base, **options})


@pytest.mark.parametrize("credit", ["cascade", "same-step", "next"])
def test_c_learner_equals_python_small_network(tmp_path, credit):
    spec = LearnerSpec(credit=credit, loss="ce")
    T = 1000 if credit == "cascade" else 300  # the default credit over 1,000 steps, the others shorter
    cm, net, spikes = _drive(_small(readout="leaky", lam_granularity="neuron"), spec, tmp_path, T=T)
    assert spikes > T  # the hidden layers are active: identical spikes are a real check
    _check_parameters(cm, net)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_c_learner_equals_python_per_channel_filters_spiking_readout(tmp_path, reset):
    spec = LearnerSpec(loss="mse", filter_lr_scale=0.5)
    cm, net, spikes = _drive(_small(readout="spike", reset=reset, surrogate="fast_sigmoid"), spec, tmp_path, lr=3e-3)
    assert spikes > 1000
    _check_parameters(cm, net)


def test_c_learner_equals_python_with_momentum_and_linear_filter_steps(tmp_path):
    # 300 steps: with momentum 0.9 this run is chaotic enough that PyTorch float32 and float64 part after
    # ~800 steps (a spike flips at step 818; measured while writing this test), so the C export can do no better
    spec = LearnerSpec(loss="mse", momentum=0.9, filter_update="linear", filter_lr_scale=0.5)
    net = _small(readout="spike", reset="zero", surrogate="fast_sigmoid")
    cm, net, spikes = _drive(net, spec, tmp_path, T=300, lr=3e-3)
    assert spikes > 300
    _check_parameters(cm, net)


def test_float64_c_learner_equals_python_in_float64(tmp_path):
    # in double the chaotic momentum run of the test above stays together over 1,000 steps (3,000 measured)
    spec = LearnerSpec(loss="ce", momentum=0.9)
    net = _small(readout="leaky", lam_granularity="neuron").double()
    cm, net, spikes = _drive(net, spec, tmp_path, T=1000, dtype="float64")
    assert cm.manifest["dtype"] == "float64" and cm.manifest["bytes"]["state"] % 8 == 0
    assert spikes > 1000
    _check_parameters(cm, net, tol=(1e-10, 1e-10))


def test_c_learner_equals_python_default_network(tmp_path):
    cfg = TrainConfig()
    torch.manual_seed(cfg.seed)
    net = build_network(cfg, 12, 9)
    cm, net, spikes = _drive(net, learner_spec(cfg), tmp_path, lr=cfg.lr)
    assert spikes > 1000
    _check_parameters(cm, net)


def test_state_bytes_equal_train_state_bytes_in_every_credit_mode(tmp_path):
    net = _small(readout="leaky", filter_granularity="layer")
    for credit in ("same-step", "next", "cascade"):
        m = export_c(net, tmp_path / credit, learn=True, spec=LearnerSpec(credit=credit, loss="ce"))
        rule = SOLSA(net, "ce", credit=credit, backend="reference")
        rule.reset(1)
        assert m["bytes"]["traces"] == rule.train_state_bytes()
        header = (tmp_path / credit / "solsa_model.h").read_text()
        assert f"#define SOLSA_TRACE_BYTES {rule.train_state_bytes()} " in header
        assert m["bytes"]["state"] == sum(m["bytes"][k] for k in ("traces", "grads", "momentum", "work"))


def test_inference_export_equals_net_step(tmp_path):
    net = _small(readout="spike", reset="zero")
    m = export_c(net, tmp_path, learn=False)
    assert m["bytes"]["traces"] == 4 * sum(lay.in_features + 2 * lay.out_features for lay in net.layers)
    cm = CModel(tmp_path)
    xs, _ = _stream(5, 4, 300)
    states = net.init_state(1)
    for t in range(300):
        with torch.no_grad():
            y, states = net.step(xs[t:t + 1], states)
        assert np.array_equal(cm.step(xs[t].numpy()), y[0].numpy())
    cm.reset()
    assert not cm.array("V0").any()


def test_q15_inference_follows_the_float_network(tmp_path):
    net = _small(readout="leaky", reset="subtract", lam_granularity="neuron")
    m = export_c(net, tmp_path, dtype="q15")
    assert m["bytes"]["params"] == 2 * sum(lay.weight.numel() for lay in net.layers) + 4 * sum(
        lay.bias.numel() + lay.alpha.numel() + lay.beta.numel() + lay.lam.numel() for lay in net.layers)
    cm = CModel(tmp_path)
    xs, _ = _stream(5, 4, 300)
    states, agree, worst = net.init_state(1), 0, 0.0
    for t in range(300):
        with torch.no_grad():
            y, states = net.step(xs[t:t + 1], states)
        y_q = cm.step(xs[t].numpy())
        worst = max(worst, float(np.abs(y_q - y[0].numpy()).max()))
        agree += int(np.argmax(y_q) == int(y[0].argmax()))
    assert agree >= 290 and worst < 0.05, (agree, worst)  # a few hidden spikes may flip near threshold


def _checkpoint(tmp_path, encoder_used="direct", n_inputs: int = 4, task_info: dict | None = None, **options) -> str:
    """A checkpoint as ``solsa train`` writes it (``encoder_used``, ``task_info``: None, as before they were
    recorded)."""
    cfg = TrainConfig(hidden=(6,), **options)
    net = build_network(cfg, n_inputs, 3)
    path = tmp_path / "checkpoint.pt"
    config = {"train": cfg.to_dict(), "n_inputs": n_inputs, "n_classes": 3, "encoder": encoder_used}
    save_checkpoint(path, {k: v.detach() for k, v in net.state_dict().items()},
                    config if task_info is None else {**config, "task_info": task_info})
    return str(path)


def test_the_encoder_the_run_used_is_checked_not_the_family_default(tmp_path):
    # a one-channel uea run trains on the filter bank although the uea family's default is direct
    with pytest.raises(CExportError, match="encoder 'bank' cannot run on the device"):
        export_checkpoint(_checkpoint(tmp_path, encoder_used="bank", task="uea:ItalyPowerDemand"), tmp_path / "c")
    export_checkpoint(_checkpoint(tmp_path, encoder_used="direct", task="uea:ItalyPowerDemand"), tmp_path / "c")
    assert (tmp_path / "c" / "solsa_model.h").is_file()


def test_unsupported_rule_encoder_and_dtype_are_refused_by_name(tmp_path):
    with pytest.raises(CExportError, match="rule 'eprop' cannot be exported.*supported rules: solsa, "):
        export_checkpoint(_checkpoint(tmp_path, rule="eprop"), tmp_path / "c", learn=True)
    with pytest.raises(CExportError, match="encoder 'rate' cannot run on the device; supported encoders: direct"):
        export_checkpoint(_checkpoint(tmp_path, encoder_used=None, task="digits"), tmp_path / "c")
    with pytest.raises(CExportError, match="dtype 'q15' is inference only .*supported: float32") as err:
        export_checkpoint(_checkpoint(tmp_path), tmp_path / "c", dtype="q15", learn=True)
    assert err.value.option == "dtype"
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("option, value, match", [
    ("neuron", "alif", "layer 0 is ALIF; the C export supports neuron 'lif' only"),
    ("recurrent", True, "layer 0 has recurrent weights"),
    ("readout_score", "last", "readout_score 'last' cannot be exported; supported: mean"),
])
def test_alif_recurrent_and_readout_score_are_refused_by_name(tmp_path, option, value, match):
    with pytest.raises(CExportError, match=match) as err:
        export_checkpoint(_checkpoint(tmp_path, **{option: value}), tmp_path / "c", learn=True)
    assert err.value.option == option
    assert not (tmp_path / "c").exists()


def test_cli_export_format_c(tmp_path, capsys):
    from solsa.cli import main

    ckpt = _checkpoint(tmp_path, rule="solsa-samestep")
    assert main(["export", ckpt, str(tmp_path / "dev"), "--format", "c", "--learn"]) == 0
    out = capsys.readouterr().out
    assert "network and SOLSA learner" in out and (tmp_path / "dev" / "solsa_model.c").is_file()
    assert CModel(tmp_path / "dev").manifest["learner"]["credit"] == "same-step"
    assert main(["export", ckpt, str(tmp_path / "q"), "--format", "c", "--dtype", "q15"]) == 0
    assert "#include <stdint.h>" in (tmp_path / "q" / "solsa_model.h").read_text()
    assert main(["export", ckpt, str(tmp_path / "n.nir"), "--learn"]) == 2
    assert "apply to --format c only" in capsys.readouterr().err


def test_bench_device_reports_bytes_and_times(tmp_path):
    from solsa.bench.device import run_device

    r = run_device((6,), 4, 3, block=5, repeats=2)
    learner = r["footprint"]["learner"]["state_bytes"]
    assert learner["traces"] == r["train_state_bytes"]
    assert learner["state"] == sum(learner[k] for k in ("traces", "grads", "momentum", "work"))
    assert set(r["step_us"]) == {"c_learn_step", "c_learn_step_apply", "torch_step", "torch_step_update"}
    assert r["ratio_c_to_torch"]["step"] > 0


def test_c_learner_equals_python_first_layer_per_channel(tmp_path):
    """filter_granularity "first" (the trainer's default): per-channel α, β below, one per layer above."""
    net = _small(readout="leaky", filter_granularity="first")
    assert [layer.filter_per_channel for layer in net.layers] == [True, False, False]
    cm, net, spikes = _drive(net, LearnerSpec(loss="ce"), tmp_path, T=300)
    assert spikes > 300
    _check_parameters(cm, net)
