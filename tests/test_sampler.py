"""The Gaussian sampler against N(0, 1) with fixed seeds, its streams, and noise under torch.compile."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

import noisesim
from noisesim.noise.sampler import CHUNKS, PARALLEL_MIN, GaussianSampler

N = 2_000_000  # above PARALLEL_MIN: filled in CHUNKS independent chunks


def _draws(seed: int = 0, n: int = N, stream=None) -> np.ndarray:
    s = GaussianSampler(seed)
    if stream is not None:
        s.reseed(stream)
    return s.sample(torch.Size([n]), torch.device("cpu"), torch.float32).numpy()


def test_draws_are_standard_normal():
    x = _draws()
    assert N > PARALLEL_MIN
    assert abs(x.mean()) < 4 / math.sqrt(N) and abs(x.var() - 1) < 4 * math.sqrt(2 / N)
    assert abs(stats.kurtosis(x, fisher=False) - 3) < 0.02 and abs(stats.skew(x)) < 0.01
    assert stats.kstest(x[:500_000], "norm").pvalue > 0.01
    for z in (1.0, 2.0, 3.0):  # two-sided tail mass within 5 standard errors of the Gaussian's
        p = 2 * stats.norm.sf(z)
        assert abs((np.abs(x) > z).mean() - p) < 5 * math.sqrt(p * (1 - p) / N)


def test_chunks_and_streams_are_independent_and_reproducible():
    x = _draws().reshape(CHUNKS, -1)
    corr = np.corrcoef(x)
    assert np.abs(corr[~np.eye(CHUNKS, dtype=bool)]).max() < 5 / math.sqrt(x.shape[1])
    assert np.array_equal(_draws(seed=3, n=1000), _draws(seed=3, n=1000))
    assert not np.array_equal(_draws(seed=3, n=1000), _draws(seed=4, n=1000))
    a, b = _draws(seed=3, n=100_000, stream=7), _draws(seed=3, n=100_000, stream=8)
    assert np.array_equal(a, _draws(seed=3, n=100_000, stream=7)) and abs(np.corrcoef(a, b)[0, 1]) < 0.02


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


def _layer_noise(seed: int) -> list[np.ndarray]:
    """The noise every layer of a four-layer network adds in one forward under ``seed``."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(4)])
    sim = noisesim.prepare(net, noisesim.SimConfig(noise_type="thermal", e_mac=5.0, seed=seed))
    x = torch.randn(2048, 64)
    noisesim.calibrate(sim, [x])
    added, clean = [], []
    noises = [m for m in sim.modules() if isinstance(m, noisesim.noise.NoiseModel)]
    hooks = [m.register_forward_pre_hook(lambda m, i: clean.append(i[0].clone())) for m in noises] + [
        m.register_forward_hook(lambda m, i, o: added.append((o - clean[-1]).flatten().numpy())) for m in noises]
    with torch.no_grad():
        sim(x)
    for h in hooks:
        h.remove()
    return added


def test_layers_of_neighbouring_seeds_draw_unrelated_noise():
    """Layer l+1 under seed s and layer l under seed s+1 once drew the same stream (seeds were seed + layer)."""
    s0, s1 = _layer_noise(3), _layer_noise(4)
    n = s0[0].size
    for a in s0:
        for b in s1:
            assert (a == b).mean() < 1e-3 and abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(n)
    again = _layer_noise(3)
    assert all(np.array_equal(a, b) for a, b in zip(s0, again))


def test_stream_seeds_differ_in_every_input_and_repeat():
    from noisesim.noise.sampler import stream_seeds

    base = stream_seeds(5, "layer1", None, CHUNKS)
    assert base == stream_seeds(5, "layer1", None, CHUNKS) and len(set(base)) == CHUNKS
    others = [stream_seeds(6, "layer1"), stream_seeds(5, "layer2"), stream_seeds(5, "layer1", 0),
              stream_seeds(5, "layer1", 1), stream_seeds(-5, "layer1"), stream_seeds(5, "layer1", -1)]
    firsts = [base[0]] + [o[0] for o in others]
    assert len(set(firsts)) == len(firsts)


def test_a_forked_process_draws_noise_after_its_parent_did():
    """The parent's thread pool has no threads in a forked child: the child must not wait on it forever."""
    import multiprocessing

    assert len(_draws(n=N)) == N  # the parent's pool is up
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        child = pool.apply_async(_draws, (3, N)).get(timeout=30)
    assert np.array_equal(child, _draws(seed=3, n=N))
