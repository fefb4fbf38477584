"""The stream learner: river's conventions (pure predictions, one step per sample), labels, bad input."""

import math

import pytest
import torch

from solsa import SNN
from solsa.rules import SOLSA
from solsa.stream import StreamClassifier


def cue(label, T=12, gen=None):
    x = (torch.rand(T, 6, generator=gen) < 0.1).float()
    x[: T // 2, 3 * label : 3 * label + 3] = (torch.rand(T // 2, 3, generator=gen) < 0.7).float()
    return x


def snapshot(clf):
    """Everything a sample could change: weights, optimizer, traces, segment score, labels, counters."""
    state = clf.state_dict() if not clf.pending else {"pending": True}
    return repr(state), [p.detach().clone() for p in clf.net.parameters()]


def same(a, b):
    return a[0] == b[0] and all(torch.equal(x, y) for x, y in zip(a[1], b[1]))


def test_learns_a_stream_with_predict_then_learn():
    gen = torch.Generator().manual_seed(0)
    clf = StreamClassifier(SNN(6, [16], 2, readout="leaky"), lr=0.01, update_every=6)
    bytes_at_start = clf.rule.train_state_bytes()
    correct = []
    for i in range(100):
        label = ("left", "right")[i % 2]
        for x_t in cue(i % 2, gen=gen):
            pred = clf.predict_one(x_t)
            clf.learn_one(x_t, label)
        correct.append(pred == label)
        clf.end_sequence()
    assert clf.rule.train_state_bytes() == bytes_at_start
    assert clf.steps == 100 * 12 and clf.classes == ["left", "right"]
    assert sum(correct[-40:]) / 40 >= 0.85


def test_river_progressive_val_score_steps_the_network_once_per_sample(monkeypatch):
    from river import evaluate, metrics

    torch.manual_seed(0)
    clf = StreamClassifier(SNN(3, [16], 2, readout="leaky"), lr=0.01, update_every=5, boundary_key="start")
    calls = []
    step = clf.rule.step
    monkeypatch.setattr(clf.rule, "step", lambda *a, **k: calls.append(1) or step(*a, **k))

    def data(n):
        gen = torch.Generator().manual_seed(1)
        for i in range(n):
            label = ("a", "b")[(i // 25) % 2]
            v = torch.randn(3, generator=gen) * 0.3 + (1.0 if label == "a" else -1.0)
            yield {"u": float(v[0]), "v": float(v[1]), "w": float(v[2]), "start": i % 25 == 0}, label

    acc = evaluate.progressive_val_score(data(1000), clf, metrics.Accuracy())
    assert len(calls) == 1000 and clf.steps == 1000  # predict + learn: one network step per sample
    assert acc.get() > 0.9
    assert clf.features == ["u", "v", "w"] and clf.learn_one(*next(data(1))) is None
    loss = evaluate.progressive_val_score(data(100), clf, metrics.CrossEntropy())  # predict_proba_one
    assert math.isfinite(loss.get()) and len(calls) == 1101


def test_predictions_are_pure_and_match_the_step_that_follows():
    torch.manual_seed(0)
    net = SNN(4, [8], 3, readout="leaky").double()
    clf = StreamClassifier(net, SOLSA(net, "ce", backend="reference"), classes=[0, 1, 2])
    gen = torch.Generator().manual_seed(0)
    for t in range(5):
        x = torch.randn(4, generator=gen, dtype=torch.float64)
        before = snapshot(clf)
        proba = clf.predict_proba_one(x)
        assert clf.predict_one(x) == max(proba, key=proba.get)
        assert same(before, snapshot(clf))
        clf.learn_one(x, None)  # advance without a label: what a pure prediction computed
        d = 1 - 1 / clf.horizon  # the score weights step s by d^(t - s): the same sum of weights divides it
        assert clf._mass == pytest.approx(sum(d**k for k in range(t + 1)), rel=1e-12)
        expected = torch.softmax(clf._score[0] / clf._mass, 0)
        assert torch.allclose(torch.tensor(list(proba.values()), dtype=torch.float64), expected, atol=1e-12)
    assert clf.updates == 0 and not clf.pending


def test_labels_added_as_they_appear_up_to_the_readout_and_a_full_readout_refuses_cleanly():
    clf = StreamClassifier(SNN(2, [4], 2, readout="leaky"), update_every=3)
    assert clf.predict_one({"a": 0.0, "b": 1.0}) is None and clf.predict_proba_one({"a": 0.0, "b": 1.0}) == {}
    clf.learn_one({"a": 0.0, "b": 1.0}, "cat")
    clf.learn_one({"a": 1.0, "b": 0.0}, ("dog", 1))
    assert clf.classes == ["cat", ("dog", 1)]
    assert set(clf.predict_proba_one({"a": 0.0, "b": 0.0})) == {"cat", ("dog", 1)}
    clf.update()
    before = snapshot(clf)
    with pytest.raises(ValueError, match=r"label 'cow' at step 2 is new, but all 2 output neurons"):
        clf.learn_one({"a": 0.0, "b": 1.0}, "cow")
    assert same(before, snapshot(clf)) and clf.steps == 2
    with pytest.raises(TypeError, match="labels must be hashable"):
        clf.learn_one({"a": 0.0, "b": 1.0}, ["list"])
    with pytest.raises(ValueError, match="classes lists 1 twice"):
        StreamClassifier(SNN(2, [4], 3), classes=[1, 1])


@pytest.mark.parametrize("bad, message", [
    ({"a": 1.0}, r"x at step 3 must have the features \['a', 'b'\]; missing \['b'\]"),
    ({"a": 1.0, "b": 2.0, "c": 3.0}, r"unknown \['c'\]"),
    ({"a": float("nan"), "b": 0.0}, r"x at step 3 contains NaN or inf \(features \['a'\]\)"),
    ({"a": "x", "b": 0.0}, r"x at step 3: every feature must be a number"),
    (torch.zeros(3), r"x at step 3 must be a floating tensor of 2 features"),
    (torch.tensor([1.0, float("inf")]), r"x at step 3 contains NaN or inf"),
])
def test_bad_input_names_the_step_and_changes_nothing(bad, message):
    clf = StreamClassifier(SNN(2, [4], 2, readout="leaky"), update_every=10)
    for v in (0.5, 1.0, -1.0):
        clf.learn_one({"a": v, "b": -v}, 1)
    clf.update()
    before = snapshot(clf)
    for call in (lambda: clf.learn_one(bad, 1), lambda: clf.predict_one(bad), lambda: clf.check_one(bad)):
        with pytest.raises((ValueError, TypeError), match=message):
            call()
        assert same(before, snapshot(clf)) and clf.steps == 3


def test_boundary_key_ends_the_segment_and_late_labels_still_train():
    torch.manual_seed(0)
    clf = StreamClassifier(SNN(2, [4], 2, readout="leaky"), lr=0.05, boundary_key="new")
    w0 = clf.net.layers[0].weight.detach().clone()
    for t in range(4):  # the label is not known until the segment's last step
        clf.learn_one({"a": 1.0, "b": 0.0, "new": t == 0}, None)
    assert not clf.pending and torch.equal(clf.net.layers[0].weight, w0)
    clf.learn_one({"a": 1.0, "b": 0.0, "new": False}, "x")
    assert clf.pending and clf.segment_steps == 5
    clf.learn_one({"a": 0.0, "b": 1.0, "new": True}, "y")  # a new segment: the last one's update is applied
    assert clf.updates == 1 and clf.segment_steps == 1 and not torch.equal(clf.net.layers[0].weight, w0)
    # a pure prediction at a boundary starts from rest, like the step that follows it
    fresh = StreamClassifier(SNN(2, [4], 2, readout="leaky"), boundary_key="new", classes=["x", "y"])
    fresh.net.load_state_dict(clf.net.state_dict())
    x = {"a": 0.3, "b": 0.7, "new": True}
    assert clf.predict_proba_one(x) == pytest.approx(fresh.predict_proba_one(x))


@pytest.mark.parametrize("credit", ["same-step", "next", "cascade"])
def test_state_dict_continues_exactly(credit):
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(3, generator=gen) for _ in range(40)]

    def make():
        torch.manual_seed(0)
        # slow filters and membranes in two hidden layers: the cross-layer credit state carries across steps
        net = SNN(3, [8, 6], 2, readout="leaky", alpha=0.8, lam=0.8, readout_lam=0.5)
        return StreamClassifier(net, rule=SOLSA(net, "ce", credit=credit), update_every=4)

    a, b = make(), make()
    for i, x in enumerate(xs[:20]):
        a.learn_one(x, i % 2)
    with pytest.raises(RuntimeError, match="call update"):
        a.learn_one(xs[0], 0) or a.state_dict()
    a.update()
    b.load_state_dict(a.state_dict())
    for i, x in enumerate(xs[20:]):
        a.learn_one(x, i % 2)
        b.learn_one(x, i % 2)
    assert all(torch.equal(p, q) for p, q in zip(a.net.parameters(), b.net.parameters()))
    if credit != "same-step":
        assert any(k.startswith("credit.") for k in a.state_dict()["traces"][0])
        with pytest.raises(ValueError, match="do not fit this rule"):  # a same-step snapshot lacks the credit
            net = SNN(3, [8, 6], 2, readout="leaky", alpha=0.8, lam=0.8, readout_lam=0.5)
            other = StreamClassifier(net, rule=SOLSA(net, "ce", credit="same-step"), update_every=4)
            other.learn_one(xs[0], 0)
            other.update()
            b.load_state_dict(other.state_dict())


def test_construction_errors():
    with pytest.raises(ValueError, match="needs an online rule"):
        StreamClassifier(SNN(6, [4], 2), rule="bptt")
    with pytest.raises(ValueError, match="update_every must be a positive integer"):
        StreamClassifier(SNN(6, [4], 2), update_every=0)
    with pytest.raises(ValueError, match="features must name 6 distinct keys"):
        StreamClassifier(SNN(6, [4], 2), features=["a"])


def test_river_estimator_checks_pass():
    """river's own conformance suite; it skips only what the class declares in _unit_test_skips (features that
    appear or vanish: a network's inputs are fixed, such samples are refused by name)."""
    import warnings

    checks = pytest.importorskip("river.checks")
    from solsa.validation import InputScaleWarning

    for params in StreamClassifier._unit_test_params():
        with warnings.catch_warnings():
            # river's ImageSegments data set is not scaled (|x| up to 1.04e3): the warning is right, not a failure
            warnings.simplefilter("ignore", InputScaleWarning)
            checks.check_estimator(StreamClassifier(**params))


def test_a_copy_mid_sequence_continues_like_the_original():
    """Pickling (river copies and saves models) works with the fused kernel, mid-sequence, and the copy predicts
    and learns as the original does."""
    import pickle

    torch.manual_seed(0)
    net = SNN(4, [8], 2, readout="leaky").double()
    clf = StreamClassifier(net, SOLSA(net, "ce", backend="auto"), update_every=3)
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(4, generator=gen, dtype=torch.float64) for _ in range(12)]
    for t in range(5):
        clf.learn_one(xs[t], t % 2)
    copy = pickle.loads(pickle.dumps(clf))
    for t in range(5, 12):
        a, b = clf.predict_proba_one(xs[t]), copy.predict_proba_one(xs[t])
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
        clf.learn_one(xs[t], t % 2)
        copy.learn_one(xs[t], t % 2)
    for p, q in zip(clf.net.parameters(), copy.net.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)


def test_inputs_are_cast_to_the_network_and_checked_value_by_value_after_the_cast():
    clf = StreamClassifier(SNN(3, [4], 2, readout="leaky"), update_every=2, classes=[0, 1])
    x64 = torch.rand(3, dtype=torch.float64)
    assert set(clf.predict_proba_one(x64)) == {0, 1}  # float64 into a float32 network: was a dtype error
    clf.learn_one(x64, 0)
    assert set(clf.predict_proba_one(x64)) == {0, 1}
    big = torch.full((3,), 3e38)  # finite in float32: was refused as "NaN or inf" (the check summed)
    clf.check_one(big)
    with pytest.raises(ValueError, match=r"x at step 1 holds values beyond the range of torch.float32"):
        clf.learn_one(torch.full((3,), 1e300, dtype=torch.float64), 1)
    d = StreamClassifier(SNN(2, [4], 2, readout="leaky"), update_every=2)
    with pytest.raises(ValueError, match=r"features \['b'\] are beyond the range of torch.float32"):
        d.learn_one({"a": 1.0, "b": 1e300}, 0)
    assert d.steps == 0


def test_inputs_that_saturate_the_first_layer_warn_once():
    from solsa.validation import InputScaleWarning

    clf = StreamClassifier(SNN(3, [4], 2, readout="leaky"), update_every=2)
    clf.learn_one(torch.rand(3), 0)
    with pytest.warns(InputScaleWarning, match=r"step 1: inputs reach \|x\| = 1e\+06.*Normalise the features"):
        clf.learn_one(torch.tensor([1e6, 0.0, 0.0]), 1)
    clf.learn_one(torch.tensor([1e6, 0.0, 0.0]), 1)  # once: no second warning (it would be an error here)


def test_an_endless_segment_warns_and_its_predictions_follow_the_recent_steps(monkeypatch):
    """One segment that never ends: predictions weight about the last `horizon` steps (they used to sum from
    the first step, so the prediction stopped changing), and a warning names the missing boundaries."""
    import copy

    import solsa.stream as stream

    monkeypatch.setattr(stream, "LONG_SEGMENT", 300)
    torch.manual_seed(0)
    clf = StreamClassifier(SNN(2, [8], 2, readout="leaky"), lr=0.01, update_every=5, horizon=20)
    plain = StreamClassifier(copy.deepcopy(clf.net), lr=0.01, update_every=5, horizon=None)
    hits = {"weighted": 0, "plain": 0}
    with pytest.warns(UserWarning, match="300 steps without a segment boundary"):
        for i in range(1200):
            y = (i // 100) % 2
            x = torch.tensor([1.0, 0.0] if y else [0.0, 1.0])
            for name, c in (("weighted", clf), ("plain", plain)):
                hits[name] += i >= 600 and c.predict_one(x) == y
                c.learn_one(x, y)
    assert hits["weighted"] > 450 and hits["plain"] <= 300, hits  # measured: 483 and 300 of 600
