"""Iso-accuracy energy from a fitted accuracy-vs-energy curve, with bootstrap intervals.

An allocation is evaluated at several average energies E_i (Monte-Carlo draws x test examples
each). Accuracy rises with log E from chance to the model's noise-free level, so it is fitted
by a monotone curve in x = log E and solved for the energy E* that reaches a target accuracy.

Fit. The default, ``isotonic``, assumes only that accuracy does not fall as energy rises:
isotonic regression (pool-adjacent-violators) of the points' accuracies, then monotone cubic
Hermite interpolation (PCHIP, Fritsch & Carlson 1980) in x = log E between them, solved for x*
by root finding in the bracketing interval. The alternatives are four-parameter sigmoids in x,

    gompertz:  acc(x) = a + (b - a) exp(-exp(-(x - m) / s)),
    logistic:  acc(x) = a + (b - a) / (1 + exp(-(x - m) / s)),     0 <= a <= b <= 1,  s > 0,

smooth and monotone by construction, but one shape from chance level to plateau. Measured
curves do not keep to one shape: on the Fashion-MNIST ResNet-20 under shot noise (uniform
energies 3 ... 3000 photons/MAC, 10,000 images) the Gompertz fit leaves an RMS residual of 0.3
points and, because the curve is nearly flat at the target (1 point below float), that error
moves E* from 277 photons/MAC (the points themselves cross the target between 100 and 300) to
132; a five-parameter Richards curve degenerates to the same Gompertz fit. Near a flat target a
residual of a few tenths of a point is a factor of two in energy, so the estimate should follow
the points, and the bootstrap (below) carries their noise into the interval. The price is a
grid dense enough near the target (half-decade steps: the interpolation between two points
bends like the curve); sigmoids stay available (``--curve_fit gompertz``) for sparse grids.
Every fit's RMS residual is reported, so that a poor fit shows.

Interval. Every bootstrap replicate (see ``noisesim.stats.bootstrap``) resamples the test
examples once — shared by all allocations and by the reference model that sets the target — and
each evaluation's draws; the curves are refitted and solved again. The percentile interval of
E* covers test-set sampling and noise alike, and the saving 1 - E*_method / E*_uniform gets its
own interval from the paired replicates. A target the curve does not reach inside the
evaluated energies gives E* = +inf (not reached) and one below the lowest energy -inf (reached
everywhere): neither is extrapolated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Optional, Sequence

import numpy as np

from noisesim.settings import ConfigError, at_least_one, fraction, positive, setting
from noisesim.stats.bootstrap import Resample, Score, accuracy_score, interval, metric, replicate_metric

# the sigmoid families: u = shape(z) in (0, 1), z = inverse(u), d shape / dz
SHAPES = {
    "gompertz": (lambda z: np.exp(-np.exp(-z)), lambda u: -math.log(-math.log(u)),
                 lambda z: np.exp(-z) * np.exp(-np.exp(-z))),
    "logistic": (lambda z: 1 / (1 + np.exp(-z)), lambda u: math.log(u / (1 - u)),
                 lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
}
FITS = ("isotonic", "gompertz", "logistic")
REFERENCES = ("float", "quantized")
E = "evaluation and search"


@dataclass(frozen=True)
class IsoAccuracySettings:
    """The iso-accuracy target of a sweep and, with ``binary_search``, the bisection that finds its energy.
    None of them changes a point's result: they choose the points and read the curves."""

    binary_search: bool = setting(False, "find the least energy reaching --target_acc / --acc_drop", E,
                                  reaches="never")
    target_acc: Optional[float] = setting(None, "iso-accuracy target: an accuracy to reach (a fraction)", E,
                                          parse=float, check=fraction, reaches="never")
    acc_drop: Optional[float] = setting(None, "iso-accuracy target: the reference accuracy (--target_reference) "
                                        "minus this (a fraction)", E, parse=float, check=fraction, reaches="never")
    target_reference: str = setting("float", "what --acc_drop is taken from: the float model or the quantized "
                                    "model without noise", E, choices=lambda: REFERENCES, reaches="never")
    curve_fit: str = setting("isotonic", "monotone fit of accuracy against log energy for iso-accuracy energies",
                             E, choices=lambda: FITS, reaches="never")
    search_steps: int = setting(8, "bisection steps", E, check=at_least_one, reaches="never")
    e_min: float = setting(0.01, "lower end of the energy search", E, unit="photons/MAC", check=positive,
                           reaches="never")
    e_max: float = setting(1000.0, "upper end of the energy search", E, unit="photons/MAC", check=positive,
                           reaches="never")

    def __post_init__(self):
        if self.target_acc is not None and self.acc_drop is not None:
            raise ConfigError("give --target_acc or --acc_drop, not both", "target_acc")
        if self.binary_search and self.target_acc is None and self.acc_drop is None:
            raise ConfigError("--binary_search needs --target_acc (a fraction, e.g. 0.9) or --acc_drop",
                              "binary_search")
        if self.e_min >= self.e_max:
            raise ConfigError(f"--e_min {self.e_min} must be below --e_max {self.e_max}", "e_min")


