"""Statistics of Monte-Carlo evaluations: bootstrap intervals and iso-accuracy energies."""
from noisesim.stats.bootstrap import (SCORES, Resample, accuracy_score, auroc_score, binomial_interval, interval,
                                      metric, metric_interval, replicate_metric, resamples, significant)
from noisesim.stats.isoaccuracy import FITS, Curve, Evaluation, IsoEnergy, fit_curve, iso_energy, saving

__all__ = ["SCORES", "Resample", "accuracy_score", "auroc_score", "binomial_interval", "interval", "metric",
           "metric_interval", "replicate_metric", "resamples", "significant", "FITS", "Curve", "Evaluation",
           "IsoEnergy", "fit_curve", "iso_energy", "saving"]
