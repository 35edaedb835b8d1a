"""MAC counts against torchvision's metadata, average energy and bits, penalties, the report."""
import math

import pytest
import torch
import torchvision.models as tvm

import noisesim
from noisesim.energy import bits_penalty, energy_penalty, weighted_mean
from noisesim.models.cifar_resnet import resnet20

TORCHVISION = [
    ("resnet50", tvm.ResNet50_Weights, 224, {}),
    ("mobilenet_v2", tvm.MobileNet_V2_Weights, 224, {}),
    ("shufflenet_v2_x1_0", tvm.ShuffleNet_V2_X1_0_Weights, 224, {}),
    ("googlenet", tvm.GoogLeNet_Weights, 224, {"aux_logits": False, "init_weights": False}),
    ("inception_v3", tvm.Inception_V3_Weights, 299, {"aux_logits": False, "init_weights": False}),
]


@pytest.mark.parametrize("name,weights,px,kw", TORCHVISION, ids=[t[0] for t in TORCHVISION])
def test_macs_match_torchvision_ops(name, weights, px, kw):
    model = getattr(tvm, name)(weights=None, **kw).eval()
    sim = noisesim.prepare(model, noisesim.SimConfig(noise_type="shot", weight_bits=None, act_bits=None))
    df = noisesim.energy_report(sim, torch.randn(1, 3, px, px))
    expected = weights.IMAGENET1K_V1.meta["_ops"] * 1e9
    assert df["macs"].sum() == pytest.approx(expected, rel=0.005)
    assert df.attrs["macs"] == df["macs"].sum()


def test_conv_macs_formula():
    conv = torch.nn.Conv2d(6, 12, (3, 5), stride=2, padding=1, groups=3)
    sim = noisesim.prepare(conv, noisesim.SimConfig(weight_bits=None, act_bits=None))
    noisesim.count_macs(sim, torch.randn(2, 6, 17, 19))
    out = conv(torch.randn(1, 6, 17, 19))
    assert sim.macs == (6 // 3) * 3 * 5 * 12 * out.shape[2] * out.shape[3]


def _thermal_resnet(**kw):
    sim = noisesim.prepare(resnet20(10, 1), noisesim.SimConfig(noise_type="thermal", **kw))
    noisesim.calibrate(sim, [torch.randn(4, 1, 28, 28)])
    return sim


def test_average_energy_is_mac_weighted():
    sim = _thermal_resnet(noise_per_channel=True)
    layers = noisesim.sim_layers(sim)
    for i, layer in enumerate(layers):
        layer.noise.set_energy(torch.linspace(1, 3, layer.out_channels) * (i + 1))
    expected = sum(l.noise.energy().mean().item() * l.macs for l in layers) / sum(l.macs for l in layers)
    assert noisesim.average_energy(sim).item() == pytest.approx(expected, rel=1e-6)
    df = noisesim.energy_report(sim)
    assert df.attrs["avg_energy"] == pytest.approx(expected, rel=1e-5)
    assert df.attrs["avg_energy_aj"] == pytest.approx(expected * 0.128, rel=1e-5)


def test_average_energy_is_differentiable():
    sim = _thermal_resnet(train_noise=True)
    noisesim.average_energy(sim).backward()
    grads = [l.noise.log_energy.grad for l in noisesim.sim_layers(sim)]
    assert all(g is not None and g.item() > 0 for g in grads)


def test_average_bits():
    sim = noisesim.prepare(resnet20(10, 1), noisesim.SimConfig(weight_bits=4, act_bits=6,
                                                               overrides={"fc": {"weight_bits": 8}}))
    noisesim.calibrate(sim, [torch.randn(2, 1, 28, 28)])
    layers = noisesim.sim_layers(sim)
    w = sum(l.weight_count * (8 if l.name == "fc" else 4) for l in layers) / sum(l.weight_count for l in layers)
    assert noisesim.average_weight_bits(sim).item() == pytest.approx(w)
    assert noisesim.average_act_bits(sim).item() == pytest.approx(6.0)


def test_penalties():
    e = torch.tensor(20.0)
    assert energy_penalty(e, 10.0, 2.0).item() == pytest.approx(2 * math.log(2))
    assert energy_penalty(torch.tensor(5.0), 10.0, 2.0).item() == 0.0
    assert energy_penalty(e, 10.0, 2.0, constrained=False).item() == pytest.approx(2 * math.log(20))
    assert bits_penalty(torch.tensor(5.0), torch.tensor(3.0), 4.0, 4.0, 0.5).item() == pytest.approx(0.5)
    assert bits_penalty(torch.tensor(5.0), torch.tensor(6.0), 4.0, 4.0, 1.0).item() == pytest.approx(3.0)
    assert weighted_mean([torch.tensor([1.0, 3.0]), torch.tensor(10.0)], [3, 1]).item() == pytest.approx(4.0)


def test_report_columns_and_snr():
    sim = _thermal_resnet(record_snr=True)
    with torch.no_grad():
        sim(torch.randn(4, 1, 28, 28))
    df = noisesim.energy_report(sim)
    for col in ("name", "kind", "fan_in", "macs", "e_mac", "weight_bits", "act_bits", "snr_db", "noise_bits"):
        assert col in df.columns
    assert len(df) == 20 and (df["snr"] > 0).all() and df["noise_bits"].between(1, 20).all()
    assert list(df["kind"].unique()) == ["conv", "linear"]
