"""Integer export: integers x scales reproduce every layer's fake-quantized output, psums equal an independent int64
convolution, the hardware text files round-trip, overflow is caught, and integer-only inference matches."""
import itertools
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import noisesim
from noisesim.export import (ExportError, checks_frame, export_layer, export_model, integer_inference, integer_psum,
                             load_export, overflow_report, save_export, verify_layers)
from noisesim.export.hardware import read_values, tile_integers, to_bits, write_tile
from noisesim.models.cifar_resnet import resnet20

LAYERS = {
    "linear": (lambda: nn.Linear(24, 10), (16, 24)),
    "conv": (lambda: nn.Conv2d(6, 8, 3, padding=1), (4, 6, 9, 9)),
    "conv_stride_dilation": (lambda: nn.Conv2d(6, 8, 3, stride=2, padding=2, dilation=2), (4, 6, 11, 11)),
    "grouped": (lambda: nn.Conv2d(6, 9, 3, padding=1, groups=3), (4, 6, 7, 7)),
    "depthwise": (lambda: nn.Conv2d(6, 6, 5, padding=2, groups=6, bias=False), (4, 6, 8, 8)),
    "conv1d": (lambda: nn.Conv1d(5, 7, 3, padding=1), (4, 5, 12)),
}
QUANT = {
    "W4A4 per-channel": dict(weight_bits=4, act_bits=4, weight_per_channel=True),
    "W8A8 symmetric inputs": dict(weight_bits=8, act_bits=8, act_symmetric=True),
    "W3A5 asymmetric weights": dict(weight_bits=3, act_bits=5, weight_symmetric=False),
}


def _prepared(layer: str, quant: str):
    torch.manual_seed(0)
    build, shape = LAYERS[layer]
    sim = noisesim.prepare(build(), noisesim.SimConfig(**QUANT[quant]))
    x = torch.randn(shape)
    noisesim.calibrate(sim, [x])
    return sim, x


@pytest.mark.parametrize("layer,quant", list(itertools.product(LAYERS, QUANT)), ids=lambda v: str(v))
def test_integers_times_scales_reproduce_the_fake_quantized_output(layer, quant):
    sim, x = _prepared(layer, quant)
    layers, skipped = export_model(sim)
    assert not skipped and len(layers) == 1
    check = checks_frame(verify_layers(sim, x, layers)).iloc[0]
    assert check["relative_error"] <= 1e-5, check.to_dict()
    li = next(iter(layers.values()))
    w = li.weight
    assert w.dtype == torch.int64 and li.weight_grid.qmin <= int(w.min()) and int(w.max()) <= li.weight_grid.qmax


def _independent_conv(x_int, w_int, stride, padding, dilation, groups, zx, zw):
    """An int64 convolution written as a sum over kernel taps of shifted inputs (no unfold, no matmul)."""
    x = F.pad(x_int - zx, (padding[1], padding[1], padding[0], padding[0]))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w_int.shape
    w = w_int - zw.reshape(-1, 1, 1, 1)
    out_h = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = torch.zeros(n, o, out_h, out_w, dtype=torch.int64)
    per = o // groups
    for a, b in itertools.product(range(kh), range(kw)):
        patch = x[:, :, a * dilation[0]:a * dilation[0] + stride[0] * (out_h - 1) + 1:stride[0],
                  b * dilation[1]:b * dilation[1] + stride[1] * (out_w - 1) + 1:stride[1]]
        for g in range(groups):
            xs = patch[:, g * cg:(g + 1) * cg]
            ws = w[g * per:(g + 1) * per, :, a, b]
            out[:, g * per:(g + 1) * per] += torch.einsum("nchw,oc->nohw", xs, ws)
    return out


