"""The Gaussian samplers: PyTorch's and the 16-bit inverse-CDF table, against N(0, 1) with fixed seeds."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

import noisesim
from noisesim.noise.sampler import CHUNKS, PARALLEL_MIN, GaussianSampler, normal_table

N = 2_000_000  # above PARALLEL_MIN: filled in CHUNKS independent chunks


def _draws(method: str, seed: int = 0, n: int = N) -> np.ndarray:
    return GaussianSampler(seed, method).sample(torch.Size([n]), torch.device("cpu"), torch.float32).numpy()


@pytest.mark.parametrize("method", ["normal", "table"])
def test_draws_are_standard_normal(method):
    x = _draws(method)
    assert N > PARALLEL_MIN
    assert abs(x.mean()) < 4 / math.sqrt(N) and abs(x.var() - 1) < 4 * math.sqrt(2 / N)
    assert abs(stats.kurtosis(x, fisher=False) - 3) < 0.02 and abs(stats.skew(x)) < 0.01
    assert stats.kstest(x[:500_000], "norm").pvalue > 0.01
    for z in (1.0, 2.0, 3.0):  # two-sided tail mass within 5 standard errors of the Gaussian's
        p = 2 * stats.norm.sf(z)
        assert abs((np.abs(x) > z).mean() - p) < 5 * math.sqrt(p * (1 - p) / N)


def test_table_is_the_documented_truncated_grid():
    t = normal_table(dtype=torch.float64)
    assert t.numel() == 65536 and torch.allclose(t.pow(2).mean(), torch.tensor(1.0, dtype=torch.float64))
    assert t.max().item() == pytest.approx(4.325, abs=1e-3) and torch.equal(t, -t.flip(0))
    i = torch.arange(65536, dtype=torch.float64)
    ks = torch.maximum((torch.special.ndtr(t) - i / 65536).abs(), ((i + 1) / 65536 - torch.special.ndtr(t)).abs())
    assert ks.max().item() < 1.1e-5
    assert (np.abs(_draws("table")) <= t.max().item() + 1e-6).all()


@pytest.mark.parametrize("method", ["normal", "table"])
def test_chunks_are_independent_and_draws_are_reproducible(method):
    x = _draws(method).reshape(CHUNKS, -1)
    corr = np.corrcoef(x)
    assert np.abs(corr[~np.eye(CHUNKS, dtype=bool)]).max() < 5 / math.sqrt(x.shape[1])
    assert np.array_equal(_draws(method, seed=3, n=1000), _draws(method, seed=3, n=1000))
    assert not np.array_equal(_draws(method, seed=3, n=1000), _draws(method, seed=4, n=1000))


def test_table_sampler_gives_the_formula_std_in_a_layer():
    torch.manual_seed(0)
    x = torch.randn(16384, 256)
    sim = noisesim.prepare(torch.nn.Linear(256, 16), noisesim.SimConfig(noise_type="thermal", e_mac=7.0, seed=1,
                                                                        noise_sampler="table"))
    noisesim.calibrate(sim, [x])
    with torch.no_grad():
        noisy = sim(x)
        with noisesim.noise_disabled(sim):
            delta = noisy - sim(x)
    r_w = 2 * sim.weight.abs().max()
    r_x = x.max() - torch.clamp(x.min(), max=0)
    assert delta.std().item() == pytest.approx((0.01 * r_w * r_x * math.sqrt(256 / 7.0)).item(), rel=0.02)
    with pytest.raises(noisesim.ConfigError, match="noise_sampler"):
        noisesim.SimConfig(noise_type="thermal", noise_sampler="fast")


def test_compiled_model_gives_the_same_outputs_and_noise():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    x = torch.randn(8192, 64)
    sim = noisesim.prepare(net, noisesim.SimConfig(noise_type="thermal", e_mac=5.0, seed=0))
    noisesim.calibrate(sim, [x])
    compiled = torch.compile(sim)
    with torch.no_grad():
        with noisesim.noise_disabled(sim):
            clean, clean_compiled = sim(x), compiled(x)
        assert torch.allclose(clean_compiled, clean, rtol=1e-5, atol=1e-6)
        noise, noise_compiled = sim(x) - clean, compiled(x) - clean
    # both are draws of the same noise: equal standard deviation within sampling error, zero mean
    assert noise_compiled.std().item() == pytest.approx(noise.std().item(), rel=0.02)
    assert abs(noise_compiled.mean().item()) < 5 * noise.std().item() / math.sqrt(noise.numel())
