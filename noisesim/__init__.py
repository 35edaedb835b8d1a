"""noisesim: simulate analog noise and quantization in neural networks, and allocate energy or bits.

    import noisesim
    cfg = noisesim.SimConfig(weight_bits=8, act_bits=8, noise_type="thermal", e_mac=10)
    sim = noisesim.prepare(model, cfg)          # a copy with every matmul layer instrumented
    noisesim.calibrate(sim, batches)            # activation ranges, noise off
    df = noisesim.energy_report(sim)            # per-layer MACs, energy, bits, SNR, joules; df.attrs["coverage"]
    with noisesim.noise_disabled(sim): ...
"""
from noisesim.config import (ConfigError, HardwareConfig, NoiseConfig, QuantConfig, SimConfig, hardware_preset,
                             hardware_presets)
from noisesim.context import calibrate, calibrating, noise_as_quantizer, noise_disabled
from noisesim.coverage import Coverage, CoverageError, coverage_of
from noisesim.energy import (EnergyCosts, average_act_bits, average_energy, average_noise_bits, average_weight_bits,
                             bits_penalty, channel_report, count_macs, energy_penalty, energy_report,
                             measure_coverage, photons_to_aj)
from noisesim.nn.prepare import prepare, sim_layers, to_float
from noisesim.registry import NOISE_MODELS, OBSERVERS
from noisesim.version import __version__


__all__ = ["__version__", "SimConfig", "QuantConfig", "NoiseConfig", "HardwareConfig", "EnergyCosts", "hardware_preset",
           "hardware_presets", "ConfigError", "prepare", "calibrate", "calibrating",
           "noise_disabled", "noise_as_quantizer", "energy_report", "channel_report", "average_energy",
           "average_weight_bits", "average_act_bits", "average_noise_bits", "count_macs", "energy_penalty",
           "bits_penalty", "photons_to_aj", "measure_coverage", "coverage_of", "Coverage", "CoverageError", "sim_layers", "to_float", "NOISE_MODELS", "OBSERVERS"]
