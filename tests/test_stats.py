"""Bootstrap intervals and iso-accuracy energies on synthetic curves with a known answer."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from noisesim.reports.savings import write_savings
from noisesim.stats import (Evaluation, auroc_score, binomial_interval, fit_curve, iso_energy, metric_interval, resamples,
                            saving)

A, B, M, S = 0.1, 0.94, math.log(10), 0.6  # the true curve: Gompertz in log E (or logistic where said)
GRID = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256.0])


def truth(e, kind="gompertz"):
    z = (np.log(e) - M) / S
    return A + (B - A) * (np.exp(-np.exp(-z)) if kind == "gompertz" else 1 / (1 + np.exp(-z)))


def true_energy(target, kind="gompertz"):
    u = (target - A) / (B - A)
    return math.exp(M + S * (-math.log(-math.log(u)) if kind == "gompertz" else math.log(u / (1 - u))))


def curve_points(rng, n, draws, shift=1.0, grid=GRID):
    """Outcomes of a model whose accuracy at energy E is truth(E * shift): every example has a difficulty
    shared across energies (so the sampling errors of the points are correlated, as on a real test set)
    plus a small per-draw jitter (the noise draws)."""
    u = rng.random(n)
    return [Evaluation(float(e), (np.clip(u + rng.normal(0, 0.05, (draws, n)), 0, 1) < truth(e * shift))
                       .astype(np.float32)) for e in grid]


def test_accuracy_interval_matches_the_binomial_one():
    rng = np.random.default_rng(0)
    n, p = 4000, 0.8
    outcomes = (rng.random((1, n)) < p).astype(np.float32)
    lo, hi = metric_interval(outcomes, np.zeros(n), n_boot=2000)
    assert (hi - lo) == pytest.approx(2 * 1.96 * math.sqrt(p * (1 - p) / n), rel=0.1)


def test_interval_covers_noise_draws_as_well_as_examples():
    rng = np.random.default_rng(1)
    n = 20000  # examples so many that their sampling error is small: the draws dominate
    outcomes = np.stack([(rng.random(n) < p).astype(np.float32) for p in (0.5, 0.6, 0.7, 0.8)])
    lo, hi = metric_interval(outcomes, np.zeros(n), n_boot=1000)
    assert hi - lo > 0.1  # the spread of the draws, not the 0.01 of the examples alone
    lo1, hi1 = metric_interval(outcomes[:1], np.zeros(n), n_boot=1000)
    assert hi1 - lo1 < 0.02


@pytest.mark.parametrize("kind,truth_kind", [("gompertz", "gompertz"), ("logistic", "logistic"),
                                              ("isotonic", "gompertz")])
def test_fits_recover_the_iso_energy_of_a_clean_curve(kind, truth_kind):
    grid = np.geomspace(1, 256, 40 if kind == "isotonic" else 9)
    x, y = np.log(grid), truth(grid, truth_kind)
    e = math.exp(fit_curve(x, y, kind).solve(0.85))
    assert e == pytest.approx(true_energy(0.85, truth_kind), rel=0.01)


def test_isotonic_curve_follows_monotone_points_and_stays_monotone_between_them():
    x, y = np.log(GRID), truth(GRID)
    curve = fit_curve(x, y, "isotonic")
    fine = np.linspace(x[0], x[-1], 2000)
    assert np.allclose(curve(x), y) and np.all(np.diff(curve(fine)) >= -1e-12)
    assert curve.solve(float(y[4])) == pytest.approx(x[4])  # a target on a point is that point
    noisy = fit_curve(np.log([1, 2, 2, 4]), np.array([0.5, 0.7, 0.6, 0.65]), "isotonic")
    assert np.allclose(noisy(np.log([1, 2, 4])), [0.5, 0.65, 0.65])  # ties averaged, then pooled


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["isotonic", "gompertz"])
def test_bootstrap_interval_of_the_iso_energy_covers_the_truth_about_95_percent(kind):
    rng = np.random.default_rng(0)
    target, truth_e, hits, runs = 0.85, true_energy(0.85), 0, 200
    for k in range(runs):
        n = 1000
        result = iso_energy(curve_points(rng, n, 2), np.zeros(n), target, resamples(n, 60, seed=k), kind=kind)
        hits += result.lo <= truth_e <= result.hi
    assert 0.85 <= hits / runs <= 0.99


def test_saving_of_a_twice_as_efficient_allocation_is_half_and_significant():
    rng = np.random.default_rng(2)
    n = 2000
    reps = resamples(n, 200, seed=0)
    uniform = iso_energy(curve_points(rng, n, 2), np.zeros(n), 0.85, reps, salt=1)
    better = iso_energy(curve_points(rng, n, 2, shift=2.0), np.zeros(n), 0.85, reps, salt=2)
    s, lo, hi = saving(better, uniform)
    assert s == pytest.approx(0.5, abs=0.08) and 0 < lo < 0.5 < hi < 1


def test_identical_allocations_save_nothing_significant():
    rng = np.random.default_rng(3)
    n = 1000
    reps = resamples(n, 200, seed=0)
    u = rng.random(n)
    points = [Evaluation(float(e), (np.clip(u + rng.normal(0, 0.05, (2, n)), 0, 1) < truth(e)).astype(np.float32))
              for e in GRID]
    again = [Evaluation(p.energy, (np.clip(u + rng.normal(0, 0.05, (2, n)), 0, 1) < truth(p.energy)).astype(
        np.float32)) for p in points]
    s, lo, hi = saving(iso_energy(again, np.zeros(n), 0.85, reps, salt=2),
                       iso_energy(points, np.zeros(n), 0.85, reps, salt=1))
    assert lo < 0 < hi


def test_targets_outside_the_evaluated_energies_are_not_extrapolated():
    rng = np.random.default_rng(4)
    n = 500
    points = curve_points(rng, n, 1, grid=np.array([1, 2, 4, 8.0]))
    reps = resamples(n, 50)
    assert iso_energy(points, np.zeros(n), 0.93, reps).energy == math.inf  # the curve reaches only about 0.3 by E = 8
    assert iso_energy(points, np.zeros(n), 0.05, reps).energy == -math.inf


def test_auroc_is_the_rank_statistic():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.8])
    labels = np.array([0, 0, 1, 1, 0])
    pairs = [(s_pos > s_neg) + 0.5 * (s_pos == s_neg) for s_pos in scores[labels == 1] for s_neg in scores[labels == 0]]
    assert auroc_score(scores, labels) == pytest.approx(np.mean(pairs))
    assert auroc_score(np.array([0.9, 0.2]), np.array([1, 0])) == 1.0  # one positive, one negative: defined
    assert auroc_score(np.array([0.2, 0.9]), np.array([1, 0])) == 0.0
    for one_class in (np.zeros(4), np.ones(4)):  # no pairs to rank: undefined, not 0.5
        assert math.isnan(auroc_score(np.arange(4.0), one_class))


def _synthetic_run(path, shift):
    """A run folder with a uniform curve and a 'trained per layer' one whose accuracy at E is uniform's at E*shift."""
    rng = np.random.default_rng(5)
    n, rows = 2000, []
    (path / "outcomes").mkdir(parents=True)
    np.savez(path / "outcomes" / "float.npz", outcomes=(rng.random((1, n)) < 0.95).astype(np.uint8),
             targets=np.zeros(n), metric=np.array("accuracy"))
    for label, k in (("uniform", 1.0), ("trained per layer", shift)):
        for i, ev in enumerate(curve_points(rng, n, 2, shift=k)):
            pid = f"{label[0]}{i}"
            np.savez(path / "outcomes" / f"{pid}.npz", outcomes=ev.outcomes.astype(np.uint8), targets=np.zeros(n),
                     metric=np.array("accuracy"))
            rows.append({"point_id": pid, "model": "m", "dataset": "d", "noise_type": "thermal", "clean_id": "c",
                         "allocation_label": label, "avg_emac": ev.energy, "weight_bits": 8, "act_bits": 8,
                         "draws": 2, "accuracy": ev.outcomes.mean(),
                         # allocation cost: none for uniform; 5 s on average, 4 forward + 3 backward passes
                         "alloc_seconds": 0 if label == "uniform" else i + 1,
                         "alloc_forward": 0 if label == "uniform" else 4,
                         "alloc_backward": 0 if label == "uniform" else 3})
    pd.DataFrame(rows).to_csv(path / "results.csv", index=False)
    fields = {"acc_drop": 0.1, "target_acc": None, "target_reference": "float", "curve_fit": "gompertz",
              "bootstrap": 200}
    (path / "config.json").write_text(json.dumps({"fields": {k: {"value": v} for k, v in fields.items()}}))
    return path