@pytest.mark.parametrize("layer", ["conv", "conv_stride_dilation", "grouped", "depthwise"])
def test_psums_equal_an_independent_int64_convolution(layer):
    sim, x = _prepared(layer, "W3A5 asymmetric weights")
    li = export_layer(noisesim.sim_layers(sim)[0])
    x_int = li.input_grid.quantize(x)
    ours = integer_psum(li, x_int)
    ref = _independent_conv(x_int, li.weight, li.stride, li.padding, li.dilation, li.groups,
                            li.input_grid.zero_point.reshape(()), li.weight_grid.zero_point.reshape(-1))
    assert ours.dtype == torch.int64 and torch.equal(ours, ref)


def test_hardware_files_round_trip_and_their_psums_add_up(tmp_path):
    torch.manual_seed(0)
    conv = nn.Sequential(nn.ReLU(), nn.Conv2d(16, 24, 3, padding=1, bias=False))
    sim = noisesim.prepare(conv, noisesim.SimConfig(weight_bits=4, act_bits=4))
    x = torch.randn(2, 16, 6, 6)
    noisesim.calibrate(sim, [x])
    li = export_layer(noisesim.sim_layers(sim)[0])
    x_relu = torch.relu(x)
    paths = write_tile(li, x_relu, tmp_path, array=8, itile=1, otile=2, psum_bits=12, sample=1)
    assert len(paths) == 9 + 1 + 2 + 9
    t = tile_integers(li, li.input_grid.quantize(x_relu[1]), 8, 1, 2)
    for k in range(9):
        assert np.array_equal(read_values(tmp_path / f"weight_itile1_otile2_kij{k}.txt", 8, 4, True), t["weights"][k])
        assert np.array_equal(read_values(tmp_path / f"psum_{k}.txt", 8, 12, True), t["psum_taps"][k])
    assert np.array_equal(read_values(tmp_path / "activation.txt", 8, 4, False), t["activations"])
    psum = read_values(tmp_path / "psum.txt", 8, 12, True)
    assert np.array_equal(psum, t["psum_taps"].sum(0)) and (read_values(tmp_path / "psum_relu.txt", 8, 12, True)
                                                           == np.maximum(psum, 0)).all()
    # the tile's psum is the full layer's psum restricted to the tile's input and output channels
    sub = _independent_conv(li.input_grid.quantize(x_relu[1:2])[:, 8:16], li.weight[16:24, 8:16], (1, 1), (1, 1),
                            (1, 1), 1, torch.tensor(0), torch.zeros(8, dtype=torch.int64))
    assert np.array_equal(psum, sub[0].reshape(8, -1).t().numpy())
    header = (tmp_path / "activation.txt").read_text().splitlines()[0]
    assert header.startswith("# layer") and "array 8x8" in header
    first = (tmp_path / "weight_itile1_otile2_kij0.txt").read_text().splitlines()[3]
    assert first == "".join(reversed(to_bits(t["weights"][0][0], 4, True)))  # column 7 first, MSB first


def test_overflow_is_detected_and_bits_that_do_not_fit_are_refused():
    torch.manual_seed(0)
    conv = nn.Conv2d(32, 4, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)  # every weight at the top of the grid: psums of 32 * 9 * 255 * 127
    sim = noisesim.prepare(conv, noisesim.SimConfig(weight_bits=8, act_bits=8))
    x = torch.rand(1, 32, 5, 5) + 1.0
    noisesim.calibrate(sim, [x])
    report = overflow_report(sim, [x], psum_bits=16).iloc[0]
    assert report["overflows"] > 0 and report["bits_needed"] > 16
    assert overflow_report(sim, [x], psum_bits=32).iloc[0]["overflows"] == 0
    with pytest.raises(ValueError, match="do not fit 4 signed bits"):
        to_bits(np.array([8]), 4, True)


def _overflowing_tile():
    """A ReLU + conv whose 8 x 8 tile psums reach 8 * 9 * 255 * 127 (21 bits)."""
    conv = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, bias=False))
    with torch.no_grad():
        conv[1].weight.fill_(1.0)
    sim = noisesim.prepare(conv, noisesim.SimConfig(weight_bits=8, act_bits=8))
    x = torch.rand(1, 8, 4, 4) + 1.0
    noisesim.calibrate(sim, [x])
    li = export_layer(noisesim.sim_layers(sim)[0])
    return li, x, tile_integers(li, li.input_grid.quantize(x[0]), 8, 0, 0)


