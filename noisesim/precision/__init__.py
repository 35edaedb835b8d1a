"""Precision that moves during training, and one network at several precisions.

``adaptive``: AdaptiveDPC (per-layer weight bits from gradient statistics) and CPT (cyclic precision);
``double_rounding``: bit switching from the integers of the highest precision (Double Rounding) and its
multi-precision training; ``subnets``: per-layer bits of a one-shot supernet under average-bit budgets.
The ``precision`` command (``noisesim.experiment.precision``) runs them on the command line.
"""
from noisesim.precision.adaptive import AdaptiveDPC, CyclicPrecision, train_with_adaptive_dpc
from noisesim.precision.double_rounding import (DoubleRoundingConfig, MultiPrecision, double_round,
                                                train_double_rounding)
from noisesim.precision.subnets import search_subnets

__all__ = ["AdaptiveDPC", "CyclicPrecision", "train_with_adaptive_dpc", "DoubleRoundingConfig", "MultiPrecision",
           "double_round", "train_double_rounding", "search_subnets"]
