"""The hardware model (docs/hardware.md): array tiles, ADCs, several noise sources, energy in joules.

Every expectation is computed here from the shapes, the operands and the formulas, not read back from
the layer that is tested."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import noisesim
from noisesim.energy import EnergyCosts
from noisesim.nn import Einsum, Matmul
from tests.helpers import output_noise

FLOAT = dict(weight_bits=None, act_bits=None)


class Products(nn.Module):
    """Every kind of product a tile splits: conv (plain, grouped, depthwise, strided / dilated, 1-D), Linear,
    matmul and einsum."""

    def __init__(self, groups: int, stride: int, dilation: int, padding, mode: str):
        super().__init__()
        pad = padding if isinstance(padding, str) else padding
        self.conv = nn.Conv2d(3, 12, 3, padding=1, padding_mode=mode)
        self.grouped = nn.Conv2d(12, 12, 3, stride=stride, dilation=dilation, padding=pad, groups=groups)
        self.depthwise = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.conv1d = nn.Conv1d(12, 6, 4, padding="same")
        self.linear = nn.Linear(6 * 4, 10)
        self.matmul, self.einsum = Matmul(), Einsum("bij,bjk->bik")

    def forward(self, x):
        y = self.depthwise(self.grouped(self.conv(x)))
        y = self.conv1d(y.flatten(2)[..., :4]).flatten(1)
        y = self.linear(y).unsqueeze(-1)
        z = self.matmul(y, y.transpose(1, 2))
        return self.einsum(z, z).flatten(1)


@settings(max_examples=12, deadline=None)
@given(rows=st.integers(1, 120), groups=st.sampled_from([1, 3, 12]), stride=st.integers(1, 2),
       dilation=st.integers(1, 2), padding=st.sampled_from([0, 1, "same"]),
       mode=st.sampled_from(["zeros", "reflect", "circular"]))
def test_with_noise_and_adc_off_a_tiled_network_equals_the_untiled_one(rows, groups, stride, dilation, padding, mode):
    if padding == "same" and stride > 1:
        stride = 1  # PyTorch allows "same" only at stride 1
    torch.manual_seed(rows)
    model = Products(groups, stride, dilation, padding, mode).eval()
    x = torch.randn(3, 3, 11, 11)
    plain = noisesim.prepare(model, noisesim.SimConfig(**FLOAT))
    tiled = noisesim.prepare(model, noisesim.SimConfig(**FLOAT, tile_rows=rows, noise_type="shot"))  # the partial
    with torch.no_grad(), noisesim.noise_disabled(tiled):  # sums are computed for shot noise, here switched off
        want, got = plain(x), tiled(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * want.abs().max())
    tiles = {m.name: m.tiles for m in noisesim.sim_layers(tiled)}
    assert tiles["conv"] == math.ceil(27 / rows) and tiles["linear"] == math.ceil(24 / rows)
    assert tiles["grouped"] == math.ceil(12 // groups * 9 / rows) and tiles["depthwise"] == math.ceil(9 / rows)


def _linear_sim(noise_type, rows=None, x_scale=1.0, w_scale=1.0, **kw):
    torch.manual_seed(0)
    layer, x = nn.Linear(200, 8), torch.randn(20000, 200) * x_scale
    with torch.no_grad():
        layer.weight.mul_(w_scale)
    sim = noisesim.prepare(layer, noisesim.SimConfig(noise_type=noise_type, e_mac=4.0, seed=3, tile_rows=rows, **kw))
    noisesim.calibrate(sim, [x[:2000]])
    return sim, x



@pytest.mark.parametrize("adc_bits", [None, 16])
def test_thermal_noise_per_tile_adds_up_to_the_untiled_variance(adc_bits):
    """sigma_t = sigma R_w R_x sqrt(D_t / E) for each of the tiles of 64, 64, 64, 8 rows: their variances add
    to sigma^2 R_w^2 R_x^2 D / E, the untiled layer's, whether drawn per partial sum (before a 16-bit ADC, whose
    own error is negligible here) or, without an ADC, once per output."""
    sim, x = _linear_sim("thermal", rows=64, adc_bits=adc_bits)
    r_x, r_w = sim.act_quant.full_range(), sim.weight_quant.full_range()
    want = 0.01 * r_x * r_w * math.sqrt(200 / 4.0)
    got = output_noise(sim, x).std()
    assert sim.tiles == 4 and abs(got / want - 1) < 0.02, (got, want)


def test_shot_noise_per_tile_follows_each_tiles_own_operands():
    """sigma_t = ||x_t|| ||w_t|| / sqrt(D_t E): the variance summed over the tiles, computed from the operands'
    slices, is not the untiled ||x||^2 ||w||^2 / (D E) when inputs and weights weigh on different tiles."""
    scales = [torch.tensor([3.0, 1, 1, 1]).repeat_interleave(50), torch.tensor([1.0, 3, 1, 1]).repeat_interleave(50)]
    sim, x = _linear_sim("shot", rows=50, x_scale=scales[0], w_scale=scales[1], weight_bits=None, act_bits=None)
    w = sim.weight.detach()
    slices = [slice(i, i + 50) for i in range(0, 200, 50)]
    var = sum(x[:, s].norm(dim=1, keepdim=True) ** 2 * w[:, s].norm(dim=1) ** 2 / (50 * 4.0) for s in slices)
    untiled = x.norm(dim=1, keepdim=True) ** 2 * w.norm(dim=1) ** 2 / (200 * 4.0)
    noise = output_noise(sim, x)
    ratio = (noise ** 2 / var).mean()  # E[n^2 / var] = 1, over 160 000 outputs
    assert abs(ratio - 1) < 0.02, ratio
    assert (noise ** 2 / untiled).mean() < 0.7  # the tiles change shot noise: 20/50 against 144/200 here


def test_noise_sources_add_their_variances():
    """thermal+shot: var = var_thermal + var_shot at the same energy; thermal+weight likewise."""
    def var(kind):
        sim, x = _linear_sim(kind)
        return output_noise(sim, x).var()

    thermal, shot, weight = var("thermal"), var("shot"), var("weight")
    assert abs(var("thermal+shot") / (thermal + shot) - 1) < 0.03
    assert abs(var("thermal+weight") / (thermal + weight) - 1) < 0.05


def test_a_sum_keeps_one_energy_and_drops_weight_noise_on_a_product_of_activations():
    model = nn.Sequential(nn.Linear(4, 4))
    sim = noisesim.prepare(model, noisesim.SimConfig(noise_type="thermal+shot", e_mac=3.0))
    assert [n for n, _ in sim.named_parameters() if "log_energy" in n] == ["0.noise.log_energy"]
    mm = noisesim.prepare(Matmul(), noisesim.SimConfig(noise_type="thermal+weight"))
    assert mm.noise.kind == "thermal"


def test_adc_quantizes_every_partial_sum_on_its_grid():
    """With 6 bits over [-r, r] every tile's partial sum is a multiple of s = r / 31, so the output minus the
    bias is one too; the error variance is T s^2 / 12 (within 10%)."""
    sim, x = _linear_sim("none", rows=64, adc_bits=6, adc_range="minmax")
    with torch.no_grad():
        y = sim(x) - sim.bias
        sim.adc.quant.disable()
        exact = sim(x) - sim.bias
    s = sim.adc.bound() / 31
    k = y / s
    assert (k - k.round()).abs().max() < 1e-3
    assert abs((y - exact).var() / (4 * s ** 2 / 12) - 1) < 0.1


def test_adc_ranges_and_clipping_counts():
    """minmax: r = the largest |partial sum| at calibration, and twice the inputs clip exactly the partial sums
    beyond r; full_scale: r = N max|w| max|x| from the quantizer ranges, and nothing clips."""
    sim, x = _linear_sim("none", rows=64, adc_bits=8, adc_range="minmax")
    xq, wq = sim.act_quant(x[:2000]), sim.weight_quant(sim.weight.detach())
    psums = torch.stack([xq[:, s] @ wq[:, s].t() for s in (slice(0, 64), slice(64, 128), slice(128, 192),
                                                             slice(192, 200))])
    assert torch.isclose(sim.adc.bound(), psums.abs().max(), rtol=1e-5)
    sim.adc.reset_counts()
    with torch.no_grad():
        sim(2 * x[:2000])
    xq2 = sim.act_quant(2 * x[:2000])
    psums2 = torch.stack([xq2[:, s] @ wq[:, s].t() for s in (slice(0, 64), slice(64, 128), slice(128, 192),
                                                               slice(192, 200))])
    want = (psums2.abs() > sim.adc.bound()).float().mean().item()
    assert want > 0.01 and abs(sim.adc.clip_rate() - want) < 1e-4
    full, x = _linear_sim("none", rows=64, adc_bits=8, adc_range="full_scale")
    with torch.no_grad():
        full(3 * x)
    x_max = max(abs(full.act_quant.lo.item()), abs(full.act_quant.hi.item()))
    w_max = max(full.weight_quant.lo.abs().max().item(), full.weight_quant.hi.abs().max().item())
    assert math.isclose(full.adc.bound().item(), 64 * x_max * w_max, rel_tol=1e-5)
    assert full.adc.clip_rate() == 0


def test_energy_per_inference_in_joules():
    """optical MACs E h nu + ADC T outputs FOM 2^b + DAC inputs FOM 2^b_act, per sample, from the shapes."""
    sim, x = _linear_sim("thermal", rows=64, adc_bits=6)
    costs = EnergyCosts(photon_energy=0.2, adc_fom=5.0, dac_fom=2.0)
    report = noisesim.energy_report(nn.Sequential(sim), x[:10], costs=costs)
    macs = 200 * 8
    optical, adc, dac = macs * 4.0 * 0.2e-18, 4 * 8 * 5e-15 * 2 ** 6, 200 * 2e-15 * 2 ** 8
    row = report.iloc[0]
    assert math.isclose(row["energy_optical_j"], optical, rel_tol=1e-6)
    assert math.isclose(row["energy_adc_j"], adc, rel_tol=1e-6) and row["conversions"] == 32
    assert math.isclose(row["energy_dac_j"], dac, rel_tol=1e-6)
    assert math.isclose(report.attrs["energy_j"], optical + adc + dac, rel_tol=1e-6)
    assert math.isclose(report.attrs["energy_per_mac_j"], (optical + adc + dac) / macs, rel_tol=1e-6)


def test_tiles_per_layer_through_overrides_and_an_einsum_they_cannot_split():
    model = nn.Sequential(nn.Linear(100, 100), nn.Linear(100, 10))
    sim = noisesim.prepare(model, noisesim.SimConfig(**FLOAT, tile_rows=32, overrides={"first": {"tile_rows": None}}))
    with torch.no_grad():
        sim(torch.randn(2, 100))
    assert [m.tiles for m in noisesim.sim_layers(sim)] == [1, 4]
    two_sums = noisesim.prepare(Einsum("ij,jk->i"), noisesim.SimConfig(**FLOAT, tile_rows=2, noise_type="shot"))
    with pytest.raises(ValueError, match="tile_rows"):
        two_sums(torch.randn(3, 4), torch.randn(4, 5))


def test_fisher_sensitivities_see_the_tiles():
    """A probe on the partial sums (before 16-bit ADCs) sums each tile's unit variance: for thermal noise the
    tiled layer's sensitivity equals the untiled one's (same total variance)."""
    from noisesim.allocate.sensitivity import fisher_sensitivity
    from noisesim.data.tasks import Classification

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(96, 32), nn.ReLU(), nn.Linear(32, 4))
    x, y = torch.randn(64, 96), torch.randint(0, 4, (64,))
    got = []
    for rows in (None, 20):
        sim = noisesim.prepare(model, noisesim.SimConfig(noise_type="thermal", tile_rows=rows,
                                                         adc_bits=None if rows is None else 16))
        noisesim.calibrate(sim, [x])
        got.append(fisher_sensitivity(sim, [(x, y)], Classification()).per_layer())
    for name in got[0]:
        assert math.isclose(got[0][name], got[1][name], rel_tol=1e-3), (name, got)


# -- the joint allocation of light and ADC bits ------------------------------------------------------------------
def _joint_problem(layers, seed, bits=(2, 8)):
    from noisesim.allocate import JointProblem

    rng = np.random.default_rng(seed)
    macs = rng.integers(10_000, 1_000_000, layers).astype(float)
    conversions = macs / rng.choice([9, 64, 256], layers)
    p = dict(c=rng.lognormal(0, 1.5, layers), a=rng.lognormal(2, 1.5, layers), macs=macs, conversions=conversions,
             photon=0.128e-18, fom=10e-15, bits=bits, e_min=1e-3)
    uniform = float(np.sum(macs * 0.128e-18 * 5) + np.sum(conversions * 10e-15 * 2 ** 6))
    return JointProblem(budget=uniform, **p)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_joint_closed_form_matches_slsqp(seed):
    """The stationary point with one multiplier against SciPy's SLSQP on the same problem (continuous bits)."""
    from scipy.optimize import minimize

    from noisesim.allocate.joint import continuous

    p = _joint_problem(5, seed)
    e, b = continuous(p)
    assert math.isclose(p.spend(e, b), p.budget, rel_tol=1e-6)
    n = len(e)

    def split(z):
        return np.exp(z[:n]), z[n:]

    res = minimize(lambda z: p.loss(*split(z)), np.concatenate([np.log(np.full(n, 5.0)), np.full(n, 6.0)]),
                   method="SLSQP", bounds=[(math.log(p.e_min), 30)] * n + [p.bits] * n,
                   constraints=[{"type": "eq", "fun": lambda z: p.spend(*split(z)) / p.budget - 1}],
                   options={"maxiter": 1000, "ftol": 1e-12})
    assert res.success, res.message
    assert p.loss(e, b) <= res.fun * (1 + 1e-4), (p.loss(e, b), res.fun)


