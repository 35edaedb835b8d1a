"""Allocation methods against hand computations, brute force, exact Hessians and numerical optima."""
import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.stats import spearmanr
from torch import nn

import noisesim
from noisesim.allocate import (AllocationProblem, ClosedFormAllocator, GreedyAllocator, HessianAllocator, choose,
                               closed_form_energies, finite_difference_sensitivity, fisher_sensitivity, greedy,
                               round_to_budget, waterfill_bits, weight_hessian_trace)
from noisesim.allocate.activation_bits import input_traces
from noisesim.allocate.integer_program import BIT_CANDIDATES, weight_bit_costs
from noisesim.allocate.sensitivity import Sensitivity, cautious_traces
from noisesim.allocate.trained import AllocationPenalty, TrainedAllocator, TrainedSettings, fill_bits
from noisesim.data.registry import build_data
from noisesim.data.tasks import Classification
from noisesim.experiment.config import ExperimentConfig, Point
from noisesim.experiment.runner import make_allocator
from noisesim.models.zoo import build_model
from noisesim.train.loop import TrainConfig


def test_greedy_reproduces_the_hand_computed_sequence():
    drops = {"a": 0.001, "b": 0.02, "c": 0.004, "d": 0.006}

    def evaluate(low):  # additive drops plus a penalty when c and d are both low
        return 0.9 - sum(drops[n] for n in low) - (0.002 if {"c", "d"} <= low else 0)

    calls = []
    r = greedy(list(drops), lambda low: calls.append(low) or evaluate(low), epsilon=0.012)
    assert len(calls) == len(set(calls)) == 1 + 4 + 3  # base, each alone, then ({a} known) {a,c}, {a,c,d}, {a,c,b}
    assert [n for n, _ in r.drops] == ["a", "c", "d", "b"]
    assert r.low == ["a", "c"]  # a: 0.001, +c: 0.005, +d: 0.013 > 0.012 REJECT, +b: 0.025 REJECT
    assert [line.split()[0] for line in r.log[-5:-1]] == ["ACCEPT", "ACCEPT", "REJECT", "REJECT"]
    assert r.final == pytest.approx(0.895) and "2 of 4 layers low" in r.log[-1]
    # a budget stops it early: once two layers are low, no further layer is tried
    r = greedy(list(drops), evaluate, epsilon=1.0, done=lambda low: len(low) >= 2)
    assert r.low == ["a", "c"] and r.log[-2] == "budget met: no further layer lowered"


@pytest.mark.parametrize("seed", range(5))
def test_integer_program_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    costs, weights = rng.random((4, 3)) * 10, rng.random((4, 3)) * 5
    budget = float(weights.min(1).sum() + rng.random() * (weights.max(1).sum() - weights.min(1).sum()))
    picks = choose(costs, weights, budget)
    feasible = [p for p in itertools.product(range(3), repeat=4) if sum(weights[l, k] for l, k in enumerate(p)) <= budget]
    best = min(sum(costs[l, k] for l, k in enumerate(p)) for p in feasible)
    assert sum(costs[l, k] for l, k in enumerate(picks)) == pytest.approx(best)
    assert sum(weights[l, k] for l, k in enumerate(picks)) <= budget + 1e-9


@pytest.mark.parametrize("seed", range(5))
def test_integer_program_is_exact_on_tiny_costs(seed):
    """Costs of 1e-10..1e-5, as a/a_max * 4^-b gives layers of small trace: the solver's default
    absolute gap (1e-6) once stopped early, leaving bits unspent (EfficientNet-Lite0's classifier at
    2 bits under a 7-bit budget)."""
    rng = np.random.default_rng(seed)
    costs = np.sort(rng.random((5, 4)), 1)[:, ::-1] * 10.0 ** rng.uniform(-10, -5, (5, 1))
    weights = rng.integers(1, 50, (5, 1)) * np.arange(2, 6)[None, :]
    budget = float(weights[:, 0].sum() + rng.random() * (weights[:, -1].sum() - weights[:, 0].sum()))
    picks = choose(costs, weights, budget)
    feasible = [p for p in itertools.product(range(4), repeat=5) if sum(weights[l, k] for l, k in enumerate(p)) <= budget]
    best = min(sum(costs[l, k] for l, k in enumerate(p)) for p in feasible)
    assert sum(costs[l, k] for l, k in enumerate(picks)) == pytest.approx(best, rel=1e-9, abs=0)


