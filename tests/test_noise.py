"""Noise statistics against the formulas of docs/physics.md (fixed seeds, >= 1e5 samples)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import noisesim
from noisesim.nn import Einsum, Matmul
from tests.helpers import output_noise

TOL = 0.03  # relative tolerance on standard deviations
C_OUT = 16


def _layer(kind):
    if kind == "linear":
        return nn.Linear(256, C_OUT), torch.randn(16384, 256)
    if kind == "conv":
        return nn.Conv2d(8, C_OUT, 3, padding=1), torch.randn(64, 8, 16, 16)
    if kind == "grouped":
        return nn.Conv2d(8, C_OUT, 3, padding=1, groups=2), torch.randn(64, 8, 16, 16)
    return nn.Conv2d(C_OUT, C_OUT, 3, padding=1, groups=C_OUT), torch.randn(64, C_OUT, 16, 16)


FAN_IN = {"linear": 256, "conv": 8 * 9, "grouped": 4 * 9, "depthwise": 9}


def _energies(per_channel):
    return torch.logspace(0, 2, C_OUT) if per_channel else torch.tensor([7.0])


def _sim(kind, noise_type, per_channel, **kw):
    torch.manual_seed(0)
    float_layer, x = _layer(kind)
    cfg = noisesim.SimConfig(noise_type=noise_type, noise_per_channel=per_channel, seed=1, **kw)
    sim = noisesim.prepare(float_layer, cfg)
    noisesim.calibrate(sim, [x])
    sim.noise.set_energy(_energies(per_channel))
    return sim, float_layer, x


def _per_channel_std(t, channel_dim):
    return t.movedim(channel_dim, 0).reshape(t.shape[channel_dim], -1).std(1)



def _patch_norm(kind, xq, sim):
    """||x_patch|| per output element, computed independently with unfold."""
    if kind == "linear":
        return xq.norm(dim=-1, keepdim=True)
    cols = F.unfold(xq, 3, padding=1)  # (N, C_in*9, L)
    n = xq.shape[0]
    if kind == "conv":
        return cols.norm(dim=1).reshape(n, 1, 16, 16)
    if kind == "grouped":  # 2 groups of 4 input channels, 8 output channels each
        return cols.reshape(n, 2, 36, -1).norm(dim=2).repeat_interleave(8, 1).reshape(n, C_OUT, 16, 16)
    return cols.reshape(n, C_OUT, 9, -1).norm(dim=2).reshape(n, C_OUT, 16, 16)


GRID = [pytest.param(k, g, id=f"{k}-{'channel' if g else 'layer'}")
        for k in ("linear", "conv", "grouped", "depthwise") for g in (False, True)]


@pytest.mark.parametrize("kind,per_channel", GRID)
def test_thermal_std_matches_formula(kind, per_channel):
    sim, float_layer, x = _sim(kind, "thermal", per_channel)
    delta = output_noise(sim, x)
    ch = -1 if kind == "linear" else 1
    d = FAN_IN[kind]
    r_w = 2 * float_layer.weight.abs().max()  # symmetric 8-bit per-tensor weights: R = 2 max|w|
    r_x = x.max() - torch.clamp(x.min(), max=0)  # asymmetric inputs: R = hi - lo
    expected = 0.01 * r_w * r_x * torch.sqrt(d / _energies(per_channel).expand(C_OUT))
    assert torch.allclose(_per_channel_std(delta, ch), expected, rtol=TOL)
    assert abs(delta.mean().item()) < 3 * delta.std().item() / math.sqrt(delta.numel())


@pytest.mark.parametrize("kind,per_channel", GRID)
def test_shot_std_matches_formula(kind, per_channel):
    sim, float_layer, x = _sim(kind, "shot", per_channel, weight_bits=None, act_bits=None)
    delta = output_noise(sim, x)
    ch = -1 if kind == "linear" else 1
    d = FAN_IN[kind]
    w_norm = float_layer.weight.detach().flatten(1).norm(dim=1)
    shape = [1] * delta.dim()
    shape[ch] = -1
    e = _energies(per_channel).expand(C_OUT).reshape(shape)
    expected = _patch_norm(kind, x, sim) * w_norm.reshape(shape) / torch.sqrt(d * e)
    z = delta / expected
    assert torch.allclose(_per_channel_std(z, ch), torch.ones(C_OUT), rtol=TOL)
    assert abs(z.mean().item()) < 3 / math.sqrt(z.numel())


@pytest.mark.parametrize("kind,per_channel", GRID)
def test_weight_noise_std_matches_formula(kind, per_channel):
    sim, float_layer, _ = _sim(kind, "weight", per_channel)
    wq = sim.weight_stats()[0]
    with torch.no_grad():
        delta = torch.stack([sim.perturbed_weight()[0] - wq for _ in range(2000)], 1)  # (C, draws, ...)
    r_w = 2 * float_layer.weight.abs().max()
    expected = 0.1 * r_w / torch.sqrt(_energies(per_channel).expand(C_OUT))
    assert torch.allclose(delta.reshape(C_OUT, -1).std(1), expected, rtol=TOL)
    assert abs(delta.mean().item()) < 3 * delta.std().item() / math.sqrt(delta.numel())


def test_weight_noise_is_shared_by_the_batch():
    sim, _, _ = _sim("linear", "weight", False)
    x = torch.randn(1, 256).expand(4, 256)
    with torch.no_grad():
        y = sim(x)
    assert torch.equal(y[0], y[3])


@pytest.mark.parametrize("noise_type", ["thermal", "shot", "weight"])
def test_std_scales_as_inverse_sqrt_energy(noise_type):
    sim, _, x = _sim("linear", noise_type, False)
    stds = []
    for e in (1.0, 100.0):
        sim.noise.set_energy(e)
        if noise_type == "weight":
            with torch.no_grad():
                wq = sim.weight_stats()[0]
                stds.append(torch.stack([sim.perturbed_weight()[0] - wq for _ in range(100)]).std().item())
        else:
            stds.append(output_noise(sim, x).std().item())
    assert stds[0] / stds[1] == pytest.approx(10.0, rel=TOL)


def test_thermal_std_scales_as_sqrt_fan_in():
    stds = []
    for d in (64, 1024):
        lin = nn.Linear(d, 64, bias=False)
        with torch.no_grad():
            lin.weight.uniform_(-1, 1)
            lin.weight[0, 0] = 1.0  # R_w = 2 for every D
        x = torch.rand(4096, d)
        x[0, 0], x[0, 1] = 0.0, 1.0  # R_x = 1 for every D
        sim = noisesim.prepare(lin, noisesim.SimConfig(noise_type="thermal", e_mac=4.0, seed=0))
        noisesim.calibrate(sim, [x])
        stds.append(output_noise(sim, x).std().item())
        assert stds[-1] == pytest.approx(0.01 * 2 * 1 * math.sqrt(d / 4.0), rel=TOL)
    assert stds[1] / stds[0] == pytest.approx(4.0, rel=TOL)


@pytest.mark.parametrize("noise_type,factor", [("thermal", 4.0), ("shot", 0.25)])
def test_the_reference_fan_in_of_a_depthwise_conv_changes_the_noise_by_root_groups(noise_type, factor):
    """--no-fan_in_groups takes D = k*k*C_in (16 groups here): thermal sigma x4, shot sigma /4; MACs stay."""
    stds, macs = [], []
    for groups in (True, False):
        sim, _, x = _sim("depthwise", noise_type, False, fan_in_groups=groups)
        stds.append(output_noise(sim, x).std().item())
        macs.append(sim.macs)
        assert sim.noise_fan_in == 9 * (1 if groups else C_OUT) and sim.fan_in == 9
    assert stds[1] / stds[0] == pytest.approx(factor, rel=TOL) and macs[0] == macs[1]


def test_noise_bits_over_the_positive_part_follow_the_reference():
    """noise_bits_range relu: R_out is the positive part of the calibrated span (a post-ReLU output quantizer)."""
    span, _, x = _sim("conv", "thermal", False)
    relu, _, _ = _sim("conv", "thermal", False, noise_bits_range="relu")
    for sim in (span, relu):
        output_noise(sim, x)  # records sigma
    lo, hi = span.noise.out_lo.item(), span.noise.out_hi.item()
    assert lo < 0 < hi and relu.noise.output_range() == pytest.approx(hi) and span.noise.output_range() == \
        pytest.approx(hi - lo)
    steps = lambda r, s: torch.log2(torch.ceil(r / (math.sqrt(12) * s)).clamp_min(1) + 1)  # noqa: E731
    assert torch.allclose(relu.noise.noise_bits(), steps(hi, relu.noise.last_std))
    assert (relu.noise.noise_bits() < span.noise.noise_bits()).all()
    with torch.no_grad(), noisesim.noise_as_quantizer(relu):
        assert relu(x).min().item() >= 0  # the equivalent quantizer holds the positive part only


@pytest.mark.parametrize("noise_type", ["thermal", "shot"])
@pytest.mark.parametrize("module", [Matmul(), Einsum("bij,bjk->bik")], ids=["matmul", "einsum"])
def test_matmul_noise_matches_formula(noise_type, module):
    a, b = torch.randn(64, 64, 32), torch.randn(64, 32, 48)
    kw = {} if noise_type == "thermal" else {"weight_bits": None, "act_bits": None}
    sim = noisesim.prepare(module, noisesim.SimConfig(noise_type=noise_type, e_mac=3.0, seed=0, **kw))
    with noisesim.calibrating(sim):  # a (a, b) pair would read as (inputs, targets) in calibrate()
        sim(a, b)
    with torch.no_grad():
        noisy = sim(a, b)
        with noisesim.noise_disabled(sim):
            delta = noisy - sim(a, b)
    if noise_type == "thermal":
        r_a, r_b = a.max() - a.min(), b.max() - b.min()
        assert delta.std().item() == pytest.approx((0.01 * r_a * r_b * math.sqrt(32 / 3.0)).item(), rel=TOL)
    else:
        expected = a.norm(dim=-1, keepdim=True) * b.norm(dim=-2, keepdim=True) / math.sqrt(32 * 3.0)
        assert (delta / expected).std().item() == pytest.approx(1.0, rel=TOL)
    assert sim.fan_in == 32 and sim.macs == 32 * 64 * 48


def test_noise_is_active_in_eval_and_train_mode_and_seeded():
    outs = []
    for mode in ("eval", "train", "eval"):
        sim, _, x = _sim("linear", "thermal", False)
        getattr(sim, mode)()
        with torch.no_grad():
            outs.append(sim(x[:8]))
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])  # same seed, same draws
    with torch.no_grad(), noisesim.noise_disabled(sim):
        clean = sim(x[:8])
    assert not torch.equal(outs[0], clean)


def test_integer_energy_rounds_with_straight_through_gradient():
    sim, _, x = _sim("linear", "thermal", False, quantize_energy=True, train_noise=True)
    sim.noise.set_energy(2.4)
    e = sim.noise.energy()
    assert e.item() == 2.0
    e.sum().backward()
    assert sim.noise.log_energy.grad.item() == pytest.approx(2.4, rel=1e-4)  # d exp(l)/dl


def test_snr_recording_matches_empirical_ratio():
    sim, _, x = _sim("conv", "thermal", False, record_snr=True)
    with torch.no_grad():
        with noisesim.noise_disabled(sim):
            clean = sim(x)
        noisy = sim(x)
    empirical = clean.pow(2).mean() / (noisy - clean).pow(2).mean()
    assert sim.noise.snr() == pytest.approx(empirical.item(), rel=0.05)


def _low_energy_linear():
    """A thermal Linear at E = 0.5 with its measured output noise sigma and its noise-free output."""
    sim, _, x = _sim("linear", "thermal", False)
    sim.noise.set_energy(0.5)
    with torch.no_grad():
        sigma = output_noise(sim, x).std().item()
        with noisesim.noise_disabled(sim):
            clean = sim(x)
    return sim, x, sigma, clean


def test_equivalent_quantizer_error_is_at_most_the_noise():
    sim, x, sigma, clean = _low_energy_linear()
    bits = sim.noise.noise_bits().mean().item()
    r_out = sim.noise.output_range()
    assert bits == pytest.approx(math.log2(math.ceil(r_out / (math.sqrt(12) * sigma)) + 1), abs=0.05)
    sim_q, _, _ = _sim("linear", "thermal", False, noise_as_quantizer=True)
    sim_q.noise.set_energy(0.5)
    with torch.no_grad():
        sim_q(x)  # records sigma
        err = (sim_q(x) - clean).std().item()
    assert 0.5 * sigma < err <= 1.02 * sigma


@pytest.mark.parametrize("noise_type", ["thermal", "shot", "weight"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["layer", "channel"])
def test_noise_bits_follow_the_measured_sigma_for_every_noise_model(noise_type, per_channel):
    """Without --record_snr too: shot noise's sigma is per element, and its noise bits were once NaN."""
    sim, _, x = _sim("conv", noise_type, per_channel)
    if noise_type == "weight":  # the perturbed tensor is the weights: 400 draws of their noise
        with torch.no_grad():
            wq = sim.weight_stats()[0]
            noise = torch.stack([sim.perturbed_weight()[0] - wq for _ in range(400)], 1)
        rms = noise.pow(2).reshape(C_OUT, -1).mean(1).sqrt()
    else:
        noise = output_noise(sim, x)
        rms = noise.pow(2).movedim(1, 0).reshape(C_OUT, -1).mean(1).sqrt()
    assert torch.allclose(sim.noise.last_std, rms, rtol=TOL)  # RMS sigma per output channel

    def bits(sigma):
        return torch.log2(torch.ceil(sim.noise.output_range() / (math.sqrt(12) * sigma)).clamp_min(1) + 1)

    got = sim.noise.noise_bits()
    assert torch.isfinite(got).all()
    assert (bits(rms * (1 + TOL)) <= got).all() and (got <= bits(rms * (1 - TOL))).all()
    report = noisesim.energy_report(sim)
    assert math.isfinite(report.attrs["avg_noise_bits"]) and report["noise_bits"].notna().all()


