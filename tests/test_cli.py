"""The command line as a user runs it: train, evaluate, compare, tasks, rules, and bad input."""

import json
import os
import pickle

import pytest
import torch

from solsa.cli import main


FAST = ["--hidden", "8", "--epochs", "2", "--batch-size", "8", "--quiet"]


def test_train_then_evaluate_reproduces_test_accuracy(npz_task, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", npz_task, "--out", str(out), *FAST]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(out / "checkpoint.pt"), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["test_accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_train_refuses_existing_out_without_force(npz_task, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", npz_task, "--out", str(out), *FAST]) == 0
    before = (out / "metrics.json").read_text()
    assert main(["train", "--task", npz_task, "--out", str(out), *FAST]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == before  # nothing lost
    assert main(["train", "--task", npz_task, "--out", str(out), "--force", *FAST]) == 0


def test_config_file_toml_and_yaml(npz_task, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text(f'task = "{npz_task}"\nhidden = "6"\nepochs = 1\nbatch-size = 16\nschedule = "every:5"\n')
    assert main(["train", "--config", str(toml), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    cfg = json.loads((tmp_path / "a" / "metrics.json").read_text())["config"]
    assert cfg["hidden"] == [6] and cfg["schedule"] == "every:5" and cfg["batch_size"] == 16
    yaml = tmp_path / "c.yaml"
    yaml.write_text(f"task: {npz_task}\nhidden: '6'\nepochs: 1\n")
    # the command line overrides the file
    assert main(["train", "--config", str(yaml), "--epochs", "2", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["epochs"] == 2


@pytest.mark.parametrize(
    "content,suffix,match",
    [("epochs = [", ".toml", "is malformed"), ("a: [", ".yaml", "is malformed"), ("x", ".ini", "must end in"),
     ("epochz = 3", ".toml", "unknown option")],
)
def test_bad_config_file_names_file_and_problem(tmp_path, capsys, content, suffix, match):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    assert main(["train", "--config", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert match in err
    if match != "unknown option":
        assert str(path) in err


def test_missing_config_and_dataset_files(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "none.toml")]) == 2
    assert "none.toml does not exist" in capsys.readouterr().err
    assert main(["train", "--task", f"npz:{tmp_path / 'nothing.npz'}", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "nothing.npz" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    assert main(["train", "--task", f"npz:{bad}", "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    assert "bad.npz" in capsys.readouterr().err


def test_unknown_task_and_rule_list_valid_ones(capsys, tmp_path):
    assert main(["train", "--task", "mnist", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "uea:NAME" in err and "digits" in err
    assert main(["train", "--rule", "hebb", "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "valid rules: solsa, bptt" in capsys.readouterr().err


def test_tasks_and_rules_listing(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("uea:NAME", "digits", "patterns", "npz:PATH", "population", "delta", "latency", "rate"):
        assert name in out
    assert main(["rules"]) == 0
    assert "solsa-detachreset" in capsys.readouterr().out


def test_evaluate_bad_checkpoint(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"garbage")
    assert main(["evaluate", str(bad)]) == 2
    assert "x.pt is not a solsa checkpoint: it is not a torch file" in capsys.readouterr().err
    torch.save({"weights": 1}, tmp_path / "y.pt")
    assert main(["evaluate", str(tmp_path / "y.pt")]) == 2
    assert "not a solsa checkpoint" in capsys.readouterr().err


def test_compare_runs_resumes_and_summarises(npz_task, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--task", npz_task, "--rules", "solsa,bptt", "--seeds", "2", "--out", str(out),
            "--search", "lr=0.01,0.003", *FAST]
    assert main(args) == 0
    runs = json.loads((out / "results.json").read_text())
    assert len(runs) == 4 and {r["rule"] for r in runs} == {"solsa", "bptt"}
    for key in ("task", "rule", "seed", "test_accuracy", "train_state_bytes", "chosen_params", "config"):
        assert all(key in r for r in runs)
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["search_results"]) == 4
    for f in ("summary.md", "summary.csv", "compare.png"):
        assert (out / f).is_file()
    diffs = summary["summary"]["differences"][0]
    assert "solsa_minus_bptt" in diffs and "memory_saving_vs_bptt" in diffs
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")}
    assert main(args) == 0  # resume: every finished run is kept, nothing retrained
    assert {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")} == mtimes
    capsys.readouterr()
    assert main([a for a in args if a != "--quiet"]) == 0  # not a terminal: one line per run, no bar
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("compare: run ")]
    assert "\r" not in err and len(lines) == 8 and lines[-1].startswith("compare: run 8/8  "), err  # 2×(2 + 2)
    # a run written before an option existed is reused when that option is at its default
    some = next(out.rglob("metrics.json"))
    stored = json.loads(some.read_text())
    del stored["config"]["readout_alpha"]
    some.write_text(json.dumps(stored))
    assert main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json") if p != some} == {
        p: t for p, t in mtimes.items() if p != some}
    capsys.readouterr()
    assert main([*args, "--alpha", "0.3"]) == 2  # other settings: refuse to mix them into the same --out
    assert "holds a finished run with other settings (alpha)" in capsys.readouterr().err


def test_compare_help_shows_its_own_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the neuron model of the rule's own paper; native: e-prop's recurrent ALIF network (no synaptic filter) "\
           "for every rule (default paper)" in text


def test_compare_fails_fast_on_bad_rules_and_seeds(capsys, tmp_path):
    assert main(["compare", "--rules", "solsa,magic", "--out", str(tmp_path / "c")]) == 2
    assert "unknown rule 'magic'" in capsys.readouterr().err
    assert main(["compare", "--seeds", "", "--out", str(tmp_path / "c")]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["compare", "--rules", "", "--out", str(tmp_path / "c")]) == 2
    assert "--rules is empty" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # failed before any training


def test_compare_fails_fast_when_a_rule_cannot_run_on_the_model(capsys, tmp_path):
    args = ["compare", "--rules", "solsa,ottt", "--model", "full", "--lam-granularity", "neuron",
            "--out", str(tmp_path / "c"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "rule 'ottt' cannot run on model 'full'" in err and "lam_granularity='layer'" in err
    assert not (tmp_path / "c").exists()


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo run",))


def test_a_pickle_of_other_objects_is_refused_without_unsafe_advice(tmp_path, capsys):
    torch.save({"format": "solsa-checkpoint-1", "x": _Evil()}, tmp_path / "evil.pt")
    (tmp_path / "raw.pt").write_bytes(pickle.dumps(_Evil()))
    for name, why in (("evil.pt", "holds Python objects other than tensors"), ("raw.pt", "not a torch file")):
        assert main(["evaluate", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert f"{name} is not a solsa checkpoint: it" in err and why in err, err
        assert "weights_only" not in err and err.count("\n") == 1


def test_export_and_out_paths_that_cannot_be_written_are_one_line(npz_task, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", npz_task, "--out", str(out), *FAST]) == 0
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    cases = [
        (["export", str(out / "checkpoint.pt"), str(tmp_path / "folder")], "is a folder: give the path of a file"),
        (["export", str(out / "checkpoint.pt"), str(tmp_path / "file" / "x.nir")], "file exists and is a file"),
        (["train", "--task", npz_task, *FAST, "--out", str(tmp_path / "file" / "run")], "file is a file, not a folder"),
        (["train", "--task", npz_task, *FAST, "--out", str(tmp_path / ("a" * 300))], "File name too long"),
        (["stream", "--task", "digits", "--hidden", "8", "--steps", "5", "--out", str(tmp_path / "file" / "s")],
         "file is a file, not a folder"),
    ]
    capsys.readouterr()
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"solsa {argv[0]}: error:") and message in err and err.count("\n") == 1, err
    assert (tmp_path / "file").read_text() == "x" and (tmp_path / "folder").is_dir()


def test_inputs_that_saturate_the_first_layer_warn_with_their_scale(tmp_path, capsys):
    """An npz task ×1e6 without normalisation left layer 0's weights unchanged, silently."""
    import numpy as np

    from solsa.validation import InputScaleWarning

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "big.npz", X=rng.normal(size=(40, 6, 3)).astype(np.float32) * 1e6, y=np.arange(40) % 2)
    argv = ["train", "--task", f"npz:{tmp_path / 'big.npz'}", "--task-option", "normalize=false", *FAST,
            "--out", str(tmp_path / "run")]
    with pytest.warns(InputScaleWarning, match=r"task npz:.*big.npz \(normalize=none, encoder direct\): inputs "
                                               r"reach \|x\| = [0-9.]+e\+06; the first layer saturates"):
        assert main(argv) == 0
    capsys.readouterr()


def test_warnings_print_as_one_line_naming_the_command(tmp_path):
    import subprocess
    import sys

    import numpy as np

    np.savez(tmp_path / "big.npz", X=np.ones((40, 6, 3), dtype=np.float32) * 1e6, y=np.arange(40) % 2)
    proc = subprocess.run([sys.executable, "-m", "solsa.cli", "train", "--task", f"npz:{tmp_path / 'big.npz'}",
                           "--task-option", "normalize=false", *FAST, "--epochs", "1", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("solsa train: warning: task npz:") and proc.stderr.count("\n") == 1, proc.stderr
