import json

from solsa.cli import main


def test_gradcheck_json_single_layer(capsys):
    assert main(["gradcheck", "--layers", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["layers"] == 1 and report["T"] == 50 and report["reset"] == "subtract"
    assert set(report["max_rel_error"]) == {"weight", "alpha", "beta", "lambda", "bias"}
    assert set(report["cosine"]) == set(report["max_rel_error"])
    assert max(report["max_rel_error"].values()) < 1e-8


def test_gradcheck_table_multilayer(capsys):
    assert main(["gradcheck", "--layers", "2", "--T", "30", "--reset", "zero", "--surrogate", "atan"]) == 0
    out = capsys.readouterr().out
    assert "lambda" in out and "2 layer(s)" in out


def test_gradcheck_rejects_bad_layers(capsys):
    assert main(["gradcheck", "--layers", "0"]) == 2
    assert "layers must be a positive integer" in capsys.readouterr().err
