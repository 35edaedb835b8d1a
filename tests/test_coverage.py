"""Every matmul of any model is simulated, or the coverage report says which is not: nn.MultiheadAttention is
decomposed exactly, functional products become modules, and instrumented MACs equal torch's FlopCounterMode."""
import itertools
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import noisesim
from noisesim.coverage import counting_macs
from noisesim.nn.attention import Attention, MultiheadAttention
from noisesim.nn.linear import SimLinear
from noisesim.nn.matmul import SimEinsum, SimMatmul

FLOAT = noisesim.SimConfig(weight_bits=None, act_bits=None)


def float_macs(model, x) -> int:
    """FlopCounterMode's count of the float model (the fused eval-mode MultiheadAttention kernel, which it
    does not count, switched off)."""
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), counting_macs() as counter:
            model(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return counter.get_total_flops() // 2


MHA_CASES = list(itertools.product([False, True], [True, False], [False, True], [False, True], [None, 12]))


@pytest.mark.parametrize("batch_first,bias,bias_kv,zero_attn,kdim", MHA_CASES,
                         ids=lambda v: str(v))
def test_decomposed_attention_equals_torch(batch_first, bias, bias_kv, zero_attn, kdim):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, bias=bias, add_bias_kv=bias_kv, add_zero_attn=zero_attn, kdim=kdim,
                                vdim=kdim, batch_first=batch_first).eval()
    if bias_kv:
        nn.init.normal_(mha.bias_k), nn.init.normal_(mha.bias_v)
    ours = MultiheadAttention.from_torch(mha)
    n, length, s = 3, 5, 7
    q = torch.randn(n, length, 16) if batch_first else torch.randn(length, n, 16)
    kv = torch.randn(n, s, kdim or 16) if batch_first else torch.randn(s, n, kdim or 16)
    padding = torch.zeros(n, s, dtype=torch.bool)
    padding[0, -2:] = True
    masks = [{}, {"attn_mask": torch.rand(length, s) > 0.8}, {"key_padding_mask": padding},
             {"attn_mask": torch.randn(n * 4, length, s)}]
    for kw, need, average in itertools.product(masks, (True, False), (True, False)):
        a = mha(q, kv, kv, need_weights=need, average_attn_weights=average, **kw)
        b = ours(q, kv, kv, need_weights=need, average_attn_weights=average, **kw)
        torch.testing.assert_close(b[0], a[0], rtol=1e-5, atol=1e-6)
        if need:
            torch.testing.assert_close(b[1], a[1], rtol=1e-5, atol=1e-6)
        else:
            assert b[1] is None
    back = ours.to_torch()
    assert all(k1 == k2 and torch.equal(v1, v2) for (k1, v1), (k2, v2)
               in zip(mha.state_dict().items(), back.state_dict().items()))


def test_attention_module_equals_sdpa():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8)
    mask = torch.rand(5, 6) > 0.3
    attn = Attention()
    for args, kw in [((q, k, v), {}), ((q, k, v), {"attn_mask": mask}), ((q, q, q), {"is_causal": True}),
                     ((q, k, v), {"attn_mask": torch.randn(5, 6), "scale": 0.3}),
                     ((q, k[:, :2], v[:, :2]), {"enable_gqa": True})]:
        torch.testing.assert_close(attn(*args, **kw), F.scaled_dot_product_attention(*args, **kw))


def vit_b16_shaped() -> nn.Module:
    """ViT-B/16's layout (12 layers, 12 heads, hidden 768, MLP 3072, 16x16 patches) on 64x64 images."""
    torch.manual_seed(0)
    return torchvision.models.VisionTransformer(64, 16, 12, 12, 768, 3072, num_classes=10).eval()


def test_vit_is_fully_covered_and_macs_match_flop_counter():
    model, x = vit_b16_shaped(), torch.randn(2, 3, 64, 64)
    sim = noisesim.prepare(model, noisesim.SimConfig(noise_type="thermal"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 100% coverage: no warning
        noisesim.calibrate(sim, [x])
    cov = noisesim.coverage_of(sim)
    assert cov.fraction == 1.0 and cov.uncovered == () and cov.total_macs == float_macs(model, x)
    report = noisesim.energy_report(sim, x[:1])
    assert report.attrs["macs"] == float_macs(model, x[:1]) and report.attrs["coverage"] == 1.0
    assert (report["kind"] == "matmul").sum() == 24  # q k^T and p v in each of the 12 layers
    clean = noisesim.prepare(model, FLOAT)
    torch.testing.assert_close(clean(x), model(x), rtol=1e-4, atol=1e-5)
    assert isinstance(noisesim.to_float(sim).encoder.layers[0].self_attention, nn.MultiheadAttention)


def test_transformer_encoder_with_padding_mask_is_covered():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=True).eval()
    x, pad = torch.randn(3, 6, 32), torch.zeros(3, 6, dtype=torch.bool)
    pad[1, -2:] = True
    ref = model(x, src_key_padding_mask=pad)
    sim = noisesim.prepare(model, FLOAT)
    out = sim(x, src_key_padding_mask=pad)
    torch.testing.assert_close(out[~pad], ref[~pad], rtol=1e-4, atol=1e-5)
    assert noisesim.measure_coverage(sim, x).fraction == 1.0


class Block(nn.Module):
    """Matrix products as function calls: a @ b, torch.matmul, sdpa and an einsum with a parameter."""

    def __init__(self):
        super().__init__()
        self.qkv, self.out, self.mix = nn.Linear(16, 48), nn.Linear(16, 16), nn.Parameter(torch.randn(16, 16) / 4)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, -1)
        a = torch.softmax(q @ k.transpose(-1, -2) / 4, -1)
        y = torch.matmul(a, v) + F.scaled_dot_product_attention(*(t.unsqueeze(1) for t in (q, k, v))).squeeze(1)
        return self.out(torch.einsum("bld,de->ble", y, self.mix))