@dataclass
class Curve:
    """A monotone fit of accuracy against x = log E over [x_min, x_max]."""

    kind: str
    params: tuple  # gompertz / logistic: (a, b, m, s); isotonic: (xs, ys)
    x_min: float
    x_max: float
    rms: float = 0.0  # RMS residual of the fit (accuracy units)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.kind in SHAPES:
            a, b, m, s = self.params
            return a + (b - a) * SHAPES[self.kind][0]((np.asarray(x, float) - m) / s)
        xs, ys = self.params
        if len(xs) == 1:
            return np.full_like(np.asarray(x, float), ys[0])
        return self._pchip(np.clip(x, xs[0], xs[-1]))

    @cached_property
    def _pchip(self) -> PchipInterpolator:
        """The isotonic fit's monotone cubic through its pooled points, built once per curve."""
        from scipy.interpolate import PchipInterpolator  # SciPy loads with the first fit, not the command line

        return PchipInterpolator(*self.params)

    def solve(self, target: float) -> float:
        """log E* where the curve reaches ``target``; +inf if not by x_max, -inf if already at x_min."""
        ends = (self.params[1][-1], self.params[1][0]) if self.kind == "isotonic" else (self(self.x_max),
                                                                                        self(self.x_min))
        if ends[0] < target:
            return math.inf
        if ends[1] >= target:
            return -math.inf
        if self.kind in SHAPES:
            a, b, m, s = self.params
            return float(m + s * SHAPES[self.kind][1]((target - a) / (b - a)))
        xs, ys = self.params
        i = int(np.searchsorted(ys, target, side="left"))  # first grid point at or above the target
        # the cubic piece on [xs[i-1], xs[i]] rises from below the target to it: its first root there
        coef = self._pchip.c[:, i - 1].copy()  # highest power first, in (x - xs[i-1])
        coef[-1] -= target
        roots = np.roots(coef)
        h = xs[i] - xs[i - 1]
        real = roots.real[np.abs(roots.imag) <= 1e-9 * np.maximum(1.0, np.abs(roots.real))]
        inside = real[(real >= -1e-9 * h) & (real <= h * (1 + 1e-9))]
        return float(xs[i - 1] + np.clip(inside.min(), 0.0, h)) if inside.size else float(xs[i])


def fit_sigmoid(x: np.ndarray, y: np.ndarray, kind: str = "gompertz", start: Optional[Curve] = None) -> Curve:
    """Least-squares four-parameter sigmoid of ``kind``, increasing in x (``start``: a curve to start from)."""
    from scipy.optimize import least_squares

    shape, _, slope = SHAPES[kind]
    x, y = np.asarray(x, float), np.asarray(y, float)
    span = max(x.max() - x.min(), 1e-3)
    # parameters: a, d = b - a >= 0, m, log s
    if start is not None:
        a, b, m, s = start.params
        start = [a, b - a, m, math.log(s)]
    else:
        start = [min(y.min(), 0.999), max(y.max() - y.min(), 1e-3), float(np.median(x)), math.log(span / 4)]

    def residuals(p):
        a, d, m, log_s = p
        return a + d * shape((x - m) / math.exp(log_s)) - y

    def jacobian(p):
        a, d, m, log_s = p
        z = (x - m) / math.exp(log_s)
        ds = d * slope(z)
        return np.stack([np.ones_like(x), shape(z), -ds / math.exp(log_s), -ds * z], axis=1)

    lower = [0.0, 0.0, x.min() - 2 * span, math.log(span / 200)]
    upper = [1.0, 1.0, x.max() + 2 * span, math.log(10 * span)]
    start = np.clip(start, lower, upper)
    fit = least_squares(residuals, start, jac=jacobian, bounds=(lower, upper))
    a, d, m, log_s = fit.x
    b = min(a + d, 1.0)
    return Curve(kind, (a, b, m, math.exp(log_s)), float(x.min()), float(x.max()),
                 float(np.sqrt(np.mean(fit.fun ** 2))))