def test_hutchinson_trace_matches_the_exact_hessian_trace():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    sim = noisesim.prepare(net, noisesim.SimConfig(weight_bits=None, act_bits=None))
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    est = weight_hessian_trace(sim, [(x, y)], Classification(), iters=4000, tol=0.0)
    params = [sim[0].weight, sim[2].weight]

    def loss_of(w0, w2):
        h = torch.tanh(nn.functional.linear(x, w0, sim[0].bias))
        return nn.functional.cross_entropy(nn.functional.linear(h, w2, sim[2].bias), y)

    hess = torch.autograd.functional.hessian(loss_of, tuple(p.detach() for p in params))
    for i, name in enumerate(("0", "2")):
        exact = torch.diagonal(hess[i][i].reshape(params[i].numel(), -1)).sum().item()
        assert est.values[name].item() == pytest.approx(exact, rel=0.05)


def test_input_traces_match_the_exact_hessian_and_the_per_sample_fisher():
    """t_l of every layer's quantized input: Hutchinson against the exact Hessian trace of the batch-mean loss
    (16-bit inputs, so that quantization barely moves the function), Fisher against per-sample gradients."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    sim = noisesim.prepare(net, noisesim.SimConfig(weight_bits=None, act_bits=16))
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    noisesim.calibrate(sim, [(x, y)])
    hutchinson = input_traces(sim, [(x, y)], Classification(), estimator="hutchinson", iters=4000, tol=0.0)
    fisher = input_traces(sim, [(x, y)], Classification(), estimator="fisher")
    xq = sim[0].act_quant(x).detach()

    def loss_of(name, t, labels):
        return nn.functional.cross_entropy(net[2](torch.tanh(net[0](t)) if name == "0" else t), labels)

    for name, t in (("0", xq), ("2", torch.tanh(net[0](xq)).detach())):
        exact = torch.autograd.functional.hessian(lambda v: loss_of(name, v, y), t).reshape(t.numel(), -1).diagonal().sum().item()
        assert hutchinson.extra["trace"][name] == pytest.approx(exact, rel=0.05)
        grads = []
        for i in range(len(t)):
            ti = t[i:i + 1].clone().requires_grad_()
            grads.append(torch.autograd.grad(loss_of(name, ti, y[i:i + 1]), ti)[0].pow(2).sum().item())
        assert fisher.extra["trace"][name] == pytest.approx(np.mean(grads), rel=1e-3)


def test_a_non_positive_weight_trace_is_not_free_to_quantize():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    sim = noisesim.prepare(net, noisesim.SimConfig(weight_bits=8, act_bits=None))
    sizes = {"0": 128, "2": 256, "4": 64}
    est = Sensitivity({"0": torch.tensor([12.8]), "2": torch.tensor([-0.3]), "4": torch.tensor([3.2])}, "t")
    safe, replaced = cautious_traces(est, sizes)
    # per weight: 0.1 and 0.05 measured; layer "2" takes the larger, 0.1 * 256
    assert replaced == ["2"] and safe == pytest.approx({"0": 12.8, "2": 25.6, "4": 3.2})
    costs = weight_bit_costs(sim, safe)
    n = np.array([sizes[k] for k in costs], float)
    picks = choose(np.array([costs[k] for k in costs]), n[:, None] * np.array(BIT_CANDIDATES)[None, :], 6 * n.sum())
    assert BIT_CANDIDATES[picks[list(costs).index("2")]] > min(BIT_CANDIDATES)  # clipped at 0 it would get 2 bits
    with pytest.raises(ValueError, match="non-positive"):
        cautious_traces(Sensitivity({k: torch.tensor([-1.0]) for k in sizes}, "t"), sizes)


def test_a_non_positive_energy_sensitivity_does_not_get_the_least_energy(monkeypatch):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 64))
    sim = noisesim.prepare(net, noisesim.SimConfig(noise_type="thermal", e_mac=10.0, seed=0))
    batches = [(torch.randn(32, 8), torch.randint(0, 64, (32,)))]
    noisesim.calibrate(sim, batches, max_batches=1)
    # per MAC (128, 256, 1024 MACs per example): 0.1 and 0.001 measured; "2" would be free if clipped at 0
    sens = Sensitivity({"0": torch.tensor([12.8]), "2": torch.tensor([-0.3]), "4": torch.tensor([1.024])}, "t", 1, 1)
    monkeypatch.setattr("noisesim.allocate.integer_program.hessian_sensitivity", lambda *a, **k: sens)
    alloc = HessianAllocator().allocate(AllocationProblem(sim, 10.0, "layer", batches, Classification()))
    energy = {n: a.energy[0] for n, a in alloc.layers.items()}
    assert alloc.info["replaced_traces"] == 1 and alloc.average_energy() == pytest.approx(10.0, rel=1e-6)
    assert min(energy["0"], energy["2"]) > 4 * energy["4"]


def test_closed_form_meets_the_budget_and_is_the_numerical_optimum():
    rng = np.random.default_rng(0)
    c, m, e_avg = rng.random(6) * 5 + 0.1, rng.integers(1, 100, 6).astype(float), 7.0
    e = np.array(closed_form_energies(c, m, e_avg))
    assert (e * m).sum() / m.sum() == pytest.approx(e_avg, rel=1e-9)
    budget = {"type": "eq", "fun": lambda x: (x * m).sum() / m.sum() - e_avg}
    num = minimize(lambda x: (c / x).sum(), np.full(6, e_avg), constraints=[budget], bounds=[(1e-6, None)] * 6,
                   method="SLSQP", options={"ftol": 1e-14, "maxiter": 1000})
    assert np.allclose(e, num.x, rtol=1e-3) and (c / e).sum() <= num.fun + 1e-9


def test_closed_form_floors_insensitive_layers_and_still_meets_the_budget():
    e = np.array(closed_form_energies([0.0, 1.0, 4.0], [10, 10, 10], 5.0, floor=0.01))
    assert e[0] == pytest.approx(0.05) and e.mean() == pytest.approx(5.0) and e[2] > e[1]
    # a channel floored in one pass once fell below the floor when the next pass rescaled it
    assert closed_form_energies([0, 0.072 ** 2, 1], [1, 1, 1], 1.0, floor=0.2) == pytest.approx([0.2, 0.2, 2.6])
    assert closed_form_energies([0, 0], [1, 3], 2.5) == [2.5, 2.5]  # nothing measured: uniform
    for bad in ({"macs": [1, 0]}, {"floor": 0.0}, {"floor": 1.0}):
        with pytest.raises(ValueError, match="MAC count" if "macs" in bad else "floor"):
            closed_form_energies([1.0, 1.0], bad.get("macs", [1, 1]), 1.0, bad.get("floor", 0.05))


def test_water_filling_bits_meet_the_budget_and_follow_the_sensitivities():
    a, n = [1.0, 16.0, 256.0, 1e-6], [100, 100, 100, 100]
    bits = waterfill_bits(a, n, 4.0)
    assert np.dot(bits, n) / sum(n) == pytest.approx(4.0, abs=1e-6)
    assert bits[3] == 2 and bits[0] < bits[1] < bits[2]
    assert bits[2] - bits[1] == pytest.approx(2.0)  # half a bit per factor 2 in a (x16: 2 bits)
    rounded = round_to_budget(bits, n, 4.0)
    assert all(float(b).is_integer() for b in rounded) and np.dot(rounded, n) <= 4.0 * sum(n)


@pytest.fixture(scope="module")
def fmnist():
    data = build_data("fashion_mnist", train_batch_size=64, val_batch_size=500, val_subset=500)
    return data, build_model("resnet20", "fashion_mnist", 10, 1)


def _thermal(model, data, e=10.0, per_channel=False):
    sim = noisesim.prepare(model, noisesim.SimConfig(noise_type="thermal", e_mac=e, noise_per_channel=per_channel,
                                                     seed=0))
    noisesim.calibrate(sim, data.train, max_batches=2)
    return sim


@pytest.mark.slow
def test_fisher_sensitivity_ranks_layers_like_finite_differences(fmnist):
    data, model = fmnist
    sim = _thermal(model, data)
    held = list(itertools.islice(data.train, 8))  # the same training samples for both estimates
    fisher = fisher_sensitivity(sim, held, data.task, max_batches=8).per_layer()
    fd = finite_difference_sensitivity(sim, held, data.task, energy=3.0, max_batches=8, draws=1).per_layer()
    names = list(fisher)
    assert spearmanr([fisher[n] for n in names], [fd[n] for n in names])[0] >= 0.8  # measured 0.94


@pytest.mark.parametrize("method", ["closed_form", "hessian", "greedy"])
def test_methods_spend_exactly_the_budget(fmnist, method):
    data, model = fmnist
    sim = _thermal(model, data, per_channel=method == "closed_form")
    allocator = {"closed_form": ClosedFormAllocator(batches=2),
                 "hessian": HessianAllocator(batches=1, iters=5),
                 "greedy": GreedyAllocator(epsilon=0.02, batches=2, verbose=False)}[method]
    alloc = allocator.allocate(AllocationProblem(sim, 5.0, "channel" if method == "closed_form" else "layer",
                                                 data.train, data.task))
    assert alloc.average_energy() == pytest.approx(5.0, rel=1e-6)
    assert noisesim.average_energy(sim).item() == pytest.approx(5.0, rel=1e-5)
    energies = [e for a in alloc.layers.values() for e in a.energy]
    assert max(energies) / min(energies) > 1.5  # not uniform
    assert alloc.info["alloc_forward"] > 0 and alloc.info["alloc_seconds"] > 0


def _bits_mlp(bits):
    """Three Linear layers (400, 1600, 160 weights) with learnable weight bits set to ``bits``."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 4))
    sim = noisesim.prepare(model, noisesim.SimConfig(noise_type="none", weight_bits=8, act_bits=8,
                                                     train_bitwidth=True, weight_bits_only=True, bit_rounding="round",
                                                     seed=0))
    noisesim.calibrate(sim, [(torch.randn(64, 10), torch.zeros(64, dtype=torch.long))], max_batches=1)
    layers = noisesim.sim_layers(sim)
    for layer, b in zip(layers, bits):
        layer.weight_quant.bitwidth.set_bits(b)
    return sim, layers


