"""Smoke tests of ``solsa bench stream`` and ``solsa bench longrun`` (quick mode; no timing assertions)."""

import json

import torch

from solsa.bench.stream import FACADE_MODES, _largest
from solsa.cli import main


def _run(tmp_path, name, *args):
    out = tmp_path / f"{name}.json"
    assert main(["bench", name, "--quick", "--quiet", "--out", str(out), *args]) == 0
    assert out.with_suffix(".png").stat().st_size > 0
    return json.loads(out.read_text())


def test_stream_facade_quick(tmp_path, capsys):
    res = _run(tmp_path, "stream", "--hidden", "8", "--inputs", "4", "--classes", "3")
    assert [r["mode"] for r in res["rows"]] == list(FACADE_MODES)
    assert res["rows"][0]["ratio_to_rule"] == 1.0 and all(r["step_us"]["median"] > 0 for r in res["rows"])
    assert {"facade_ratio", "facade_ratio_target", "facade_ratio_met", "river_loop_ratio"} <= set(res["targets"])
    assert res["config"]["batch"] == 1 and res["config"]["net"]["hidden"] == [8]
    assert "x the rule" in capsys.readouterr().out


def test_longrun_quick_is_finite_and_bounded(tmp_path):
    res = _run(tmp_path, "longrun", "--hidden", "8", "--steps", "3000", "--update-every", "7")
    assert res["steps"] == 3000 and res["all_finite"] and res["updates"] == 3000 // 7
    assert res["steps_per_second"] > 0 and res["rss_start_bytes"] > 0 and res["rss_end_bytes"] > 0
    assert 0 < res["max_abs_trace"] < 1e4 and len(res["series"]) == 100
    assert res["config"]["resets"] == 0


def test_longrun_check_sees_nan_and_inf():
    """The finiteness check must be able to fail: a NaN or inf anywhere comes out as not finite."""
    assert _largest([torch.ones(2), None, torch.tensor([-3.0, 2.0])]) == (3.0, True)
    assert _largest([torch.ones(2), torch.tensor([float("nan")])])[1] is False
    assert _largest([torch.tensor([float("-inf")])])[1] is False