@pytest.mark.parametrize("seed", [0, 3])
def test_joint_whole_bits_match_brute_force(seed):
    """Every vector of whole bits (7^3), each with its exact energies: the integer program finds the best."""
    import itertools

    from noisesim.allocate.joint import whole_bits

    p = _joint_problem(3, seed)
    e, b = whole_bits(p)
    assert np.all(b == np.round(b)) and p.spend(e, b) <= p.budget * (1 + 1e-9)
    best = min(p.loss(p.energies_for(np.array(bb, float)), np.array(bb, float))
               for bb in itertools.product(range(2, 9), repeat=3)
               if np.all(p.energies_for(np.array(bb, float)) > 0))
    assert p.loss(e, b) <= best * (1 + 1e-6), (p.loss(e, b), best)


def test_joint_allocation_spends_the_uniform_budget_better():
    """On a small network with 64-row arrays and 6-bit ADCs at 5 photons/MAC: the joint allocation keeps the
    uniform point's joules (light + ADCs) and predicts a smaller loss increase."""
    from noisesim.allocate import AllocationProblem, JointAllocator
    from noisesim.data.tasks import Classification

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    x, y = torch.randn(256, 256), torch.randint(0, 10, (256,))
    sim = noisesim.prepare(model, noisesim.SimConfig(noise_type="thermal", e_mac=5.0, tile_rows=64, adc_bits=6))
    noisesim.calibrate(sim, [x])
    alloc = JointAllocator(batches=2).allocate(AllocationProblem(sim, 5.0, "layer", [(x[:128], y[:128])] * 2,
                                                                 Classification()))
    report = noisesim.energy_report(sim, x[:8])
    spent = report.attrs["energy_optical_j"] + report.attrs["energy_adc_j"]
    assert math.isclose(spent, alloc.info["budget_j"], rel_tol=1e-6)
    assert alloc.info["predicted_loss"] < alloc.info["uniform_predicted_loss"]
    assert set(report["adc_bits"]) != {6.0} and all(float(b).is_integer() for b in report["adc_bits"])


