"""Fake quantizers against PyTorch's reference, observers, learnable bit-widths."""
import math

import pytest
import torch

from noisesim.config import QuantConfig
from noisesim.quant import BitWidth, FakeQuantize, qparams
from noisesim.quant.observers import (ACIQObserver, EMAObserver, MinMaxObserver, MSEObserver,
                                      PercentileObserver, laplace_clip_ratio)


def _calibrated(cfg, x, channels=1, ch_axis=0):
    q = FakeQuantize(cfg, channels=channels, ch_axis=ch_axis)
    q.calibrating = True
    q(x)
    q.freeze()
    return q


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("learnable", [False, True], ids=["fused", "ste"])
def test_per_tensor_matches_torch(bits, symmetric, learnable):
    x = torch.randn(64, 32) * 3 + 0.5
    q = _calibrated(QuantConfig(bits=bits, symmetric=symmetric, learnable_range=learnable), x)
    scale, zp, qmin, qmax = qparams(q.lo.detach(), q.hi.detach(), bits, symmetric)
    ref = torch.fake_quantize_per_tensor_affine(x, scale.reshape(()), zp.round().int().reshape(()), int(qmin),
                                                int(qmax))
    torch.testing.assert_close(q(x).detach(), ref, rtol=0, atol=1e-6)
    assert q(x).detach().unique().numel() <= 2 ** bits


@pytest.mark.parametrize("bits", [3, 8])
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("learnable", [False, True], ids=["fused", "ste"])
def test_per_channel_matches_torch(bits, symmetric, learnable):
    x = torch.randn(16, 8, 3, 3) * torch.linspace(0.1, 4, 16).reshape(-1, 1, 1, 1)
    q = _calibrated(QuantConfig(bits=bits, symmetric=symmetric, per_channel=True, learnable_range=learnable),
                    x, channels=16, ch_axis=0)
    scale, zp, qmin, qmax = qparams(q.lo.detach(), q.hi.detach(), bits, symmetric)
    ref = torch.fake_quantize_per_channel_affine(x, scale, zp.round().int(), 0, int(qmin), int(qmax))
    torch.testing.assert_close(q(x).detach(), ref, rtol=0, atol=1e-6)


def test_quantization_error_halves_per_bit():
    x = torch.randn(200_000)
    errs = [(_calibrated(QuantConfig(bits=b), x)(x) - x).pow(2).mean().sqrt().item() for b in (4, 6, 8)]
    assert 3.5 < errs[0] / errs[1] < 4.5 and 3.5 < errs[1] / errs[2] < 4.5


def test_ste_gradients_reach_input_range_and_bits():
    x = (torch.randn(1000) * 2).requires_grad_()
    cfg = QuantConfig(bits=4, learnable_range=True, learnable_bits=True, bit_rounding="round")
    q = _calibrated(cfg, x.detach())
    with torch.no_grad():
        q.hi.mul_(0.5)  # force clipping so the range gets a gradient
    q(x).sum().backward()
    xd = x.detach()
    inside = (xd > q.lo.detach()) & (xd < q.hi.detach())
    clipped = xd > 1.2 * q.hi.detach()
    assert torch.allclose(x.grad[inside], torch.ones(())) and torch.all(x.grad[clipped] == 0)
    assert q.hi.grad is not None and q.hi.grad.abs().item() > 0
    assert q.bitwidth.log2_bits.grad is not None


def test_uncalibrated_quantizer_refuses():
    with pytest.raises(RuntimeError, match="calibrat"):
        FakeQuantize(QuantConfig(bits=8))(torch.randn(4))


def test_disabled_quantizer_is_identity():
    x = torch.randn(10)
    assert FakeQuantize(QuantConfig(bits=None))(x) is x


def test_minmax_and_ema_observers():
    a, b = torch.tensor([-1.0, 2.0]), torch.tensor([-3.0, 1.0])
    mm, ema = MinMaxObserver(), EMAObserver(decay=0.5)
    for t in (a, b):
        mm.update(t)
        ema.update(t)
    assert mm.range() == (torch.tensor([-3.0]), torch.tensor([2.0]))
    assert torch.allclose(ema.range()[0], torch.tensor([-2.0])) and torch.allclose(ema.range()[1], torch.tensor([1.5]))


def test_percentile_observer_matches_quantile():
    x = torch.randn(100_000)
    obs = PercentileObserver(percentile=99.0)
    obs.update(x)
    lo, hi = obs.range()
    assert abs(hi.item() - torch.quantile(x, 0.99).item()) < 0.01
    assert abs(lo.item() - torch.quantile(x, 0.01).item()) < 0.01


def test_percentile_observer_per_channel():
    x = torch.randn(4, 50_000) * torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    obs = PercentileObserver(ch_axis=0, percentile=99.9)
    obs.update(x)
    hi = obs.range()[1]
    expected = 3.09 * torch.tensor([1.0, 2.0, 3.0, 4.0])  # z_{0.999} = 3.09
    assert torch.allclose(hi, expected, rtol=0.05)