@pytest.mark.parametrize("policy", ["error", "wrap", "saturate"])
def test_psums_that_do_not_fit_stop_the_export_or_are_written_wrapped_or_saturated(tmp_path, policy):
    li, x, t = _overflowing_tile()
    psum, outside = t["psum"], lambda p: int((p > 2 ** 15 - 1).sum())
    assert psum.max() > 2 ** 15
    if policy == "error":
        with pytest.raises(ExportError, match="do not fit 16 signed bits"):
            write_tile(li, x, tmp_path / "hw", psum_bits=16, overflow=policy)
        assert not (tmp_path / "hw").exists()
        return
    write_tile(li, x, tmp_path / "hw", psum_bits=16, overflow=policy)
    got = read_values(tmp_path / "hw" / "psum.txt", 8, 16, True)
    expected = (psum + 2 ** 15) % 2 ** 16 - 2 ** 15 if policy == "wrap" else np.clip(psum, -2 ** 15, 2 ** 15 - 1)
    assert np.array_equal(got, expected) and not np.array_equal(got, psum)
    header = (tmp_path / "hw" / "psum.txt").read_text().splitlines()[2]
    counted = 2 * outside(psum) + sum(outside(p) for p in t["psum_taps"])  # psum, psum_relu and the taps
    assert f"psums that do not fit: {policy} ({counted} in this tile's files)" in header


