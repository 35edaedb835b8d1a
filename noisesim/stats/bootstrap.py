"""Bootstrap over test examples and noise draws.

A Monte-Carlo evaluation of one model yields an outcome per noise draw and test example: a
``(draws, examples)`` array (1/0 correct for accuracy; the score for AUROC). Its metric has two
sources of error: which examples the test set happens to hold, and which noise the draws
happened to sample. One bootstrap replicate resamples both — the examples with replacement (the
same resample for every model compared, so comparisons are paired) and, for each model
separately, its draws with replacement — and recomputes the metric. Percentiles of the
replicates give the interval (Efron & Tibshirani 1993, ch. 13).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

Score = Callable[[np.ndarray, np.ndarray], float]


def accuracy_score(outcomes: np.ndarray, targets: np.ndarray) -> float:
    """Mean of 0/1 outcomes (``targets`` unused)."""
    return float(outcomes.mean())


def auroc_score(scores: np.ndarray, targets: np.ndarray) -> float:
    """Area under the ROC curve of per-example scores: the Mann-Whitney U statistic of the positives' scores
    against the negatives', / (n_pos n_neg), ties counted half (``scipy.stats.mannwhitneyu``; equal to
    scikit-learn's ``roc_auc_score``, which noisesim does not otherwise need)."""
    from scipy.stats import mannwhitneyu  # SciPy loads when a score needs it, not with the command line

    pos = targets > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float(mannwhitneyu(scores[pos], scores[~pos], method="asymptotic").statistic / (n_pos * n_neg))


SCORES: dict[str, Score] = {"accuracy": accuracy_score, "auroc": auroc_score}


@dataclass(frozen=True)
class Resample:
    """One bootstrap replicate: example indices (shared by every model) and a seed for draw indices."""

    examples: np.ndarray
    seed: int


def resamples(n_examples: int, n_boot: int, seed: int = 0) -> list[Resample]:
    """``n_boot`` replicates of the test set (indices with replacement), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [Resample(rng.integers(0, n_examples, n_examples), int(rng.integers(2 ** 31))) for _ in range(n_boot)]


def replicate_metric(outcomes: np.ndarray, targets: np.ndarray, r: Resample, salt: int = 0,
                     score: Score = accuracy_score) -> float:
    """The metric of one model under replicate ``r``: its draws resampled (seeded by the replicate and
    ``salt``, distinct per model), the examples as ``r`` says. Draws are averaged per example first."""
    draws = outcomes.shape[0]
    pick = np.random.default_rng((r.seed, salt)).integers(0, draws, draws) if draws > 1 else np.zeros(1, int)
    if score is accuracy_score:
        return float(outcomes[pick][:, r.examples].mean())
    return float(np.mean([score(outcomes[d, r.examples], targets[r.examples]) for d in pick]))


def metric(outcomes: np.ndarray, targets: np.ndarray, score: Score = accuracy_score) -> float:
    """The metric of all draws and examples (draws averaged)."""
    if score is accuracy_score:
        return float(outcomes.mean())
    return float(np.mean([score(o, targets) for o in outcomes]))


def interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates; +-inf replicates (e.g. a target never reached)
    are kept as such, so an interval may be open-ended."""
    r = np.sort(np.asarray(replicates, dtype=float))
    r = r[~np.isnan(r)]
    if len(r) == 0:
        return float("nan"), float("nan")
    lo = np.quantile(r, (1 - level) / 2, method="inverted_cdf")
    hi = np.quantile(r, (1 + level) / 2, method="inverted_cdf")
    return float(lo), float(hi)


def metric_interval(outcomes: np.ndarray, targets: np.ndarray, n_boot: int = 1000, seed: int = 0,
                    score: Score = accuracy_score, level: float = 0.95) -> tuple[float, float]:
    """Bootstrap interval of one model's metric over examples and draws."""
    reps = np.array([replicate_metric(outcomes, targets, r, 0, score)
                     for r in resamples(outcomes.shape[1], n_boot, seed)])
    return interval(reps, level)


def binomial_interval(accuracy: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of an accuracy measured on ``n`` independent examples with one outcome each (no
    noise draws): what the bootstrap over examples approximates, for results that kept only the count."""
    from scipy.stats import binomtest

    k = int(round(accuracy * n))
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def significant(lo: Optional[float], hi: Optional[float]) -> bool:
    """An interval that excludes 0."""
    return lo is not None and hi is not None and (lo > 0 or hi < 0)