def test_the_hutchinson_settings_reach_the_closed_form():
    cfg = ExperimentConfig(hutchinson_iters=3, hutchinson_tol=0.0, sensitivity_batches=1)
    allocator = make_allocator(cfg, Point("none", "closed_form", "layer", None, None, 8, 8, 4.0, None, None, None, None, 0))
    sim, _ = _bits_mlp([8, 8, 8])
    batches = [(torch.randn(32, 10), torch.randint(0, 4, (32,)))]
    alloc = allocator.allocate(AllocationProblem(sim, None, "layer", batches, Classification(),
                                                 quantity="weight_bits", target_weight_bits=4.0))
    assert alloc.info["alloc_backward"] == 3 + 1  # one gradient, then three Hessian-vector products


@pytest.mark.parametrize("budget", [3.0, 3.5, 4.25, 5.0])
def test_closed_form_bits_meet_the_budget_and_no_budget_preserving_change_lowers_their_cost(monkeypatch, budget):
    """Against brute force over every whole-bit allocation: the closed form's bits are the cheapest within the budget
    under its own model sum_l tr(H_l) R_l^2 4^(-b_l). At 5 bits, rounding the water-filled bits (8 / 3.95 / 8)
    once stranded the budget at 8 / 3 / 8 (4.30 bits, 58% above the cost of 7 / 4 / 8)."""
    sim, layers = _bits_mlp([8, 8, 8])
    traces = {"0": 50.0, "2": 2.0, "4": 300.0}
    monkeypatch.setattr("noisesim.allocate.closed_form.weight_hessian_trace",
                        lambda *a, **k: Sensitivity({n: torch.tensor([t]) for n, t in traces.items()}, "t", 1, 1))
    alloc = ClosedFormAllocator(batches=1).allocate(AllocationProblem(
        sim, None, "layer", [], Classification(), quantity="weight_bits", target_weight_bits=budget))
    bits = [alloc.layers[n].weight_bits[0] for n in traces]
    n = np.array([layer.weight.numel() for layer in layers], float)
    a = np.array([traces[k] for k in traces]) * np.array([float(m.weight.detach().max() - m.weight.detach().min())
                                                           for m in layers]) ** 2
    cost = lambda b: float((a * 4.0 ** -np.asarray(b, float)).sum())  # noqa: E731
    fits = [b for b in itertools.product(range(2, 9), repeat=3) if np.dot(b, n) <= budget * n.sum()]
    assert np.dot(bits, n) <= budget * n.sum() and cost(bits) == pytest.approx(min(map(cost, fits)), rel=1e-9)
    assert alloc.average_weight_bits() == pytest.approx(np.dot(bits, n) / n.sum())