def fit_isotonic(x: np.ndarray, y: np.ndarray) -> Curve:
    """Pool-adjacent-violators fit (increasing) at the distinct energies (points at one energy
    averaged, weighted by their count), PCHIP-interpolated between them."""
    from scipy.optimize import isotonic_regression

    xs, inverse, counts = np.unique(np.asarray(x, float), return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=np.asarray(y, float)) / counts
    fitted = isotonic_regression(means, weights=counts, increasing=True).x
    rms = float(np.sqrt(np.mean((fitted[inverse] - np.asarray(y, float)) ** 2)))
    return Curve("isotonic", (xs, fitted), float(xs[0]), float(xs[-1]), rms)


def fit_curve(x: np.ndarray, y: np.ndarray, kind: str = "isotonic", start: Optional[Curve] = None) -> Curve:
    if kind not in FITS:
        raise ValueError(f"curve fit must be one of {', '.join(FITS)}, got {kind!r}")
    return fit_sigmoid(x, y, kind, start) if kind in SHAPES else fit_isotonic(x, y)


@dataclass
class Evaluation:
    """One evaluated point of a curve: its average energy and its (draws, examples) outcomes."""

    energy: float
    outcomes: np.ndarray


@dataclass
class IsoEnergy:
    """E* (photons/MAC, +inf not reached, -inf reached at every evaluated energy), its interval, the
    replicates (for paired savings), the point-estimate curve."""

    energy: float
    lo: float
    hi: float
    replicates: np.ndarray
    curve: Curve


def _solve(points: Sequence[Evaluation], accuracies: Sequence[float], target: float, kind: str,
           start: Optional[Curve] = None) -> tuple[float, Curve]:
    """(E*, curve): E* in photons/MAC, or +-inf outside the evaluated energies."""
    curve = fit_curve(np.log([p.energy for p in points]), np.asarray(accuracies), kind, start)
    x = curve.solve(target)
    return (math.exp(x) if math.isfinite(x) else x), curve


def iso_energy(points: Sequence[Evaluation], targets: np.ndarray, target: float | Callable[[Resample], float],
               reps: Sequence[Resample], salt: int = 0, kind: str = "isotonic", score: Score = accuracy_score,
               level: float = 0.95) -> IsoEnergy:
    """E* of one allocation's curve with its bootstrap interval.

    ``target``: a fixed accuracy, or a function of the replicate giving the target relative to a
    reference model's resampled accuracy (called with None for the point estimate). ``salt``
    distinguishes this allocation's draw resampling from the others'."""
    if len(points) < 2:
        raise ValueError("an iso-accuracy curve needs at least two evaluated energies")
    fixed = not callable(target)
    t0 = target if fixed else target(None)
    e, curve = _solve(points, [metric(p.outcomes, targets, score) for p in points], t0, kind)
    reps_e = []
    for r in reps:
        accs = [replicate_metric(p.outcomes, targets, r, salt * 1000 + i, score) for i, p in enumerate(points)]
        reps_e.append(_solve(points, accs, target if fixed else target(r), kind, curve)[0])
    reps_e = np.array(reps_e)
    lo, hi = interval(reps_e, level)
    return IsoEnergy(e, lo, hi, reps_e, curve)


def saving(method: IsoEnergy, uniform: IsoEnergy, level: float = 0.95) -> tuple[float, float, float]:
    """1 - E*_method / E*_uniform with its paired bootstrap interval.

    The point estimate is NaN unless both curves reach the target inside their evaluated energies.
    In a replicate where only the method reaches it, the uniform E* is bounded by the highest energy
    it was evaluated at, which bounds the saving from below (conservative); where the method does not
    reach it, the saving is -inf; where neither does, or either reaches it at its lowest energy, the
    replicate has no saving and is left out."""
    u_max = float(np.exp(uniform.curve.x_max))

    def ratio(em, eu, bound: bool):
        em, eu = np.asarray(em, float), np.asarray(eu, float)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = 1 - em / (np.where(np.isposinf(eu), u_max, eu) if bound else eu)
        undefined = (np.isposinf(em) & np.isposinf(eu)) | np.isneginf(em) | np.isneginf(eu)
        return np.where(undefined, np.nan, s)

    point = float(ratio(method.energy, uniform.energy, bound=False)) \
        if math.isfinite(method.energy) and math.isfinite(uniform.energy) else math.nan
    lo, hi = interval(ratio(method.replicates, uniform.replicates, bound=True), level)
    return point, lo, hi