@pytest.mark.parametrize("name", ["photonic", "imc"])
def test_hardware_presets_set_their_settings_under_the_flags(name, tmp_path):
    """A preset applies over the --config defaults, flags override it, and every key of its file is a setting;
    each constant in the file carries its source (a comment)."""
    import yaml

    from noisesim.config import HARDWARE_PRESETS as HARDWARE
    from noisesim.experiment.cli import parse_args
    from noisesim.usage import UsageError

    text = (HARDWARE / f"{name}.yaml").read_text()
    preset = yaml.safe_load(text)
    cfg = parse_args(["--config", "none", "--hardware", name])
    assert all(getattr(cfg, k) in (v, (v,)) for k, v in preset.items())
    assert parse_args(["--config", "none", "--hardware", name, "--tile_rows", "32"]).tile_rows == 32
    assert "Murmann" in text and "Sources" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text("tile_rows: 0\n")
    with pytest.raises(UsageError, match="tile_rows"):
        parse_args(["--config", "none", "--hardware", str(bad)])


# -- integer export of the tiles ----------------------------------------------------------------------------------
@pytest.mark.parametrize("adc", [None, "minmax", "full_scale"])
def test_integer_export_writes_every_tiles_psum_and_adc_code(adc, tmp_path):
    """With 20-row arrays (and 6-bit ADCs): the tiles' integer psums add up to the untiled psum exactly, the codes
    recover the fake-quantized output to float rounding, and the export reads back with its tiles and ADC."""
    from noisesim.export.integers import export_model, load_export, save_export
    from noisesim.export.verify import captured_inputs, integer_psum, tile_vectors, verify_layers

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, groups=2),
                          nn.ReLU(), nn.Flatten(), nn.Linear(16 * 8 * 8, 10))
    x = torch.rand(8, 3, 8, 8)
    hw = dict(tile_rows=20) if adc is None else dict(tile_rows=20, adc_bits=6, adc_range=adc)
    sim = noisesim.calibrate(noisesim.prepare(model, noisesim.SimConfig(**hw)), [x])
    layers, skipped = export_model(sim)
    assert not skipped and [li.tile_rows for li in layers.values()] == [20, 20, 20]
    assert max(c.relative_error for c in verify_layers(sim, x, layers)) < 1e-5
    captured = captured_inputs(sim, x)
    for name, li in layers.items():
        x_int = li.input_grid.quantize(captured[name][0])
        untiled = integer_psum(dataclasses.replace(li, tile_rows=None), x_int)
        assert torch.equal(integer_psum(li, x_int).sum(0), untiled)
    save_export(layers, tmp_path)
    back = load_export(tmp_path)
    assert {n: (li.tile_rows, li.adc_bits, li.adc_scale) for n, li in back.items()} == \
        {n: (li.tile_rows, li.adc_bits, pytest.approx(li.adc_scale)) for n, li in layers.items()}
    tiles = tile_vectors(back, captured, sample=2)
    out = tiles["5/output"]
    assert tiles["5/psum"].shape == (math.ceil(1024 / 20), 10)
    assert np.allclose(out, captured["5"][1][2].numpy(), rtol=1e-5, atol=1e-6)
    if adc is not None:
        codes = tiles["2/adc_code"]
        assert codes.shape == (math.ceil(72 / 20), 16, 8, 8) and np.abs(codes).max() <= 31
        assert np.allclose(codes.sum(0) * layers["2"].adc_scale + layers["2"].bias.numpy()[:, None, None],
                           captured["2"][1][2].numpy(), rtol=1e-5, atol=1e-6)


