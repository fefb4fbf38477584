"""The delay encoder built into the C export (solsa.export_c.inputs): the compiled library, fed one raw sample per
channel a step, equals the PyTorch network fed the PyTorch ``delay`` encoder's output of the same sequence
(inference: the encoded input and every hidden layer's spikes identical, the leaky readout's value within 1e-5;
learner: as tests/test_export_c.py holds the direct export), with ``solsa_reset`` between sequences; the checkpoint path and the refusals by name.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch

from solsa import SNN
from solsa.export_c import CExportError, InputSpec, LearnerSpec, export_c, export_checkpoint
from solsa.export_c.native import CModel, find_compiler
from solsa.rules import SOLSA
from solsa.tasks.encoders import delay, delay_lags_for

from test_export_c import _check_parameters, _checkpoint, _drive, _stream

pytestmark = pytest.mark.skipif(find_compiler() is None, reason="no C compiler (cc) on this machine")

# raw channels, delay options, the padded length T the run resolved its delays on, the delays expected
CASES = {
    # the one-channel uea default on ItalyPowerDemand (T = 24): max dilation 23 // 4 = 5, dilations 1, 2, 5
    "one-channel-default": (1, {}, 24, [0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20]),
    # two channels, 3 taps, dilations 1 and 7
    "two-channel-taps3-dil2-max7": (2, {"taps": 3, "dilations": 2, "max_dilation": 7}, 50, [0, 1, 2, 7, 14]),
    # two channels, 4 taps, 4 dilations from 1 to (60 - 1) // 3 = 19 (1, 2, 7, 19): delays shared kept once
    "two-channel-taps4-dil4": (2, {"taps": 4, "dilations": 4}, 60,
                               [0, 1, 2, 3, 4, 6, 7, 14, 19, 21, 38, 57]),
}


def _case(name: str) -> tuple[InputSpec, Callable[[torch.Tensor], torch.Tensor]]:
    """The export's input and the PyTorch encoder of a case: ``encode(raw [T, C]) -> [T, C * M]``."""
    channels, opts, steps, expected = CASES[name]
    lags = delay_lags_for(steps, **opts)
    assert lags == expected
    taps = opts.get("taps", 5)
    resolved = {**opts, "max_dilation": opts.get("max_dilation") or max(1, (steps - 1) // (taps - 1))}

    def encode(raw: torch.Tensor) -> torch.Tensor:
        # the sequence's own length is not the run's T: its resolved max_dilation keeps the run's delays
        assert delay_lags_for(len(raw), **resolved) == lags
        out, _ = delay(raw[:, None].float(), torch.tensor([len(raw)]), **resolved)
        return out[:, 0]

    return InputSpec.delay(channels, lags), encode


def _net(n_inputs: int, dtype: torch.dtype = torch.float32) -> SNN:
    torch.manual_seed(0)
    net = SNN(n_inputs, (8, 7), 4, alpha=0.3, weight_scale=2.0, filter_granularity="channel", learn_lam=True,
              readout="leaky")
    return net.to(dtype)


@pytest.mark.parametrize("name", list(CASES))
def test_delay_inference_equals_pytorch_fed_the_encoded_sequence(tmp_path, name):
    inputs, encode = _case(name)
    net = _net(inputs.channels * len(inputs.lags))
    m = export_c(net, tmp_path, inputs=inputs)
    assert (m["n_inputs"], m["n_net_inputs"]) == (inputs.channels, net.n_inputs)
    cm = CModel(tmp_path)
    spikes = 0
    for seq, T in enumerate((320, 200)):  # two sequences, solsa_reset between them
        raw, _ = _stream(inputs.channels, 4, T, seed=seq + 3)
        x = encode(raw)
        cm.reset()
        assert not cm.array("ring").any() and cm.array("ring_at")[0] == 0
        states = net.init_state(1)
        for t in range(T):
            with torch.no_grad():
                y, states = net.step(x[t:t + 1], states)
            y_c = cm.step(raw[t].numpy())
            assert np.array_equal(cm.array("net_in"), x[t].numpy()), f"encoded input differs at step {t}"
            for l, st in enumerate(states[:-1]):
                assert np.array_equal(cm.array(f"o{l}"), st.o[0].numpy()), f"spikes of layer {l} at step {t}"
                spikes += int(st.o.sum())
            # the leaky readout's value: C sums rows of 8+ inputs in lane order, PyTorch in its BLAS's (1 ulp)
            np.testing.assert_allclose(y_c, y[0].numpy(), rtol=1e-5, atol=1e-6, err_msg=f"output at step {t}")
    assert spikes > 520  # the hidden layers are active: identical spikes are a real check


@pytest.mark.parametrize("name, dtype", [("one-channel-default", "float32"),
                                         ("two-channel-taps3-dil2-max7", "float32"),
                                         ("two-channel-taps4-dil4", "float64")])
def test_delay_learner_equals_pytorch_rule(tmp_path, name, dtype):
    inputs, encode = _case(name)
    net = _net(inputs.channels * len(inputs.lags), torch.float64 if dtype == "float64" else torch.float32)
    cm, net, spikes = _drive(net, LearnerSpec(loss="ce"), tmp_path, T=600, dtype=dtype, inputs=inputs,
                             encode=encode, segments=2)  # two sequences of 300 steps
    assert spikes > 600
    _check_parameters(cm, net, tol=(1e-5, 1e-4) if dtype == "float32" else (1e-10, 1e-10))


def test_delay_state_bytes_and_header(tmp_path):
    inputs, _ = _case("two-channel-taps3-dil2-max7")
    net = _net(10)
    m = export_c(net, tmp_path, learn=True, spec=LearnerSpec(loss="ce"), inputs=inputs)
    rule = SOLSA(net, "ce", backend="reference")
    rule.reset(1)
    assert m["bytes"]["traces"] == rule.train_state_bytes()  # the encoder's rings are counted apart
    assert m["bytes"]["encoder"] == 4 * (2 * 15 + 1)  # two rings of max delay 14 + 1 samples, the write slot
    assert m["bytes"]["state"] == sum(m["bytes"][k] for k in ("traces", "encoder", "grads", "momentum", "work"))
    traces = m["bytes"]["traces"] // 4  # solsa_reset zeroes the first traces + encoder values: the rings are there
    (first, size), (second, _) = sorted(tuple(m["state"][k][:2]) for k in ("ring", "ring_at"))
    assert first == traces and first + size == second  # right after the traces, one block
    header = (tmp_path / "solsa_model.h").read_text()
    for line in ("#define SOLSA_N_INPUTS 2 ", "#define SOLSA_N_NET_INPUTS 10 ", "#define SOLSA_N_DELAYS 5 ",
                 "#define SOLSA_DELAY_SPAN 15 ", f"#define SOLSA_ENCODER_BYTES {4 * 31} "):
        assert line in header, line
    assert m["input"] == {"encoder": "delay", "channels": 2, "lags": [0, 1, 2, 7, 14], "ring_samples": 15,
                          "preprocess": {}}
    direct = export_c(net, tmp_path / "direct", learn=True, spec=LearnerSpec(loss="ce"))
    assert direct["bytes"]["encoder"] == 0 and direct["n_inputs"] == 10


INFO = {"encoder": "delay", "encoder_options": {"taps": 5, "dilations": 3, "max_dilation": None, "smooth": 0},
        "T": 24, "pool": 1, "original_T": 24, "normalization": {"method": "z-score per channel", "mean": [0.5],
                                                                 "std": [2.0]}}


def test_delay_checkpoint_exports_with_its_recorded_options(tmp_path):
    ckpt = _checkpoint(tmp_path, encoder_used="delay", n_inputs=11, task_info=INFO, task="uea:ItalyPowerDemand")
    m = export_checkpoint(ckpt, tmp_path / "c", learn=True)
    assert m["input"]["lags"] == CASES["one-channel-default"][3] and m["n_inputs"] == 1
    assert m["input"]["preprocess"] == {k: INFO[k] for k in ("pool", "original_T", "normalization")}
    CModel(tmp_path / "c")  # compiles


@pytest.mark.parametrize("encoder_used", ["delay", None])
def test_delay_checkpoint_without_recorded_options_loads_its_task(tmp_path, encoder_used):
    # written before checkpoints recorded task_info (None: nor the encoder, and the uea family picks it by the
    # data): the task is loaded again (aeon bundles ItalyPowerDemand)
    pytest.importorskip("aeon")
    ckpt = _checkpoint(tmp_path, encoder_used=encoder_used, n_inputs=11, task="uea:ItalyPowerDemand")
    m = export_checkpoint(ckpt, tmp_path / "c")
    assert m["input"]["lags"] == CASES["one-channel-default"][3]
    assert m["input"]["preprocess"]["pool"] == 1 and len(m["input"]["preprocess"]["normalization"]["mean"]) == 1


@pytest.mark.parametrize("info, n_inputs, kwargs, option, match", [
    ({**INFO, "encoder_options": {**INFO["encoder_options"], "smooth": 2}}, 13, {}, "encoder",
     r"encoder 'delay' with smooth=2 cannot run on the device: its filter bank \(encoder 'bank'\) is not built "
     r"in C; supported encoders: direct, delay \(delay with smooth=0\)"),
    (INFO, 11, {"dtype": "q15"}, "dtype", "dtype 'q15' takes the network's input itself .*float32, float64 only"),
    (INFO, 12, {}, "encoder", r"the network's 12 inputs are not whole channels of the 11 delays"),
])
def test_unsupported_delay_options_are_refused_by_name(tmp_path, info, n_inputs, kwargs, option, match):
    ckpt = _checkpoint(tmp_path, encoder_used="delay", n_inputs=n_inputs, task_info=info)
    with pytest.raises(CExportError, match=match) as err:
        export_checkpoint(ckpt, tmp_path / "c", **kwargs)
    assert err.value.option == option
    assert not (tmp_path / "c").exists()


def test_a_one_channel_uea_run_exports_and_classifies_as_pytorch(tmp_path, capsys):
    """The new user's path: `solsa train --task uea:ItalyPowerDemand` (delay, the recorded task facts), `solsa
    export --format c --learn`, then the inference export fed the normalised samples classifies as PyTorch."""
    pytest.importorskip("aeon")
    from solsa.cli import main
    from solsa.export_c.native import export_accuracy

    assert main(["train", "--task", "uea:ItalyPowerDemand", "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    assert main(["export", str(tmp_path / "run" / "checkpoint.pt"), str(tmp_path / "c"), "--format", "c",
                 "--learn"]) == 0
    assert "delays 0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20: 11 network inputs" in capsys.readouterr().out
    CModel(tmp_path / "c")  # the learner compiles
    r = export_accuracy(tmp_path / "run" / "checkpoint.pt", tmp_path / "inf", limit=150)
    assert r["encoder"] == "delay" and r["same_class"] == 150 and r["max_output_difference"] < 1e-5, r