@pytest.mark.parametrize("bits,alpha", [(2, 2.83), (3, 3.89), (4, 5.03), (8, 9.89)])
def test_aciq_clip_ratio_matches_banner_et_al(bits, alpha):
    assert laplace_clip_ratio(bits, one_sided=False) == pytest.approx(alpha, abs=0.02)


def test_aciq_clips_laplace_tails():
    x = torch.distributions.Laplace(0.0, 1.0).sample((200_000,))
    obs = ACIQObserver(bits=4)
    obs.update(x)
    lo, hi = obs.range()
    assert hi.item() == pytest.approx(5.03, rel=0.03) and lo.item() == pytest.approx(-5.03, rel=0.03)


@pytest.mark.parametrize("bits", [3, 4])
def test_mse_observer_beats_minmax_on_heavy_tails(bits):
    x = torch.distributions.StudentT(3.0).sample((100_000,))

    def mse(obs):
        obs.update(x)
        q = FakeQuantize(QuantConfig(bits=bits))
        q.lo.copy_(obs.range()[0]); q.hi.copy_(obs.range()[1]); q.calibrated.fill_(True)
        return (q(x) - x).pow(2).mean().item()

    assert mse(MSEObserver(bits=bits)) < 0.5 * mse(MinMaxObserver())


@pytest.mark.parametrize("rounding,expected", [("round", [2, 3, 3, 5, 6, 8]), ("discrete", [2, 4, 4, 4, 8, 8]),
                                               ("discrete_linear", [2, 2, 4, 4, 4, 8])])
def test_bitwidth_rounding(rounding, expected):
    """{2, 4, 8} in log2 switches at 2.83 and 5.66 bits, linearly (the reference implementation) at 3 and 6."""
    bw = BitWidth(4, channels=6, rounding=rounding)
    with torch.no_grad():
        bw.log2_bits.copy_(torch.log2(torch.tensor([2.2, 2.9, 3.4, 5.3, 5.8, 7.6])))
    assert bw().tolist() == expected
    remainder, level = bw.remainders()
    assert ((remainder >= -0.5) & (remainder < 0.5)).all()
    raised = torch.tensor([b + 1 if rounding == "round" else 2 * b for b in expected], dtype=level.dtype)
    assert torch.equal(level, torch.where(torch.tensor(expected) < (16 if rounding == "round" else 8), raised,
                                          torch.tensor(math.inf)))
    bw().sum().backward()
    assert torch.all(bw.log2_bits.grad > 0)  # straight-through


def test_stochastic_bitwidth_is_unbiased():
    bw = BitWidth(4.3, channels=100_000, rounding="stochastic")
    b = bw()
    assert set(b.unique().tolist()) == {4.0, 5.0}
    assert b.mean().item() == pytest.approx(4.3, abs=0.01)
    bw.eval()
    assert bw().unique().tolist() == [4.0]


def test_bits_are_clamped_to_2_16():
    bw = BitWidth(8)
    with torch.no_grad():
        bw.log2_bits.fill_(math.log2(40))
    assert bw().item() == 16


def test_extra_repr_is_one_line():
    q = _calibrated(QuantConfig(bits=8), torch.randn(10))
    assert "\n" not in q.extra_repr() and "8b" in q.extra_repr()


@pytest.mark.parametrize("per_channel", [False, True], ids=["tensor", "channel"])
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
def test_no_grad_path_is_bit_identical_to_torch(per_channel, symmetric):
    x = torch.randn(8, 6, 5, 5) * 2 + 0.3
    q = _calibrated(QuantConfig(bits=5, symmetric=symmetric, per_channel=per_channel), x, channels=8, ch_axis=0)
    scale, zp, qmin, qmax = qparams(q.lo, q.hi, 5, symmetric)
    zp = zp.round().int()
    if per_channel:
        ref = torch.fake_quantize_per_channel_affine(x, scale, zp, 0, int(qmin), int(qmax))
    else:
        ref = torch.fake_quantize_per_tensor_affine(x, scale.reshape(()), zp.reshape(()), int(qmin), int(qmax))
    with torch.no_grad():
        assert torch.equal(q(x), ref)


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
def test_dynamic_quantizer_uses_each_rows_range_like_torch_per_channel(symmetric):
    x = torch.randn(64, 32) * torch.logspace(-2, 1, 64)[:, None]
    q = FakeQuantize(QuantConfig(bits=6, symmetric=symmetric, dynamic=True))
    scale, zp, qmin, qmax = qparams(x.amin(1), x.amax(1), 6, symmetric)
    ref = torch.fake_quantize_per_channel_affine(x, scale, zp.round().int(), 0, int(qmin), int(qmax))
    torch.testing.assert_close(q(x), ref, rtol=0, atol=1e-6)  # no calibration needed
    assert q.full_range().shape == (64, 1)