def test_fill_bits_spends_the_rounded_budget_largest_remainder_first():
    sim, layers = _bits_mlp([4.4, 4.3, 4.2])  # all round to 4: 4.00 average bits for a budget of 4.5
    settings = TrainedSettings(TrainConfig(steps=1), energy=False, bits=True, target_weight_bits=4.5)
    penalty = AllocationPenalty(sim, settings, None)
    assert noisesim.average_weight_bits(sim).item() == pytest.approx(4.0)
    # by hand, 1080 spare bit-weights: first pass +400 (remainder 0.4) fits, +1600 (0.3) does not, +160 (0.2)
    # fits; second pass +1600 does not, +400 fits (40 left), +160 does not; a third raises nothing
    assert fill_bits(sim, penalty) == 3
    assert [layer.weight_quant.bits().item() for layer in layers] == [6, 4, 5]
    assert noisesim.average_weight_bits(sim).item() == pytest.approx(9600 / 2160)


def test_trained_bits_leave_less_than_one_layer_bit_of_the_budget():
    sim, layers = _bits_mlp([8, 8, 8])
    torch.manual_seed(1)
    batches = [(torch.randn(32, 10), torch.randint(0, 4, (32,))) for _ in range(4)]
    settings = TrainedSettings(TrainConfig(steps=20, lr=0.05), energy=False, bits=True, lambd=5.0,
                               target_weight_bits=4.5)
    TrainedAllocator(settings).allocate(AllocationProblem(sim, None, "layer", batches, Classification()))
    w = noisesim.average_weight_bits(sim).item()
    assert -1e-6 <= 4.5 - w < 160 / 2160  # within budget, and no layer could take one bit more


