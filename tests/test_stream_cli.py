"""`solsa stream`: task and CSV streams, drift, outputs, checkpoints and resume, bad rows."""

import io
import json
import re

import pytest
import torch

from solsa.cli import main
from solsa.config import TrainConfig
from solsa.stream.run import resume_stream, run_stream
from solsa.stream.sources import CsvStream, TaskStream

TINY = ["--hidden", "8", "--threads", "1"]


def strict_json(path):
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path} holds {c}"))


def test_task_stream_with_drift_writes_its_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["stream", "--task", "digits", *TINY, "--steps", "1200", "--drift-at", "0.01", "--print-every", "400",
                 "--checkpoint-every", "600", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["400", "800", "1,200"]
    assert any("labels permuted at step" in line for line in lines)
    m = strict_json(out / "metrics.json")
    assert m["steps"] == 1200 and not m["finished"] and m["drift_step"] <= 0.01 * m["source"]["total_steps"] + 20
    assert 0.0 <= m["prequential_accuracy"] <= 1.0 and m["accuracy_after_drift"] is not None
    assert m["updates"] >= m["segments"] > 0 and m["backend"] in ("fused", "reference")
    rows = (out / "accuracy.csv").read_text().splitlines()
    assert rows[0] == "step,prequential_accuracy,window_accuracy,segment_accuracy" and len(rows) == 31
    assert (out / "stream.png").stat().st_size > 0 and (out / "checkpoint.pt").is_file()
    assert main(["stream", "--task", "digits", "--out", str(out)]) == 2  # an existing run is kept
    assert "already holds a run" in capsys.readouterr().err


def test_drift_permutes_every_label_from_the_drift_step_on():
    plain = TaskStream("digits", seed=3)
    drift = TaskStream("digits", seed=3, drift_at=0.5)
    assert sorted(drift.drift_map) == sorted(drift.drift_map.values()) == list(range(10))
    assert all(k != v for k, v in drift.drift_map.items())
    for t, (a, b) in enumerate(zip(plain.steps(), drift.steps())):
        assert torch.equal(a.x, b.x) and a.start == b.start
        assert b.label == (drift.drift_map[a.label] if t >= drift.drift_step else a.label)
    assert t + 1 == plain.total and drift.drift_step >= plain.total // 2
    assert [s.label for s in drift.steps(drift.drift_step - 3)][:5] == [s.label for s in drift.steps()][
        drift.drift_step - 3: drift.drift_step + 2]


@pytest.mark.parametrize("backend", ["reference", "fused"])
def test_resume_in_two_halves_equals_one_run(tmp_path, backend):
    cfg = TrainConfig(task="digits", hidden=(8,), backend=backend, threads=1)
    opts = dict(checkpoint_every=250, update_every=7, print_every=100)
    whole = run_stream(cfg, tmp_path / "whole", steps=1000, log=lambda s: None, **opts)
    run_stream(cfg, tmp_path / "half", steps=500, log=lambda s: None, **opts)
    resumed = resume_stream(tmp_path / "half", steps=1000, log=lambda s: None)
    for key in ("steps", "updates", "prequential_accuracy", "segment_accuracy", "window_accuracy"):
        assert resumed[key] == whole[key], key
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["state_dict"]["classifier"]
    b = torch.load(tmp_path / "half" / "checkpoint.pt", weights_only=True)["state_dict"]["classifier"]
    assert a["net"].keys() == b["net"].keys()
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"])
    assert (tmp_path / "half" / "accuracy.csv").read_text() == (tmp_path / "whole" / "accuracy.csv").read_text()


HEADER = "u,v,label,segment\n"
ROWS = """0.1,0.9,up,1
0.2,0.8,,1
0.1,0.7,up,1
0.9,0.1,down,2
0.8,0.2,down,2
"""


def test_csv_file_and_stdin(tmp_path, monkeypatch, capsys):
    path = tmp_path / "s.csv"
    path.write_text(HEADER + ROWS * 20)
    src = CsvStream(str(path))
    steps = list(src.steps())
    assert src.features == ["u", "v"] and len(steps) == 100 and steps[1].label is None
    assert [s.start for s in steps[:6]] == [True, False, False, True, False, True] and steps[5].line == 7
    assert [s.line for s in src.__class__(str(path)).steps(98)] == [100, 101]
    out = tmp_path / "file"
    assert main(["stream", "--csv", str(path), "--max-classes", "2", *TINY, "--out", str(out), "--quiet"]) == 0
    m = strict_json(out / "metrics.json")
    assert m["steps"] == 100 and m["labelled_steps"] == 80 and m["segments"] == 40 and m["finished"]
    assert m["classes"] == ["up", "down"]
    monkeypatch.setattr("sys.stdin", io.StringIO(HEADER + ROWS))
    assert main(["stream", "--csv", "-", "--classes", "down,up", *TINY, "--out", str(tmp_path / "in"),
                 "--quiet"]) == 0
    m = strict_json(tmp_path / "in" / "metrics.json")
    assert m["steps"] == 5 and m["classes"] == ["down", "up"] and m["source"]["file"] == "stdin"
    capsys.readouterr()


@pytest.mark.parametrize("row, message", [
    ("0.5,abc,up,2", r"line 4 of .*s\.csv: column 'v' must be a number, got 'abc'"),
    ("0.5,up,2", r"line 4 of .*s\.csv: expected 4 fields \(u,v,label,segment\), got 3"),
    ("0.5,nan,up,2", r"line 4 of .*s\.csv: x at step 2 contains NaN or inf"),
    ("0.5,0.5,left,2", r"line 4 of .*s\.csv: label 'left' at step 2 is new, but all 2 output neurons"),
    ("0.5," + "1" * 140_000 + ",up,2", r"line 4 of .*s\.csv: not a CSV row a stream can hold \(field larger than"),
    ("3e38,3e38,up,2", None),  # finite in float32 (the old check summed them to inf)
    ("1e300,0.5,up,2", r"line 4 of .*s\.csv: x at step 2 holds values beyond the range of torch.float32"),
])
def test_a_bad_csv_row_is_named_by_its_line(tmp_path, capsys, row, message):
    path = tmp_path / "s.csv"
    path.write_text("u,v,label,segment\n0.1,0.9,up,1\n0.9,0.1,down,2\n" + row + "\n0.1,0.1,up,3\n")
    argv = ["stream", "--csv", str(path), "--max-classes", "2", *TINY, "--out", str(tmp_path / "o"), "--quiet"]
    if message is None:  # taken, with the warning that such inputs saturate the first layer
        from solsa.validation import InputScaleWarning

        with pytest.warns(InputScaleWarning, match=r"inputs reach \|x\| = 3e\+38"):
            assert main(argv) == 0, capsys.readouterr().err
        return
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("solsa stream: error: ") and len(err.splitlines()) == 1
    assert re.search(message, err), err


def test_divergence_stops_the_stream_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["stream", "--task", "digits", *TINY, "--lr", "1e6", "--optimizer", "sgd", "--out", str(out), "--quiet"]
    assert main([*args, "--steps", "300", "--checkpoint-every", "1"]) == 2
    err = capsys.readouterr().err
    assert "solsa stream: error: learning diverged: the update at step" in err and len(err.splitlines()) == 1
    if (out / "checkpoint.pt").exists():  # what is on disk is from before the divergence (was: NaN weights, exit 0)
        state = torch.load(out / "checkpoint.pt", weights_only=True)["state_dict"]["classifier"]["net"]
        assert all(torch.isfinite(t).all() for t in state.values())


def test_a_used_up_stream_says_so_and_stdin_resumes_without_its_header(tmp_path, monkeypatch, capsys):
    path = tmp_path / "s.csv"
    path.write_text(HEADER + ROWS * 2)
    out = tmp_path / "file"
    assert main(["stream", "--csv", str(path), "--max-classes", "2", *TINY, "--out", str(out), "--quiet"]) == 0
    before = (out / "metrics.json").read_text()
    assert main(["stream", "--resume", str(out), "--quiet"]) == 2
    assert f"the stream of {out} is used up: all 10 steps were learned and nothing came after; to go on, append " \
           f"rows to {path} and resume again" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == before
    path.write_text(HEADER + ROWS * 3)  # rows appended: the resume goes on
    assert main(["stream", "--resume", str(out), "--quiet"]) == 0
    assert strict_json(out / "metrics.json")["steps"] == 15
    out = tmp_path / "in"
    for text, steps in ((HEADER + ROWS, 5), (ROWS * 2, 15), (HEADER + ROWS, 20)):  # the header may come again
        monkeypatch.setattr("sys.stdin", io.StringIO(text))
        argv = ["--resume", str(out)] if steps > 5 else ["--csv", "-", "--max-classes", "2", *TINY, "--out", str(out)]
        assert main(["stream", *argv, "--quiet"]) == 0, capsys.readouterr().err
        assert strict_json(out / "metrics.json")["steps"] == steps
    capsys.readouterr()


def test_option_errors_name_their_flags(tmp_path, capsys):
    path = tmp_path / "s.csv"
    path.write_text("u,label\n1.0,a\n")
    assert main(["stream", "--csv", str(path), "--max-classes", "2", "--out", str(tmp_path / "a")]) == 2
    assert "error: --update-every" in capsys.readouterr().err
    assert main(["stream", "--task", "digits", "--drift-at", "1.5", "--out", str(tmp_path / "b")]) == 2
    assert "error: --drift-at must be in (0.0, 1.0)" in capsys.readouterr().err
    assert main(["stream", "--csv", str(path), "--update-every", "2", "--out", str(tmp_path / "c")]) == 2
    assert "error: --max-classes" in capsys.readouterr().err
    assert main(["stream", "--resume", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["stream", "--resume", str(tmp_path / "a"), "--hidden", "4", "--update-every", "3"]) == 2
    assert "error: --resume continues with the run's own options; only --steps and --print-every may be given " \
           "(got --hidden, --update-every)" in capsys.readouterr().err


def test_a_crash_leaves_the_last_checkpoint_and_resume_finishes_like_one_run(tmp_path, capsys):
    rows = [f"{0.1 * (i % 7):.1f},{1 - 0.1 * (i % 5):.1f},{'ab'[(i // 4) % 2]},{i // 4}" for i in range(40)]
    good = "u,v,label,segment\n" + "\n".join(rows) + "\n"
    path = tmp_path / "s.csv"
    path.write_text(good.replace(rows[25], "0.3,oops,a,6"))  # a bad row at step 25 (line 27)
    args = ["stream", "--csv", str(path), "--max-classes", "2", *TINY, "--checkpoint-every", "8", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "crash")]) == 2
    assert "line 27 of" in capsys.readouterr().err
    m = strict_json(tmp_path / "crash" / "metrics.json")  # written with the checkpoint at step 24
    assert m["steps"] == 24 and not m["finished"]
    path.write_text(good)
    assert main(["stream", "--resume", str(tmp_path / "crash"), "--print-every", "1000"]) == 0
    path2 = tmp_path / "s2.csv"
    path2.write_text(good)
    assert main([*args[:2], str(path2), *args[3:], "--out", str(tmp_path / "whole")]) == 0
    a = torch.load(tmp_path / "crash" / "checkpoint.pt", weights_only=True)["state_dict"]["classifier"]["net"]
    b = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["state_dict"]["classifier"]["net"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert strict_json(tmp_path / "crash" / "metrics.json")["steps"] == 40


def test_labels_only_at_each_segments_end_still_train(tmp_path):
    """Late labels: rows without a label only advance; the label on a segment's last row trains on it."""
    rows = []
    for seg in range(30):
        label = "ab"[seg % 2]
        for t in range(5):
            u = (0.9 if label == "a" else 0.1) + 0.01 * t
            rows.append(f"{u:.2f},{1 - u:.2f},{label if t == 4 else ''},{seg}")
    path = tmp_path / "late.csv"
    path.write_text("u,v,label,segment\n" + "\n".join(rows) + "\n")
    cfg = TrainConfig(hidden=(8,), threads=1, lr=0.05)
    m = run_stream(cfg, tmp_path / "o", csv=str(path), max_classes=2, log=lambda s: None)
    assert m["steps"] == 150 and m["labelled_steps"] == m["segments"] == m["updates"] == 30
    first = torch.load(tmp_path / "o" / "checkpoint.pt", weights_only=True)["state_dict"]["classifier"]["net"]
    torch.manual_seed(0)
    from solsa.factories import build_network

    init = build_network(cfg, 2, 2).state_dict()
    assert not torch.equal(first["layers.0.weight"], init["layers.0.weight"])  # the weights moved
    assert m["segment_accuracy"] > 0.5
