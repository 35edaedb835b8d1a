"""Fake quantizers, range observers and learnable bit-widths."""
from noisesim.quant.bitwidth import BitWidth
from noisesim.quant.fake_quant import FakeQuantize
from noisesim.quant.functional import fake_quant_ste, qparams, round_ste
from noisesim.quant.observers import (ACIQObserver, EMAObserver, MinMaxObserver, MSEObserver,
                                      Observer, PercentileObserver, make_observer)

__all__ = ["BitWidth", "FakeQuantize", "fake_quant_ste", "qparams", "round_ste", "ACIQObserver",
           "EMAObserver", "MinMaxObserver", "MSEObserver", "Observer", "PercentileObserver",
           "make_observer"]