def test_the_closed_form_measures_the_sensitivities_once_per_sweep_and_allocates_the_same():
    """With the sweep's memo, the second target (and the other granularity) reuses the first one's
    sensitivities: the same energies as measuring them again, and no further forward or backward pass."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 4))
    batches = [(torch.randn(32, 10), torch.randint(0, 4, (32,))) for _ in range(2)]
    cfg, memo = ExperimentConfig(sensitivity_batches=2), {}

    def allocate(target, granularity, memo):
        sim = noisesim.prepare(model, noisesim.SimConfig(noise_type="shot", weight_bits=8, act_bits=8, seed=0,
                                                         noise_per_channel=granularity == "channel"))
        noisesim.calibrate(sim, batches)
        point = Point("shot", "closed_form", granularity, None, target, 8, 8, None, None, None, None, None, 0)
        problem = AllocationProblem(sim, target, granularity, batches, Classification())
        with noisesim.allocate.measure_cost(sim) as cost:
            alloc = make_allocator(cfg, point, memo).allocate(problem)
        return alloc, cost.forward + cost.backward

    first, passes = allocate(10.0, "layer", memo)
    assert passes > 0 and len(memo) == 1
    for target, granularity in ((30.0, "layer"), (30.0, "channel")):
        reused, reused_passes = allocate(target, granularity, memo)
        fresh, _ = allocate(target, granularity, None)
        assert reused_passes == 0 and reused.info["alloc_forward"] == first.info["alloc_forward"]
        for name, layer in fresh.layers.items():
            assert torch.allclose(torch.as_tensor(reused.layers[name].energy), torch.as_tensor(layer.energy))
