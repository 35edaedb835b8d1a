"""Invariants as Hypothesis properties: budgets, bounds, optimality against budget-preserving perturbations,
round trips, level counts."""
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

import noisesim
from noisesim.allocate import Allocation, closed_form_energies, round_to_budget, waterfill_bits
from noisesim.config import QuantConfig
from noisesim.experiment.search import geometric_bisect
from noisesim.export.hardware import from_bits, to_bits
from noisesim.quant import FakeQuantize, qparams
from noisesim.precision.double_rounding import double_round

FAST = settings(max_examples=60, deadline=None)

sizes = st.integers(2, 8)
positive = st.floats(0.01, 100, allow_nan=False)


@st.composite
def layers(draw, low=0.0):
    """Sensitivities (some exactly 0 when ``low`` is 0) and MAC counts of 2-8 layers."""
    n = draw(sizes)
    c = draw(st.lists(st.one_of(st.just(low), st.floats(max(low, 1e-3), 50)), min_size=n, max_size=n))
    m = draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n))
    assume(sum(c) > 0)
    return np.array(c, float), np.array(m, float)


# -- closed-form energies ---------------------------------------------------------------------------------------
@FAST
@given(layers(), positive, st.floats(0.001, 0.9), st.data())
def test_closed_form_energies_meet_budget_and_floor_and_no_transfer_lowers_the_loss(cm, e_avg, floor, data):
    c, m = cm
    e = np.array(closed_form_energies(c, m, e_avg, floor))
    low = floor * e_avg
    assert (e * m).sum() / m.sum() == pytest.approx(e_avg, rel=1e-9)
    assert (e >= low * (1 - 1e-12)).all()
    # move the MACs' worth of energy delta from layer i to layer j: the loss sum c / E may not fall
    # drawn, not filtered (a filter on i != j and on floored givers tripped Hypothesis's filter_too_much check):
    # a giver above the floor exists, since the average is above it
    givers = [k for k in range(len(c)) if (e[k] - low) * m[k] > 1e-7 * e_avg * m.sum()]
    i = data.draw(st.sampled_from(givers))
    j = data.draw(st.sampled_from([k for k in range(len(c)) if k != i]))
    frac = data.draw(st.floats(0.01, 0.99))
    delta = frac * (e[i] - low) * m[i]  # what i can give without leaving the floor
    moved = e.copy()
    moved[i] -= delta / m[i]
    moved[j] += delta / m[j]
    assert (c / moved).sum() >= (c / e).sum() * (1 - 1e-9)


@FAST
@given(layers(low=1e-3), positive)
def test_closed_form_energies_follow_the_square_root_law_where_nothing_is_floored(cm, e_avg):
    c, m = cm
    e = np.array(closed_form_energies(c, m, e_avg, floor=1e-9))
    ratio = e / np.sqrt(c / m)
    assert np.allclose(ratio, ratio[0], rtol=1e-9)


# -- water-filled and rounded bits -----------------------------------------------------------------------------
@FAST
@given(layers(low=1e-6), st.floats(2.0, 8.0), st.data())
def test_water_filled_bits_meet_budget_and_bounds_and_no_transfer_lowers_the_noise(an, b_avg, data):
    a, n = an
    bits = np.array(waterfill_bits(a, n, b_avg, 2, 8))
    assert ((bits >= 2) & (bits <= 8)).all()
    assert (bits * n).sum() / n.sum() == pytest.approx(b_avg, abs=1e-6)
    i, j = data.draw(st.integers(0, len(a) - 1)), data.draw(st.integers(0, len(a) - 1))
    assume(i != j)
    delta = data.draw(st.floats(0.01, 0.99)) * min((bits[i] - 2) * n[i], (8 - bits[j]) * n[j])
    assume(delta > 1e-6)
    moved = bits.copy()
    moved[i] -= delta / n[i]
    moved[j] += delta / n[j]
    cost = lambda b: (np.maximum(a, 1e-30) * 4.0 ** -b).sum()  # noqa: E731
    assert cost(moved) >= cost(bits) * (1 - 1e-9)


@FAST
@given(st.lists(st.tuples(st.floats(0, 20), st.integers(1, 1000)), min_size=1, max_size=10),
       st.sampled_from([None, 1, 2]))