@pytest.mark.parametrize("noise_type", ["thermal", "shot"])
def test_per_channel_snr_matches_empirical_ratio(noise_type):
    sim, _, x = _sim("conv", noise_type, True, record_snr=True)
    with torch.no_grad():
        with noisesim.noise_disabled(sim):
            clean = sim(x)
        noisy = sim(x)
    signal = clean.pow(2).movedim(1, 0).reshape(clean.shape[1], -1).mean(1)
    noise = (noisy - clean).pow(2).movedim(1, 0).reshape(clean.shape[1], -1).mean(1)
    snr = sim.noise.channel_snr()
    assert snr.shape == (clean.shape[1],)
    assert torch.allclose(snr, (signal / noise).float(), rtol=0.15)  # per channel: fewer samples
    assert sim.noise.snr() == pytest.approx((signal.sum() / noise.sum()).item(), rel=0.05)
    report = noisesim.channel_report(sim)
    assert len(report) == clean.shape[1] and report["snr_db"].notna().all()


def test_noise_as_quantizer_context_replaces_noise_and_restores_it():
    sim, x, sigma, clean = _low_energy_linear()
    with torch.no_grad():
        with noisesim.noise_as_quantizer(sim):
            q1, q2 = sim(x), sim(x)
        noisy = sim(x)
    assert torch.equal(q1, q2)  # deterministic
    step = sim.noise.output_range() / math.ceil(sim.noise.output_range() / (math.sqrt(12) * sigma))
    levels = (q1 - sim.noise.out_lo) / step
    assert torch.allclose(levels, levels.round(), atol=1e-3)  # on the grid
    err = (q1 - clean).pow(2).mean().sqrt().item()
    assert err == pytest.approx(step / math.sqrt(12), rel=0.1)  # uniform rounding error
    assert not sim.noise.as_quantizer and not torch.equal(noisy, q1)  # noise is back after the block
    lo, hi = sim.noise.out_lo.item(), sim.noise.out_hi.item()
    values = torch.tensor([lo - 5 * (hi - lo), hi + 5 * (hi - lo), hi, lo])
    beyond = sim.noise.equivalent_quantizer(values[:, None].expand(4, C_OUT))
    assert torch.allclose(beyond, torch.tensor([lo, hi, hi, lo])[:, None].expand(4, C_OUT), atol=1e-5)  # clipped


