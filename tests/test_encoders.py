"""Input encoders: shapes, padding, and the defining property of each code."""

from __future__ import annotations

import pytest
import torch

from solsa.tasks import encoders as enc
from solsa.tasks.encoders import bank, delay, delay_lags, delta, direct, encode, latency, list_encoders, population, rate


def _series(steps: int = 12, n: int = 3, c: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([steps, steps // 2, 1][:n] + [steps] * max(0, n - 3), dtype=torch.int64)
    x = torch.randn(steps, n, c, generator=g)
    x = x * (torch.arange(steps)[:, None] < lengths[None, :]).unsqueeze(-1)
    return x, lengths


def _padding_is_zero(out: torch.Tensor, lengths: torch.Tensor) -> bool:
    valid = torch.arange(out.shape[0])[:, None] < lengths[None, :]
    return bool((out[~valid] == 0).all())


@pytest.mark.parametrize(
    "name, opts, t_factor, c_factor",
    [
        ("direct", {}, 1, 1),
        ("population", {"n_per_channel": 4}, 1, 4),
        ("population", {"n_per_channel": 3, "spikes": True}, 1, 3),
        ("delta", {"threshold": 0.2}, 1, 2),
        ("delta", {"threshold": 0.2, "adapt": 0.5, "rho": 0.8}, 1, 2),
        ("delta", {"threshold": 0.2, "level": True}, 1, 3),
        ("bank", {"n_per_channel": 3}, 1, 3),
        ("bank", {"n_per_channel": 1, "tau_min": 4.0}, 1, 1),
        ("delay", {"taps": 3, "dilations": 2, "max_dilation": 2}, 1, 4),  # delays 0, 1, 2, 4
        ("delay", {"taps": 3, "dilations": 2, "max_dilation": 2, "smooth": 2}, 1, 6),
        ("delay", {}, 1, 7),  # T = 12: max dilation 11 // 4 = 2, dilations 1, 2: delays 0, 1, 2, 3, 4, 6, 8
        ("rate", {"max_rate": 0.8}, 1, 1),
        ("latency", {"window": 4}, 4, 1),
    ],
)
def test_shapes_dtypes_and_zero_padding(name: str, opts: dict, t_factor: int, c_factor: int) -> None:
    x, lengths = _series()
    out, new_len = encode(name, x, lengths, generator=torch.Generator().manual_seed(1), **opts)
    assert out.dtype == torch.float32 and new_len.dtype == torch.int64
    assert out.shape == (x.shape[0] * t_factor, x.shape[1], x.shape[2] * c_factor)
    assert torch.equal(new_len, lengths * t_factor)
    assert _padding_is_zero(out, new_len)
    assert torch.isfinite(out).all()


def test_padding_zero_even_if_input_padding_is_not() -> None:
    x, lengths = _series()
    x = x + 5.0  # garbage in the padded region
    for name in enc.ENCODERS:
        out, new_len = encode(name, x, lengths, generator=torch.Generator().manual_seed(0))
        assert _padding_is_zero(out, new_len), name


def test_direct_is_identity_on_valid_steps() -> None:
    x, lengths = _series()
    out, new_len = direct(x, lengths)
    assert torch.equal(out, x) and torch.equal(new_len, lengths)


def test_population_receptive_fields() -> None:
    x = torch.tensor([[[-2.5], [0.0], [2.5]]])  # [T=1, N=3, C=1]
    out, _ = population(x, torch.ones(3, dtype=torch.int64), n_per_channel=5)
    assert out.shape == (1, 3, 5)
    assert ((out >= 0) & (out <= 1)).all()
    # the neuron whose centre equals the value responds with 1; the grid is lo..hi
    assert torch.equal(out[0].argmax(dim=1), torch.tensor([0, 2, 4]))
    assert torch.allclose(out[0].max(dim=1).values, torch.ones(3))


def test_population_channel_layout() -> None:
    x = torch.tensor([[[-2.5, 2.5]]])  # channel 0 low, channel 1 high
    out, _ = population(x, torch.ones(1, dtype=torch.int64), n_per_channel=3)
    assert out[0, 0, :3].argmax() == 0 and out[0, 0, 3:].argmax() == 2


def test_delta_on_spikes_for_rising_ramp_and_off_for_falling() -> None:
    steps = 10
    ramp = torch.arange(steps, dtype=torch.float32) * 0.25  # rises by 0.25 per step
    x = torch.stack([ramp, -ramp], dim=1).unsqueeze(-1)  # N=2 (rising, falling), C=1
    lengths = torch.full((2,), steps, dtype=torch.int64)
    out, _ = delta(x, lengths, threshold=0.2)
    on, off = out[..., 0], out[..., 1]
    assert out.shape == (steps, 2, 2)
    assert on[1:, 0].sum() == steps - 1 and off[:, 0].sum() == 0  # rising: ON every step after the first
    assert off[1:, 1].sum() == steps - 1 and on[:, 1].sum() == 0  # falling: OFF only
    assert out[0].sum() == 0  # the reference starts at the first sample


def test_delta_reference_tracks_several_crossings() -> None:
    # a jump of 3 thresholds gives one spike, and the reference moves by 3 thresholds,
    # so staying at the new level gives no further spikes
    x = torch.tensor([0.0, 0.3, 0.3, 0.3]).reshape(4, 1, 1)
    out, _ = delta(x, torch.tensor([4]), threshold=0.1)
    assert out[:, 0, 0].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert out[:, 0, 1].sum() == 0


def test_delta_small_wiggles_do_not_spike() -> None:
    x = (0.04 * torch.sin(torch.arange(50.0))).reshape(50, 1, 1)
    out, _ = delta(x, torch.tensor([50]), threshold=0.1)
    assert out.sum() == 0


def test_delta_start_level() -> None:
    x = torch.full((3, 1, 1), 0.5)
    out, _ = delta(x, torch.tensor([3]), threshold=0.1, start=0.0)
    assert out[:, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_rate_is_seeded_and_follows_intensity() -> None:
    x = torch.tensor([0.0, 0.5, 1.0]).expand(2000, 3).reshape(2000, 1, 3)
    lengths = torch.tensor([2000])
    a, _ = rate(x, lengths, squash="clip", generator=torch.Generator().manual_seed(3))
    b, _ = rate(x, lengths, squash="clip", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    freq = a.mean(dim=(0, 1))
    assert freq[0] == 0 and abs(freq[1] - 0.5) < 0.05 and freq[2] == 1
    half, _ = rate(x, lengths, squash="clip", max_rate=0.5, generator=torch.Generator().manual_seed(3))
    assert abs(half.mean(dim=(0, 1))[2] - 0.5) < 0.05


def test_rate_sigmoid_squash_for_zscored_data() -> None:
    x = torch.tensor([-10.0, 0.0, 10.0]).expand(2000, 3).reshape(2000, 1, 3)
    out, _ = rate(x, torch.tensor([2000]), generator=torch.Generator().manual_seed(0))
    freq = out.mean(dim=(0, 1))
    assert freq[0] < 0.01 and abs(freq[1] - 0.5) < 0.05 and freq[2] > 0.99


def test_latency_bigger_values_spike_earlier() -> None:
    x = torch.tensor([[[1.0, 0.75, 0.5, 0.25, 0.05]]])  # [T=1, N=1, C=5]
    out, new_len = latency(x, torch.tensor([1]), window=5, floor=0.1, squash="clip")
    assert out.shape == (5, 1, 5) and new_len.tolist() == [5]
    spikes = out[:, 0]  # [5 sub-steps, 5 channels]
    assert spikes.sum(0).tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]  # one spike each, none below the floor
    times = spikes[:, :4].argmax(0)
    assert times.tolist() == [0, 1, 2, 3]  # round((1 - v) * 4)


def test_latency_expands_every_step() -> None:
    x, lengths = _series(steps=6, n=3, c=2)
    out, new_len = latency(x, lengths, window=3)
    assert out.shape == (18, 3, 2) and torch.equal(new_len, lengths * 3)
    per_step = out.reshape(6, 3, 3, 2).sum(1)  # at most one spike per input step and channel
    assert per_step.max() <= 1


def test_unknown_encoder_and_option() -> None:
    x, lengths = _series()
    with pytest.raises(ValueError, match="valid encoders: .*delta.*direct.*latency.*population.*rate"):
        encode("nope", x, lengths)
    with pytest.raises(ValueError, match="unknown option.*thresh"):
        encode("delta", x, lengths, thresh=0.2)
    with pytest.raises(ValueError, match="squash"):
        encode("rate", x, lengths, squash="tanh")
    with pytest.raises(ValueError, match="spikes must be true or false"):
        encode("population", x, lengths, spikes="false")


def test_bad_lengths_rejected() -> None:
    x, _ = _series(steps=5)
    with pytest.raises(ValueError, match="lengths"):
        encode("direct", x, torch.tensor([6, 1, 1]))
    with pytest.raises(ValueError, match="lengths"):
        encode("direct", x, torch.tensor([5, 5]))


def test_list_encoders() -> None:
    names = [n for n, _ in list_encoders()]
    assert names == ["direct", "population", "delta", "bank", "delay", "rate", "latency", "linear"]
    assert all(desc for _, desc in list_encoders())


def test_delta_adaptive_threshold_known_values() -> None:
    # a ramp rising by exactly one threshold per step: a fixed threshold spikes at every step; with
    # adapt = 1, rho = 0.5 the threshold after a spike is 0.2, then 0.15, 0.225, 0.1625 (worked by hand)
    x = (0.1 * torch.arange(6, dtype=torch.float64)).reshape(6, 1, 1).to(torch.float32)
    lengths = torch.tensor([6])
    fixed, _ = delta(x, lengths, threshold=0.1)
    adaptive, _ = delta(x, lengths, threshold=0.1, adapt=1.0, rho=0.5)
    assert fixed[:, 0, 0].tolist() == [0, 1, 1, 1, 1, 1]
    assert adaptive[:, 0, 0].tolist() == [0, 1, 0, 1, 0, 1]
    assert adaptive[:, 0, 1].sum() == 0  # nothing falls
    again, _ = delta(x, lengths, threshold=0.1, adapt=1.0, rho=0.5)
    assert torch.equal(again, adaptive)  # deterministic
    with pytest.raises(ValueError, match="rho"):
        delta(x, lengths, adapt=1.0, rho=1.0)
    with pytest.raises(ValueError, match="adapt"):
        delta(x, lengths, adapt=-0.1)


def test_delta_level_appends_the_signal() -> None:
    x, lengths = _series()
    plain, _ = delta(x, lengths, threshold=0.2)
    with_level, _ = delta(x, lengths, threshold=0.2, level=True)
    c = x.shape[2]
    assert torch.equal(with_level[..., : 2 * c], plain)
    assert torch.equal(with_level[..., 2 * c:], x)  # _series is zero beyond each length already
    with pytest.raises(ValueError, match="level must be true or false"):
        delta(x, lengths, level="yes")


def test_delay_known_values_on_a_hand_example() -> None:
    x = torch.arange(1.0, 7.0).reshape(6, 1, 1)  # 1..6, the last step padding (length 5)
    out, new_len = delay(x, torch.tensor([5]), taps=3, dilations=2, max_dilation=2)  # dilations 1, 2
    expected = torch.tensor(  # channels: delays 0, 1, 2 (= 1 x 2), 4 (= 2 x 2)
        [[1, 0, 0, 0], [2, 1, 0, 0], [3, 2, 1, 0], [4, 3, 2, 0], [5, 4, 3, 1], [0, 0, 0, 0]], dtype=torch.float32
    )
    assert torch.equal(out[:, 0, :], expected) and torch.equal(new_len, torch.tensor([5]))


def test_delay_channel_order_and_default_dilations() -> None:
    assert delay_lags(3, 2, 2) == [0, 1, 2, 4]
    assert delay_lags(9, 4, 12) == sorted({k * d for k in range(9) for d in (1, 2, 5, 12)})
    assert delay_lags(1, 3, 8) == [0]
    x, lengths = _series(steps=25, c=2)
    out, _ = delay(x, lengths, taps=9, dilations=4)  # max dilation (25 - 1) // 8 = 3: dilations 1, 1.4, 2.1, 3
    lags = delay_lags(9, 4, 3)
    assert lags == sorted({k * d for k in range(9) for d in (1, 2, 3)})
    assert out.shape[-1] == 2 * len(lags)
    for c in range(2):
        for m, lag in enumerate(lags):  # channel c * M + m is channel c delayed by lags[m]
            assert torch.equal(out[lag:, :, c * len(lags) + m], (x[: 25 - lag, :, c] * (torch.arange(lag, 25)[:, None] < lengths)))
            assert (out[:lag, :, c * len(lags) + m] == 0).all()


def test_delay_is_causal() -> None:
    x, lengths = _series(steps=20, n=3, c=1)
    lengths = torch.full((3,), 20)
    base, _ = delay(x, lengths, taps=5, dilations=3)
    x2 = x.clone()
    x2[11:] += torch.randn(9, 3, 1)
    changed, _ = delay(x2, lengths, taps=5, dilations=3)
    assert torch.equal(base[:11], changed[:11]) and not torch.equal(base[11:], changed[11:])


def test_delay_smooth_appends_the_bank() -> None:
    x, lengths = _series()
    out, _ = delay(x, lengths, taps=2, dilations=1, max_dilation=1, smooth=3)
    plain, _ = delay(x, lengths, taps=2, dilations=1, max_dilation=1)
    banked, _ = bank(x, lengths, n_per_channel=3)
    assert torch.equal(out, torch.cat([plain, banked], dim=-1))


@pytest.mark.parametrize(
    "opts, name",
    [({"taps": 0}, "taps"), ({"taps": 2.5}, "taps"), ({"dilations": 0}, "dilations"),
     ({"max_dilation": 0}, "max_dilation"), ({"smooth": -1}, "smooth"), ({"smooth": True}, "smooth")],
)
def test_delay_bad_options_name_the_option(opts: dict, name: str) -> None:
    x, lengths = _series()
    with pytest.raises(ValueError, match=name):
        encode("delay", x, lengths, **opts)
