"""Configuration validation and JSON round trip."""
import pytest

from noisesim import ConfigError, SimConfig


def test_json_round_trip():
    cfg = SimConfig(weight_bits=4, noise_type="shot", e_mac=3.5, ignore=("first",),
                    overrides={"last": {"weight_bits": 8}})
    assert SimConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("kwargs,match", [
    (dict(weight_bits=1), "weight_bits 1 is outside 2-16 bits"),
    (dict(act_bits=17), "act_bits 17 is outside 2-16 bits"),
    (dict(noise_type="pink"), "noise_type must be one of"),
    (dict(e_mac=0), "e_mac must be > 0"),
    (dict(e_mac=-3), "e_mac must be > 0"),
    (dict(act_observer="median"), "act_observer must be one of"),
    (dict(noise_type="thermal", act_bits=None), "thermal noise .* needs weight_bits and act_bits"),
    (dict(bit_rounding="sometimes"), "bit_rounding must be one of"),
    (dict(overrides={"conv1": {"bitz": 3}}), "unknown fields"),
    (dict(ignore=("[unclosed",)), "not a valid regex"),
])
def test_bad_values_raise_clear_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SimConfig(**kwargs)


def test_unknown_json_field():
    with pytest.raises(ConfigError, match="unknown SimConfig fields"):
        SimConfig.from_dict({"wieght_bits": 4})


def test_per_layer_resolution_applies_in_order():
    cfg = SimConfig(weight_bits=4, overrides={"layer.*": {"weight_bits": 6}, "layer1": {"weight_bits": 8}})
    assert cfg.for_layer("layer1").weight_bits == 8
    assert cfg.for_layer("layer2").weight_bits == 6
    assert cfg.for_layer("fc").weight_bits == 4
    assert SimConfig(overrides={"first": {"act_bits": 8}}, act_bits=4).for_layer("conv1", ("first",)).act_bits == 8
