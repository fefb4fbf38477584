"""``solsa bench peers``: the JSON shape, the no-braintrace path, and (when installed) the peer rows.

No timing assertions: the figures are benchmarks, not tests."""

import json

import pytest

import solsa.bench.peers as peers
from solsa.cli import main


def _run(tmp_path, *args):
    out = tmp_path / "peers.json"
    assert main(["bench", "peers", "--quick", "--quiet", "--hidden", "8", "--max-batches", "1",
                 "--out", str(out), *args]) == 0
    return json.loads(out.read_text()), (tmp_path / "peers.md").read_text()


def test_peers_without_braintrace_prints_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(peers, "peer_available", lambda: False)
    result, md = _run(tmp_path)
    assert [r["row"] for r in result["rows"]] == list(peers.SOLSA_ROWS)
    for r in result["rows"]:
        assert r["ms_per_batch"]["n"] == 1 and r["ms_per_batch"]["median"] > 0 and r["warmup_seconds"] > 0
    assert [(c["solsa"], c["peer"]) for c in result["ratios"]] == [("solsa bptt", "solsa bptt reference"),
                                                                   ("solsa bptt reference", "solsa bptt per-step"),
                                                                   ("solsa cascade", "solsa cascade per-step")]
    assert [r["backend"] for r in result["rows"]][:4] == ["fused", "fused", "reference", "reference"]
    assert result["peer_note"] == peers.PEER_INSTALL
    assert result["n_batches"] == 1 and result["threads"] == 1 and result["batch_size"] == 8
    assert "load_average" in result["machine"]
    assert peers.PEER_INSTALL in capsys.readouterr().out and peers.PEER_INSTALL in md


def test_no_peer_flag_skips_the_peer_and_its_note(tmp_path):
    result, _ = _run(tmp_path, "--no-peer")
    assert len(result["rows"]) == len(peers.SOLSA_ROWS) and result["peer_note"] == ""


def test_peer_rows_and_ratios(tmp_path):
    pytest.importorskip("braintrace")
    result, md = _run(tmp_path)
    rows = [r["row"] for r in result["rows"]]
    assert rows == [*peers.SOLSA_ROWS, *peers.PEER_ROWS]
    assert [(c["solsa"], c["peer"]) for c in result["ratios"]] == [
        (a, b) for a, b, _ in peers.RATIOS if a in rows and b in rows]
    assert len(result["ratios"]) == 8  # the compiled row's two ratios only with --compiled
    assert all(c["ratio"] > 0 for c in result["ratios"])
    assert "braintrace d-rtrl" in md and result["machine"]["braintrace"]