def test_savings_table_from_curves(tmp_path):
    run = _synthetic_run(tmp_path / "run", shift=2.0)
    assert write_savings([run], run)
    table = pd.read_csv(run / "savings.csv")
    trained = table[table["allocation_label"] == "trained per layer"].iloc[0]
    assert trained["saving"] == pytest.approx(0.5, abs=0.1) and trained["saving_lo"] > 0
    md = (run / "savings.md").read_text()
    assert "2000 × 2" in md and "float 9" in md and "not significant" not in md and "| 5 s, 4 + 3 |" in md


def test_a_saving_that_may_be_zero_is_marked_not_significant(tmp_path):
    run = _synthetic_run(tmp_path / "run", shift=1.0)
    write_savings([run], run)
    assert "not significant" in (run / "savings.md").read_text()


def test_compared_runs_get_a_paired_saving_against_the_first_run(tmp_path):
    base = _synthetic_run(tmp_path / "base", shift=1.0)  # its trained curve is no better than uniform
    better = _synthetic_run(tmp_path / "better", shift=2.0)  # trained reaches any accuracy at half the energy
    write_savings([base, better], tmp_path / "out", labels=["base", "better"])
    table = pd.read_csv(tmp_path / "out" / "savings.csv")
    trained = table[(table["run"] == "better") & (table["allocation_label"] == "trained per layer")].iloc[0]
    assert trained["saving_vs_first"] == pytest.approx(0.5, abs=0.1) and trained["saving_vs_first_lo"] > 0
    uniform = table[(table["run"] == "better") & (table["allocation_label"] == "uniform")].iloc[0]
    assert uniform["saving_vs_first"] == pytest.approx(0, abs=1e-9)  # the same uniform curve in both runs
    md = (tmp_path / "out" / "savings.md").read_text()
    assert md.startswith("| run |") and "saving vs base" in md and "(reference)" in md


def test_binomial_interval_is_wilsons_and_matches_the_bootstrap_over_examples():
    lo, hi = binomial_interval(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)  # Wilson, z = 1.96
    lo90, hi90 = binomial_interval(0.5, 100, level=0.9)
    assert lo90 == pytest.approx(0.4188, abs=1e-4) and hi90 == pytest.approx(0.5812, abs=1e-4)  # z = 1.645
    outcomes = (np.random.default_rng(0).random((1, 2000)) < 0.9).astype(float)
    boot = metric_interval(outcomes, np.zeros(2000), n_boot=2000)
    wilson = binomial_interval(outcomes.mean(), 2000)
    assert np.allclose(boot, wilson, atol=3e-3)