def test_tiles_and_adcs_match_aihwkit_lightning():
    """aihwkit-lightning's AnalogLinear with max_input_size 64, out_res 2^6 - 2 states and out_bound 2 (the
    ADC range r = input_range x out_bound x max|w| of each slice): noisesim with tile_rows 64, 6-bit ADCs over
    the same r gives the same outputs, float weights and inputs, noise off."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lightning = pytest.importorskip("aihwkit_lightning.nn.conversion")
        from aihwkit_lightning.simulator.configs import TorchInferenceRPUConfig
    torch.manual_seed(0)
    linear, x = nn.Linear(256, 16), torch.randn(512, 256)
    with torch.no_grad():
        linear.weight[0, ::64] = 0.2  # every slice of 64 rows has the same max|w| (aihwkit bounds each slice)
    rpu = TorchInferenceRPUConfig()
    rpu.mapping.max_input_size = 64
    rpu.forward.out_res, rpu.forward.out_bound = 2 ** 6 - 2, 2.0
    rpu.pre_post.input_range.enable = True
    analog = lightning.convert_to_analog(nn.Sequential(linear), rpu).eval()
    input_range = float(x.abs().max()) * 1.01  # nothing clips at the input
    sim = noisesim.calibrate(noisesim.prepare(nn.Sequential(linear), noisesim.SimConfig(**FLOAT, tile_rows=64,
                                                                                         adc_bits=6)), [x])
    noisesim.sim_layers(sim)[0].adc.set_bound(input_range * 2.0 * 0.2)
    with torch.no_grad():
        analog[0].input_range.fill_(input_range)
        want, got = analog(x), sim(x)
    assert torch.allclose(got, want, atol=1e-5) and (want != linear(x)).float().mean() > 0.2  # the ADCs quantize


def test_trained_joint_allocation_learns_light_and_adc_bits_within_the_joules():
    """Log-energies and ADC log2-bits trained together under lambda * max(0, log J - log B): whole ADC bits that
    moved, and the joules (light + ADCs) those of the uniform point."""
    from noisesim.allocate import AllocationProblem, JointTrainedAllocator
    from noisesim.data.tasks import Classification
    from noisesim.train.loop import TrainConfig

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    x, y = torch.randn(256, 256), torch.randint(0, 10, (256,))
    sim = noisesim.prepare(model, noisesim.SimConfig(noise_type="thermal", e_mac=5.0, tile_rows=64, adc_bits=6))
    noisesim.calibrate(sim, [x])
    allocator = JointTrainedAllocator(TrainConfig(steps=40, lr=0.2, progress=False), lambd=5.0)
    alloc = allocator.allocate(AllocationProblem(sim, 5.0, "layer", [(x[:128], y[:128]), (x[128:], y[128:])],
                                                 Classification()))
    report = noisesim.energy_report(sim, x[:8])
    spent = report.attrs["energy_optical_j"] + report.attrs["energy_adc_j"]
    assert math.isclose(spent, alloc.info["budget_j"], rel_tol=1e-5) and alloc.info["steps"] > 0
    bits = [a.adc_bits for a in alloc.layers.values()]
    assert all(float(b).is_integer() for b in bits) and bits != [6.0, 6.0, 6.0]
    assert report["e_mac"].max() > 5.0  # light bought with ADC bits
