"""The module swap: equivalence with the float model, BN folding, per-layer exceptions, round trips."""
import pytest
import torch
import torchvision.models as tvm
from torch import nn

import noisesim
from noisesim.models.cifar_resnet import resnet20
from noisesim.nn import QuantAdd, QuantCat, SimConv, SimLinear, SimMatmul, to_float

OFF = dict(weight_bits=None, act_bits=None, noise_type="none")


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 5, stride=2, padding=2, dilation=1)
        self.bn = nn.BatchNorm1d(8)
        self.c2 = nn.Conv1d(8, 8, 3, groups=8, padding=2, dilation=2, padding_mode="reflect")
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.c2(torch.relu(self.bn(self.c1(x)))).mean(-1))


def _randomize_bn(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


MODELS = {
    "resnet20": (lambda: resnet20(10, 1), (8, 1, 28, 28)),
    "mobilenet_v2": (lambda: tvm.mobilenet_v2(num_classes=10), (2, 3, 64, 64)),
    "conv1d": (Conv1dNet, (8, 4, 32)),
}


@pytest.mark.parametrize("name", MODELS)
def test_everything_off_without_folding_is_exact(name):
    make, shape = MODELS[name]
    model, x = _randomize_bn(make()), torch.randn(shape)
    sim = noisesim.prepare(model, noisesim.SimConfig(fold_bn=False, **OFF))
    with torch.no_grad():
        assert torch.equal(sim(x), model(x))


@pytest.mark.parametrize("name", MODELS)
def test_everything_off_with_bn_folding_within_1e5(name):
    make, shape = MODELS[name]
    model, x = _randomize_bn(make()), torch.randn(shape)
    sim = noisesim.prepare(model, noisesim.SimConfig(**OFF))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in sim.modules())
    with torch.no_grad():
        assert (sim(x) - model(x)).abs().max().item() <= 1e-5


def test_prepare_copies_and_names_layers_by_path():
    model = resnet20(10, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sim = noisesim.prepare(model, noisesim.SimConfig())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model.conv1, nn.Conv2d) and isinstance(sim.conv1, SimConv)
    names = [m.name for m in noisesim.sim_layers(sim)]
    assert names[0] == "conv1" and names[-1] == "fc" and "layer2.1.conv2" in names and len(names) == 20


def test_inplace_prepare_modifies_the_model():
    model = resnet20(10, 1)
    assert noisesim.prepare(model, noisesim.SimConfig(), inplace=True) is model
    assert isinstance(model.fc, SimLinear)


def test_overrides_first_last_and_regex():
    cfg = noisesim.SimConfig(weight_bits=4, act_bits=4, noise_type="thermal", e_mac=2.0,
                             overrides={"first": {"weight_bits": 8, "act_bits": 8},
                                        "last": {"weight_bits": 8, "act_bits": 8},
                                        r"layer3\..*": {"e_mac": 50.0}})
    sim = noisesim.prepare(resnet20(10, 1), cfg)
    assert sim.conv1.weight_quant.cfg.bits == 8 and sim.fc.act_quant.cfg.bits == 8
    assert sim.layer1[0].conv1.weight_quant.cfg.bits == 4
    assert sim.layer3[1].conv1.noise.energy().item() == pytest.approx(50.0)
    assert sim.layer2[1].conv1.noise.energy().item() == pytest.approx(2.0)


def test_ignore_leaves_layers_in_float():
    sim = noisesim.prepare(resnet20(10, 1), noisesim.SimConfig(ignore=("first", "last")))
    assert type(sim.conv1) is nn.Conv2d and type(sim.fc) is nn.Linear
    assert isinstance(sim.layer1[0].conv1, SimConv)


def test_to_float_round_trip_keeps_folded_weights():
    model, x = _randomize_bn(resnet20(10, 1)), torch.randn(4, 1, 28, 28)
    back = to_float(noisesim.prepare(model, noisesim.SimConfig()))
    assert not any(isinstance(m, noisesim.nn.SimLayer) for m in back.modules())
    with torch.no_grad():
        assert (back(x) - model(x)).abs().max().item() <= 1e-5


def test_from_float_to_float_per_layer():
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, groups=1)
    sim = SimConv.from_float(conv, noisesim.SimConfig(**OFF))
    back = sim.to_float()
    x = torch.randn(2, 3, 9, 9)
    assert torch.equal(back(x), conv(x)) and torch.equal(sim(x), conv(x))


