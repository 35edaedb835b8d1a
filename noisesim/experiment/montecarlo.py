"""Monte-Carlo evaluation: repeat an evaluation over independent noise draws.

Reports the mean and the half-width of its 95% confidence interval,
t_{0.975, N-1} * s / sqrt(N) (0 for a single draw).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Optional

from scipy import stats
from torch import nn

from noisesim.train.loop import evaluate


def confidence_interval(values: list[float], level: float = 0.95) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return float(stats.t.ppf(0.5 + level / 2, n - 1) * s / math.sqrt(n))


def mc_evaluate(model: nn.Module, batches: Iterable, task: Any, repeats: int = 1,
                max_batches: Optional[int] = None, progress: bool = False) -> tuple[float, float, list[float]]:
    """(mean, 95% CI half-width, per-draw values) of the task metric over ``repeats`` noise draws."""
    values = [evaluate(model, batches, task, max_batches, progress=progress, desc=f"eval {i + 1}/{repeats}")
              for i in range(repeats)]
    return sum(values) / len(values), confidence_interval(values), values