def test_thermal_noise_follows_per_token_input_ranges():
    lin = nn.Linear(64, 16)
    x = torch.randn(2048, 64) * torch.where(torch.arange(2048) % 2 == 0, 1.0, 10.0)[:, None]  # two token scales
    sim = noisesim.prepare(lin, noisesim.SimConfig(noise_type="thermal", e_mac=4.0, act_dynamic=True, seed=0))
    noisesim.calibrate(sim, [x])
    delta = output_noise(sim, x)
    r_x = x.amax(1) - x.amin(1).clamp(max=0)  # asymmetric per-token range (contains 0)
    r_w = 2 * lin.weight.abs().max()
    expected = 0.01 * r_w * r_x * math.sqrt(64 / 4.0)
    ratio = delta.std(1) / expected
    assert ratio.mean().item() == pytest.approx(1.0, rel=TOL) and ratio.std().item() < 0.3


def test_thermal_noise_of_attention_products_with_per_token_ranges():
    a, b = torch.randn(16, 4, 32, 8), torch.randn(16, 4, 8, 32)
    sim = noisesim.prepare(Matmul(), noisesim.SimConfig(noise_type="thermal", e_mac=3.0, act_dynamic=True, seed=0))
    with noisesim.calibrating(sim):
        sim(a, b)
    with torch.no_grad():
        noisy = sim(a, b)
        with noisesim.noise_disabled(sim):
            delta = noisy - sim(a, b)
    r_a = a.amax(-1, keepdim=True) - a.amin(-1, keepdim=True).clamp(max=0)  # per row of a
    r_b = b.amax(-2, keepdim=True) - b.amin(-2, keepdim=True).clamp(max=0)  # per column of b
    z = delta / (0.01 * r_a * r_b * math.sqrt(8 / 3.0))
    assert z.shape == (16, 4, 32, 32) and z.std().item() == pytest.approx(1.0, rel=TOL)


def test_a_reused_thermal_std_follows_every_change_of_range_and_energy():
    """Outside autograd the std is computed once and reused; the noise must still follow a new energy, a
    recalibrated input range and an energy trained by an optimiser step."""
    sim, float_layer, x = _sim("conv", "thermal", True)

    def check():
        with torch.no_grad():
            r_x, r_w = sim.act_quant.full_range(), sim.weight_quant.full_range()
            expected = 0.01 * r_w * r_x * torch.sqrt(FAN_IN["conv"] / sim.noise.energy())
            measured = _per_channel_std(output_noise(sim, x), 1)
        assert torch.allclose(measured, expected.expand(C_OUT), rtol=TOL)

    check()
    check()  # the reused std
    sim.noise.set_energy(torch.linspace(2, 50, C_OUT))
    check()
    noisesim.calibrate(sim, [3 * x])
    check()
    sim.noise.log_energy.requires_grad_(True)
    opt = torch.optim.SGD([sim.noise.log_energy], lr=10.0)
    sim(x).square().mean().backward()
    opt.step()
    check()
