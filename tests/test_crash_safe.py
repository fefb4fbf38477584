"""Crash-safe runs: kill and resume to the same result, the run-folder lock, divergence, bad devices,
corrupted files, strict JSON."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from solsa.cli import main
from solsa.config import TrainConfig
from solsa.learner import Learner
from solsa.training import TrainingDiverged, train

ARGS = ["--hidden", "16", "--batch-size", "8", "--quiet"]


def _solsa(*args):
    """``solsa ARGS`` in a subprocess; its stderr goes to a file (read it with ``_err``)."""
    err = open(f"/tmp/solsa-test-{os.getpid()}-{time.monotonic_ns()}.err", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "solsa.cli", *args], stdout=subprocess.DEVNULL, stderr=err)
    proc.err_file = err
    return proc


def _finish(proc) -> tuple[int, str]:
    code = proc.wait()
    proc.err_file.seek(0)
    text = proc.err_file.read()
    proc.err_file.close()
    os.unlink(proc.err_file.name)
    return code, text


def _weights(folder):
    return torch.load(folder / "checkpoint.pt", weights_only=True)["state_dict"]


def test_sigkill_then_resume_gives_the_uninterrupted_result(npz_task, tmp_path):
    args = ["train", "--task", npz_task, "--epochs", "12", *ARGS]
    whole = tmp_path / "whole"
    assert _finish(_solsa(*args, "--out", str(whole)))[0] == 0
    killed = tmp_path / "killed"
    proc = _solsa(*args, "--out", str(killed))
    deadline = time.time() + 60
    while not (killed / "resume.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _finish(proc)
    assert not (killed / "metrics.json").exists(), "killed too late: the run had finished"
    state = torch.load(killed / "resume.pt", weights_only=True)
    assert 1 <= state["epoch"] < 12
    code, err = _finish(_solsa("train", "--resume", str(killed), "--quiet"))
    assert code == 0, err
    a, b = _weights(whole), _weights(killed)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-6, atol=1e-7) for k in a)
    ma, mb = (json.loads((f / "metrics.json").read_text()) for f in (whole, killed))
    for key in ("best_epoch", "train_accuracy", "val_accuracy", "test_accuracy", "update_steps"):
        assert ma[key] == mb[key], key
    assert not (killed / "resume.pt").exists()  # finished runs keep no resume state


def test_a_second_process_on_the_same_out_is_refused(npz_task, tmp_path):
    out = tmp_path / "run"
    first = _solsa("train", "--task", npz_task, "--epochs", "40", *ARGS, "--out", str(out))
    deadline = time.time() + 60
    while not (out / ".lock").exists() and time.time() < deadline:
        time.sleep(0.005)
    code, err = _finish(_solsa("train", "--task", npz_task, "--epochs", "1", *ARGS, "--out", str(out), "--force"))
    assert code == 2
    assert str(out) in err and f"pid {first.pid}" in err and "in use" in err
    assert _finish(first)[0] == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 40  # the first run was not replaced


def test_divergence_stops_with_a_clear_error_and_keeps_the_last_good_state(npz_task, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_apply = Learner.apply

    def poisoned(self):
        real_apply(self)
        calls["n"] += 1
        if calls["n"] == 10:  # epoch 2 (6 updates per epoch): a parameter becomes NaN
            with torch.no_grad():
                self.rule.net.layers[0].beta.fill_(float("nan"))

    monkeypatch.setattr(Learner, "apply", poisoned)
    out = tmp_path / "run"
    cfg = TrainConfig(task=npz_task, hidden=(8,), epochs=4, batch_size=8)
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 2, batch \d: .*layers\.0\.beta.*epoch 1"):
        train(cfg, out, progress=False)
    assert not (out / "metrics.json").exists()
    state = torch.load(out / "resume.pt", weights_only=True)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["net"].values())


def test_divergent_learning_rate_exits_with_one_line(npz_task, tmp_path, capsys):
    out = tmp_path / "run"
    cfg = TrainConfig(task=npz_task, hidden=(8,), epochs=2, batch_size=8)
    train(cfg, tmp_path / "ok", progress=False)  # the same task trains fine
    code = main(["train", "--task", "uea:JapaneseVowels", "--lr", "1e6", "--optimizer", "sgd", "--epochs", "1",
                 "--hidden", "32,32", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "training diverged at epoch 1" in err[0] and "lr" in err[0]


@pytest.mark.parametrize("device,message", [("cuda:7", "is not available on this machine; available here: cpu"),
                                            ("bogus", "is not a torch device; available here: cpu")])
def test_bad_device_is_one_line(device, message, npz_task, tmp_path, capsys):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has that GPU")
    for cmd in (["train", "--task", npz_task, "--out", str(tmp_path / "t")],
                ["compare", "--task", npz_task, "--out", str(tmp_path / "c")]):
        assert main([*cmd, "--device", device, "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--device '{device}' {message}" in err[0]


def test_corrupted_resume_state_is_named(npz_task, tmp_path, capsys):
    out = tmp_path / "run"
    (out).mkdir()
    (out / "resume.pt").write_bytes(b"\x80\x02truncated")
    assert main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'resume.pt'} is not a solsa resume state: it is not a torch file" in err


def _stopped_run(npz_task, out, epochs=3, stop_at=2):
    """A run of ``epochs`` killed after epoch ``stop_at`` (its resume.pt is there)."""
    class Stop(Exception):
        pass

    def on_epoch(epoch, row):
        if epoch == stop_at:
            raise Stop

    cfg = TrainConfig(task=npz_task, hidden=(8,), batch_size=8, epochs=epochs)
    with pytest.raises(Stop):
        train(cfg, out, progress=False, on_epoch=on_epoch)
    return cfg


def test_resume_state_of_another_version_or_epoch_is_refused(npz_task, tmp_path, capsys):
    from solsa.runs import load_resume, save_resume

    out = tmp_path / "run"
    _stopped_run(npz_task, out)
    good = load_resume(out)
    good.pop("format")
    for change, message in (({"schedule": None}, "lacks 'schedule': it was written by another version"),
                            ({"epoch": 5}, "records epoch 5 and a history of 1 epoch(s): it is not a state"),
                            ({"epoch": 5, "history": good["history"] * 5}, "records epoch 5, but the run trains 3 epochs")):
        state = {**good, **change}
        if change.get("schedule", 1) is None:
            del state["schedule"]
        save_resume(out, state)
        assert main(["train", "--resume", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not (out / "metrics.json").exists()


def test_resume_state_of_an_older_version_without_a_new_option_resumes(npz_task, tmp_path):
    from solsa.runs import load_resume, save_resume

    out = tmp_path / "run"
    _stopped_run(npz_task, out)
    state = load_resume(out)
    state.pop("format")
    del state["config"]["bias"]  # an option added since: takes its default
    save_resume(out, state)
    assert main(["train", "--resume", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3


def test_metrics_json_is_strict(npz_task, tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(task="patterns:generate", readout="spike", hidden=(8,), epochs=1,
                      task_options={"n_samples": 24, "n_test": 8, "steps": 30}), out, progress=False)
    text = (out / "metrics.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in metrics.json"))
    assert "NaN" not in text and "Infinity" not in text


def test_compare_resumes_an_unfinished_run(npz_task, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "--task", npz_task, "--rules", "solsa", "--seeds", "1", "--no-search", "--out", str(out),
            "--epochs", "3", *ARGS]
    assert main(args) == 0
    run = next(out.rglob("metrics.json")).parent
    whole = _weights(run)
    # make it look killed after epoch 1: keep a resume state, drop the finished files
    cfg = TrainConfig.from_dict(json.loads((run / "metrics.json").read_text())["config"])
    for f in run.iterdir():
        if f.name != ".lock":
            f.unlink()
    train(cfg.replace(epochs=1), tmp_path / "part", progress=False)
    for f in os.listdir(tmp_path / "part"):
        os.remove(tmp_path / "part" / f)
    assert main(args) == 0
    assert all(torch.allclose(whole[k], _weights(run)[k]) for k in whole)


def test_compare_names_a_truncated_metrics_file(npz_task, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--task", npz_task, "--rules", "solsa", "--seeds", "1", "--no-search", "--out", str(out),
            "--epochs", "1", *ARGS]
    assert main(args) == 0
    metrics = next(out.rglob("metrics.json"))
    metrics.write_text(metrics.read_text()[:100])  # cut mid-write
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(metrics) in err and "cannot be read" in err