def test_quantized_model_is_close_and_monotone_in_bits():
    model, x = _randomize_bn(resnet20(10, 1)), torch.randn(32, 1, 28, 28)
    with torch.no_grad():
        ref = model(x)
    errs = []
    for bits in (4, 6, 8):
        sim = noisesim.prepare(model, noisesim.SimConfig(weight_bits=bits, act_bits=bits))
        noisesim.calibrate(sim, [x])
        with torch.no_grad():
            errs.append((sim(x) - ref).pow(2).mean().item())
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-2 * ref.pow(2).mean().item()


def test_output_error_falls_with_energy():
    model, x = _randomize_bn(resnet20(10, 1)), torch.randn(32, 1, 28, 28)
    sim = noisesim.prepare(model, noisesim.SimConfig(noise_type="thermal", seed=0))
    noisesim.calibrate(sim, [x])
    with torch.no_grad(), noisesim.noise_disabled(sim):
        clean = sim(x)
    errs = []
    for e in (1.0, 10.0, 100.0):
        for layer in noisesim.sim_layers(sim):
            layer.noise.set_energy(e)
        with torch.no_grad():
            errs.append((sim(x) - clean).pow(2).mean().item())
    assert errs[0] > 5 * errs[1] > 25 * errs[2]


def test_residual_adds_and_concats_are_quantized():
    sim = noisesim.prepare(resnet20(10, 1), noisesim.SimConfig(quantize_residual=True))
    adds = [m for m in sim.modules() if isinstance(m, QuantAdd)]
    assert len(adds) == 9  # one per basic block
    x = torch.randn(4, 1, 28, 28)
    noisesim.calibrate(sim, [x])
    assert all(bool(a.act_quant.calibrated) for a in adds)
    g = noisesim.prepare(tvm.googlenet(weights=None, aux_logits=False, init_weights=False).eval(),
                         noisesim.SimConfig(quantize_residual=True))
    assert sum(isinstance(m, QuantCat) for m in g.modules()) == 9  # one per inception block


def test_matmul_modules_are_instrumented():
    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k = nn.Linear(8, 8), nn.Linear(8, 8)
            self.scores = noisesim.nn.Matmul()

        def forward(self, x):
            return self.scores(self.q(x), self.k(x).transpose(-1, -2))

    sim = noisesim.prepare(Attn(), noisesim.SimConfig(noise_type="thermal"))
    assert isinstance(sim.scores, SimMatmul)
    x = torch.randn(2, 5, 8)
    noisesim.calibrate(sim, [x])
    assert sim(x).shape == (2, 5, 5) and sim.scores.fan_in == 8


def test_weights_are_cached_while_frozen():
    sim = noisesim.prepare(resnet20(10, 1), noisesim.SimConfig())
    layer = sim.layer1[0].conv1
    with torch.no_grad():
        a = layer.weight_stats()[0]
        b = layer.weight_stats()[0]
        assert a is b
        layer.weight.mul_(2)  # in-place change bumps the version: cache refreshes
        assert layer.weight_stats()[0] is not a


def test_extra_repr_is_one_line_everywhere():
    sim = noisesim.prepare(resnet20(10, 1), noisesim.SimConfig(noise_type="shot", noise_per_channel=True))
    noisesim.calibrate(sim, [torch.randn(2, 1, 28, 28)])
    for m in sim.modules():
        if isinstance(m, (noisesim.nn.SimLayer, noisesim.quant.FakeQuantize, noisesim.noise.NoiseModel)):
            assert "\n" not in m.extra_repr()
    assert "shot E=per-channel(16)" in sim.layer1[0].conv1.noise.extra_repr()


def test_cached_weights_follow_trained_bit_widths():
    """Eval forwards cache quantized weights; changing learnable bits must invalidate that cache."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(32, 16)
    x = torch.randn(64, 32)
    sim = noisesim.prepare(layer, noisesim.SimConfig(weight_bits=8, act_bits=None, noise_type="none",
                                                     train_bitwidth=True, weight_bits_only=True))
    noisesim.calibrate(sim, [x])
    sim.eval()
    with torch.no_grad():
        y8 = sim(x)
        sim.weight_quant.bitwidth.log2_bits.fill_(1.0)  # 2 bits, changed in place as an optimizer would
        y2 = sim(x)
    assert sim.weight_quant.mean_bits() == 2.0
    ref = torch.nn.functional.linear(x, sim.weight_quant(sim.weight), sim.bias)
    assert not torch.allclose(y8, y2) and torch.allclose(y2, ref, atol=1e-6)