def test_rounding_stays_within_budget_and_no_value_could_still_be_raised(pairs, low):
    values, weights = [v for v, _ in pairs], [w for _, w in pairs]
    budget = float(np.dot(values, weights))
    average = budget / sum(weights)
    out = round_to_budget(values, weights, average, low=low)
    floors = [max(low or 0, math.floor(v + 1e-9)) for v in values]
    assert all(isinstance(o, int) and o >= (low or 0) and o <= f + 1 for o, f in zip(out, floors))
    spent = float(np.dot(out, weights))
    if (low or 0) * sum(weights) <= budget:
        assert spent <= budget * (1 + 1e-9) + 1e-9
    if np.dot(floors, weights) <= budget:  # nothing had to give a unit back: floor or floor + 1, none left out
        assert all(o in (f, f + 1) for o, f in zip(out, floors))
        assert not any(o == f and v > f + 1e-9 and w <= budget - spent - 1e-6
                       for o, f, v, w in zip(out, floors, values, weights))


# -- an allocation: JSON round trip, rescaling, whole photons --------------------------------------------------
def _model(quantize_energy: bool = False, per_channel: bool = False):
    net = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))
    sim = noisesim.prepare(net, noisesim.SimConfig(noise_type="thermal", quantize_energy=quantize_energy,
                                                   noise_per_channel=per_channel))
    noisesim.calibrate(sim, [torch.randn(16, 8)])
    return sim


MODEL = _model()
CHANNEL_MODEL = _model(per_channel=True)


@FAST
@given(st.lists(st.floats(0.05, 500), min_size=15, max_size=15), st.booleans(), st.floats(0.5, 200))
def test_an_allocation_round_trips_and_rescales_keeping_its_ratios(energies, per_channel, target):
    sim = CHANNEL_MODEL if per_channel else MODEL
    alloc = Allocation.from_model(sim, "trained", "channel" if per_channel else "layer")
    k = 0
    for a in alloc.layers.values():
        a.energy = energies[k:k + len(a.energy)]
        k += len(a.energy)
    back = Allocation.from_dict(alloc.to_dict())
    assert back.layers == alloc.layers and back.granularity == alloc.granularity
    scaled = alloc.with_average_energy(target)
    assert scaled.average_energy() == pytest.approx(target, rel=1e-9)
    ratios = [s / e for n in alloc.layers for s, e in zip(scaled.layers[n].energy, alloc.layers[n].energy)]
    assert np.allclose(ratios, ratios[0], rtol=1e-9)


@FAST
@given(st.lists(st.floats(0.1, 50), min_size=3, max_size=3), st.floats(1.0, 30))
def test_whole_photons_stay_within_the_budget(energies, target):
    sim = _model(quantize_energy=True)
    alloc = Allocation.from_model(sim)
    for a, e in zip(alloc.layers.values(), energies):
        a.energy = [e]
    alloc.with_average_energy(target).apply(sim)
    run = [m.noise.energy().item() for m in noisesim.sim_layers(sim)]
    assert all(e >= 1 and float(e).is_integer() for e in run)
    assert noisesim.average_energy(sim).item() <= max(target, 1.0) * (1 + 1e-9)


def test_whole_photons_of_the_example_keep_the_budget():
    """Three equal layers at 1.4 / 7.4 / 3.4 scaled to 1.5 photons/MAC once ran at 1.67 (each rounded alone)."""
    net = nn.Sequential(*[nn.Linear(8, 8) for _ in range(3)])
    sim = noisesim.prepare(net, noisesim.SimConfig(noise_type="thermal", quantize_energy=True))
    noisesim.calibrate(sim, [torch.randn(4, 8)])
    alloc = Allocation.from_model(sim)
    for a, e in zip(alloc.layers.values(), (1.4, 7.4, 3.4)):
        a.energy = [e]
    alloc.with_average_energy(1.5).apply(sim)
    assert noisesim.average_energy(sim).item() <= 1.5
    assert [m.noise.energy().item() for m in noisesim.sim_layers(sim)] == [1.0, 2.0, 1.0]