class DataDependent(nn.Module):
    def forward(self, x):
        return torch.bmm(x, x.transpose(1, 2)) if x.sum() > 0 else x  # fx cannot trace this branch


def test_functional_products_become_instrumented_modules():
    torch.manual_seed(0)
    model, x = nn.Sequential(Block(), Block()).eval(), torch.randn(2, 5, 16)
    sim = noisesim.prepare(model, FLOAT)
    torch.testing.assert_close(sim(x), model(x), rtol=1e-5, atol=1e-6)
    kinds = [type(m) for m in sim[0].modules()]
    assert kinds.count(SimMatmul) == 4 and kinds.count(SimEinsum) == 1 and kinds.count(SimLinear) == 2
    cov = noisesim.measure_coverage(sim, x)
    assert cov.fraction == 1.0 and cov.total_macs == float_macs(model, x)


def test_what_is_left_out_is_named_and_min_coverage_raises():
    torch.manual_seed(0)
    model, x = nn.Sequential(Block(), DataDependent()).eval(), torch.rand(2, 5, 16)
    sim = noisesim.prepare(model, noisesim.SimConfig(noise_type="thermal"))
    with pytest.warns(UserWarning, match=r"not instrumented: 1 \(bmm, 800 MACs\)"):
        noisesim.calibrate(sim, [x])
    cov = noisesim.coverage_of(sim)
    assert cov.total_macs == float_macs(model, x) and cov.total_macs - cov.instrumented_macs == 2 * 5 * 5 * 16
    assert noisesim.energy_report(sim).attrs["uncovered"].startswith("1 (bmm")
    with pytest.raises(noisesim.CoverageError, match="below the required 99%"):
        noisesim.calibrate(noisesim.prepare(model, FLOAT), [x], min_coverage=0.99)


def test_min_coverage_flag_stops_before_writing(tmp_path, capsys, monkeypatch):
    from noisesim.experiment.main import main
    from tests.helpers import make_fashion_mnist
    data = make_fashion_mnist(tmp_path / "fm", n_train=64, n_test=32)
    monkeypatch.setattr(noisesim.coverage.Coverage, "fraction", property(lambda self: 0.5))
    code = main(["--config", "none", "--data_path", str(data), "--log_dir", str(tmp_path / "logs"), "--min_coverage", "0.9",
                 "--no_plot", "--no-progress"])
    assert code == 2 and "--min_coverage 0.9" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


EINSUMS = [("bij,bjk->bik", (2, 3, 4), (2, 4, 5)), ("bhqd,bhkd->bhqk", (2, 2, 3, 4), (2, 2, 5, 4)),
           ("ij,ij->i", (3, 4), (3, 4)), ("ij,jk->i", (3, 4), (4, 5)), ("ij,kj->", (3, 4), (5, 4)),
           ("nd,de->ne", (6, 4), (4, 3))]


@pytest.mark.parametrize("equation,a_shape,b_shape", EINSUMS, ids=[e for e, _, _ in EINSUMS])
def test_einsum_fan_in_is_the_number_of_products_per_output(equation, a_shape, b_shape):
    """D x outputs = the MACs FlopCounterMode counts when both operands span every index (torch sums an index that
    only one operand carries before it multiplies, so the equation as written is counted on the broadcast form)."""
    from noisesim.nn import Einsum

    a, b = torch.randn(a_shape), torch.randn(b_shape)
    sim = noisesim.prepare(Einsum(equation), FLOAT)
    with torch.no_grad():
        y = sim(a, b)
    inputs, out = equation.split("->")
    index = "".join(dict.fromkeys(inputs.replace(",", "")))  # every index, in order of appearance
    sizes = {c: n for idx, t in zip(inputs.split(","), (a, b)) for c, n in zip(idx, t.shape)}

    def spread(t, idx):  # t over every index: singleton where it has none, then expanded
        return torch.einsum(f"{idx}->{''.join(c for c in index if c in idx)}", t).reshape(
            [sizes[c] if c in idx else 1 for c in index]).expand([sizes[c] for c in index])

    ia, ib = inputs.split(",")
    with counting_macs() as counter:
        torch.einsum(f"{index},{index}->{out}", spread(a, ia), spread(b, ib))
    assert sim.fan_in * max(y.numel(), 1) == counter.get_total_flops() // 2
    assert torch.allclose(y, torch.einsum(equation, a, b), atol=1e-5)