def test_an_export_reads_back_exactly_and_a_corrupt_one_is_named(tmp_path):
    sim, x = _prepared("conv", "W4A4 per-channel")
    layers, _ = export_model(sim)
    save_export(layers, tmp_path)
    back = load_export(tmp_path)
    for name, li in layers.items():
        b = back[name]
        assert torch.equal(b.weight, li.weight) and torch.equal(integer_psum(b, b.input_grid.quantize(x)),
                                                                integer_psum(li, li.input_grid.quantize(x)))
        assert torch.allclose(b.weight_scale, li.weight_scale) and (b.stride, b.groups) == (li.stride, li.groups)
    (tmp_path / "integers.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ExportError, match="not a readable export"):
        load_export(tmp_path)
    with pytest.raises(ExportError, match="not a readable export"):
        load_export(tmp_path / "missing")


def test_float_psums_are_exact_where_the_bound_allows_and_chunking_changes_nothing(monkeypatch):
    from noisesim.export import verify

    torch.manual_seed(0)
    conv = nn.Conv2d(16, 8, 3, padding=1, groups=2)
    sim = noisesim.prepare(conv, noisesim.SimConfig(weight_bits=8, act_bits=8, weight_per_channel=True))
    x = torch.rand(6, 16, 7, 7)
    noisesim.calibrate(sim, [x])
    li = export_layer(sim)
    assert verify._exact_dtype(li) == torch.float32  # 72 * 255 * 127 * 2 < 2^24
    x_int = li.input_grid.quantize(x)
    exact = integer_psum(li, x_int)  # int64
    for dtype in (torch.float32, torch.float64):
        assert torch.equal(integer_psum(li, x_int, dtype).to(torch.int64), exact)
    monkeypatch.setattr(verify, "_PATCH_ELEMENTS", 1000)  # one sample per chunk
    assert torch.equal(integer_psum(li, x_int), exact)


def test_whole_network_integer_inference_matches_the_fake_quantized_network():
    torch.manual_seed(0)
    sim = noisesim.prepare(resnet20(10, 1).eval(), noisesim.SimConfig(weight_bits=4, act_bits=4,
                                                                      weight_per_channel=True))
    x = torch.randn(32, 1, 28, 28)
    noisesim.calibrate(sim, [x])
    with torch.no_grad(), noisesim.noise_disabled(sim):
        ref = sim(x)
        with integer_inference(sim) as model:
            out = model(x)
        assert torch.equal(sim(x), ref)  # the layers are restored afterwards
    assert torch.equal(out.argmax(1), ref.argmax(1)) and (out - ref).abs().max() < 1e-4


def test_export_command(tmp_path, capsys):
    import json

    from noisesim.experiment.main import main as run_main
    from noisesim.experiment.export import main
    from noisesim.reports.docs import markdown_rows
    from tests.helpers import make_fashion_mnist

    data = make_fashion_mnist(tmp_path / "fm", n_train=64, n_test=32)
    assert run_main(["--config", "none", "--data_path", str(data), "--log_dir", str(tmp_path), "--run_name", "r",
                     "--weight_bits", "4", "--act_bits", "4", "--noise_type", "none", "--no_plot", "--no-progress",
                     "--val_batch_size", "16"]) == 0
    run = tmp_path / "r"
    assert main([str(run), "--layer", "layer2.0.conv2", "--array", "8", "--itile", "1", "--otile", "1",
                 "--integer_accuracy"]) == 0
    out = capsys.readouterr().out
    assert "largest recovery error" in out and "integer-only" in out
    summary = markdown_rows((run / "export/summary.md").read_text())  # the row the docs read
    fake, integer = re.search(r"fake-quantized accuracy ([0-9.]+), integer-only ([0-9.]+)", out).groups()
    assert len(summary) == 1 and summary[0]["layers"] == "20" and summary[0]["run"] == "r"
    assert summary[0]["fake-quantized accuracy"] == f"{float(fake) * 100:.2f}%"
    assert summary[0]["integer-only accuracy"] == f"{float(integer) * 100:.2f}%"
    manifest = json.loads((run / "export/manifest.json").read_text())
    assert len(manifest["layers"]) == 20 and (run / "export/hardware/psum.txt").is_file()
    with np.load(run / "export/integers.npz") as z:
        assert z["conv1/weight_int"].dtype == np.int32 and z["conv1/weight_int"].shape == (16, 1, 3, 3)
    assert main([str(run), "--tolerance", "1e-15"]) == 1  # float rounding is above that
    assert main([str(run), "--layer", "nope"]) == 2 and "--layer nope" in capsys.readouterr().err
    assert main([str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_cifar10_vgg16_chokepoint_qat_then_export_of_the_array_tile(tmp_path, capsys):
    """The classic flow on generated CIFAR-10 files: VGG16 with conv 8 narrowed to 8 -> 8 channels, W4A4 QAT with
    PACT, then the integers and the 8 x 8 tile's test-bench files of the chokepoint layer."""
    from noisesim.experiment.main import main as run_main
    from noisesim.experiment.export import main
    from tests.helpers import make_cifar10

    data = make_cifar10(tmp_path / "c10", n=16)
    flags = ["--config", "none", "--model", "vgg16", "--dataset", "cifar10", "--data_path", str(data),
             "--model_options", '{"chokepoint": 8, "choke_channels": 8}', "--log_dir", str(tmp_path), "--run_name",
             "v", "--weight_bits", "4", "--act_bits", "4", "--weight_per_channel", "--noise_type", "none", "--qat",
             "--qat_epochs", "1", "--act_learning", "pact", "--train_batch_size", "16", "--val_batch_size", "16",
             "--calibration_batches", "1", "--no_plot", "--no-progress"]
    assert run_main(flags + ["--qat_val_samples", "80"]) == 2  # all 80 training samples: a one-line error
    assert "--qat_val_samples 80: the training set holds only 80" in capsys.readouterr().err
    assert run_main(flags + ["--qat_val_samples", "16"]) == 0
    assert main([str(tmp_path / "v"), "--layer", "features.27", "--array", "8"]) == 0
    assert "largest recovery error" in capsys.readouterr().out
    hw = tmp_path / "v/export/hardware"
    assert len(list(hw.glob("weight_itile0_otile0_kij*.txt"))) == 9 and (hw / "psum_relu.txt").is_file()
    assert read_values(hw / "weight_itile0_otile0_kij4.txt", 8, 4, True).shape == (8, 8)