# -- the binary search ------------------------------------------------------------------------------------------
@FAST
@given(st.floats(0.01, 1.0), st.floats(2.0, 1e4), st.floats(0.0, 1.0), st.integers(1, 12))
def test_geometric_bisection_brackets_the_crossing(e_min, span, where, steps):
    e_max = e_min * span
    crossing = e_min * span ** where  # accuracy 1 from the crossing up, 0 below
    result = geometric_bisect(lambda e: float(e >= crossing), 0.5, e_min, e_max, steps)
    if crossing <= e_min:
        assert result.energy == e_min and len(result.probes) == 2
        return
    assert len(result.probes) == steps + 2
    assert crossing <= result.energy <= crossing * span ** (2.0 ** -steps) * (1 + 1e-9)
    assert result.accuracy == 1.0


def test_bisection_that_cannot_reach_the_target_says_so():
    result = geometric_bisect(lambda e: 0.1, 0.5, 1.0, 100.0, 5)
    assert result.energy is None and len(result.probes) == 1


# -- quantizers -------------------------------------------------------------------------------------------------
@FAST
@given(st.integers(2, 10), st.booleans(), st.floats(0.01, 100), st.floats(-5, 5), st.integers(0, 2 ** 16))
def test_fake_quant_uses_at_most_two_to_the_bits_levels_on_its_grid(bits, symmetric, scale, shift, seed):
    x = torch.randn(4096, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float() * scale + shift
    q = FakeQuantize(QuantConfig(bits=bits, symmetric=symmetric))
    q.calibrating = True
    q(x)
    q.freeze()
    y = q(x).detach()
    step, zp, qmin, qmax = qparams(q.lo.detach(), q.hi.detach(), bits, symmetric)
    levels = y / step + zp.round()
    assert y.unique().numel() <= 2 ** bits - (1 if symmetric else 0)
    assert torch.allclose(levels, levels.round(), atol=1e-3)
    assert levels.round().min() >= qmin and levels.round().max() <= qmax


@FAST
@given(st.integers(3, 8), st.integers(2, 8), st.lists(st.integers(-127, 127), min_size=1, max_size=64))
def test_double_rounding_is_the_rounded_shift_within_the_lower_range(top, bits, values):
    assume(bits <= top)
    qmax_top = 2 ** (top - 1) - 1
    q_top = torch.tensor(values, dtype=torch.float64).clamp(-qmax_top, qmax_top)
    q = double_round(q_top, top, bits)
    qmax = 2 ** (bits - 1) - 1
    assert (q.abs() <= qmax).all() and torch.equal(q, q.round())
    shifted = q_top / 2 ** (top - bits)
    inside = shifted.abs() <= qmax
    assert ((q - shifted)[inside].abs() <= 0.5).all()  # nearest level where the range allows
    assert torch.equal(q[~inside], torch.sign(shifted[~inside]) * qmax)
    if bits == top:
        assert torch.equal(q, q_top)


# -- test-bench bit strings -------------------------------------------------------------------------------------
@FAST
@given(st.integers(1, 32), st.booleans(), st.data())
def test_bit_strings_round_trip_and_refuse_what_does_not_fit(bits, signed, data):
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    values = data.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=20))
    strings = to_bits(np.array(values), bits, signed)
    assert all(len(s) == bits and set(s) <= {"0", "1"} for s in strings)
    assert [from_bits(s, bits, signed) for s in strings] == values
    with pytest.raises(ValueError, match="do not fit"):
        to_bits(np.array([hi + 1]), bits, signed)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=8), st.floats(0.0, 1.0))
def test_the_isotonic_curve_reaches_the_target_first_where_solve_says(values, level):
    """solve(t) is where the monotone fit first reaches t: the curve there equals t, and it is below t just before."""
    from noisesim.stats.isoaccuracy import fit_curve

    x = np.log(np.geomspace(1, 300, len(values)))
    curve = fit_curve(x, np.array(values), "isotonic")
    ys = curve.params[1]
    target = float(ys[0] + level * (ys[-1] - ys[0]))
    v = curve.solve(target)
    if not math.isfinite(v):
        assert (v < 0 and ys[0] >= target) or (v > 0 and ys[-1] < target)
        return
    assert float(curve(v)) == pytest.approx(target, abs=1e-9)
    assert float(curve(v - 1e-6)) < target + 1e-9
