"""The quantized network as ONNX in QDQ form, which ONNX Runtime, deployment stacks and hardware flows read.

``to_onnx(sim, example_inputs, path)`` exports a prepared, calibrated model with PyTorch's TorchScript-based
exporter (opset 13, the first with per-axis QuantizeLinear). Every fake quantizer becomes a
QuantizeLinear / DequantizeLinear pair carrying its calibrated scale and zero point: activations per tensor,
weights per output channel on axis 0 when prepared with ``weight_per_channel``. BatchNorm is already folded
into the convolutions by ``prepare``. Quantizers of fewer than 8 bits are stored in 8-bit containers with a
``Clip`` to their own grid in front (clamp to [s (q_min - z), s (q_max - z)], then round within the container,
the same numbers as the narrower grid; both round half to even).

Analog noise is not an ONNX operator: the file holds the noise-free quantized network (every noise model is
switched off while exporting), and ``to_onnx`` says so when the model carries noise. What QDQ cannot express
ends in an :class:`~noisesim.export.integers.ExportError` naming the module: learnable bit-widths (bits that
are still training), quantizers of more than 8 bits, per-token (dynamic) activation ranges.
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from typing import Any, Iterator

import torch
from torch import nn

from noisesim.context import noise_disabled
from noisesim.export.integers import ExportError
from noisesim.nn.prepare import sim_layers
from noisesim.noise.base import NoiseModel
from noisesim.quant.fake_quant import FakeQuantize

OPSET = 13
NOISE_FREE = "the ONNX file holds the noise-free quantized network: analog noise is not an ONNX operator"


def _check(sim: nn.Module) -> None:
    for m in sim_layers(sim):
        if m.tiled:
            raise ExportError(f"{m.name}: array tiles and ADCs have no QDQ form; the integer export writes them "
                              "(noisesim export, tiles.npz)")
    for name, q in sim.named_modules():
        if not isinstance(q, FakeQuantize) or not q.enabled:
            continue
        if q.bitwidth is not None:
            raise ExportError(f"{name}: learnable bit-widths cannot be exported; fix the bits first "
                              "(set_bits, or a run whose bits are rounded)")
        if q.cfg.dynamic:
            raise ExportError(f"{name}: per-token (dynamic) ranges are not a QDQ pair; prepare with act_dynamic off")
        if not float(q.cfg.bits).is_integer() or q.cfg.bits > 8:
            raise ExportError(f"{name}: {q.cfg.bits:g} bits do not fit ONNX's 8-bit QuantizeLinear")
        if not q.is_calibrated():
            raise ExportError(f"{name}: not calibrated (run noisesim.calibrate first)")


@contextlib.contextmanager
def _exporting(sim: nn.Module) -> Iterator[None]:
    """Noise off, every quantizer in its exportable form."""
    quantizers = [q for q in sim.modules() if isinstance(q, FakeQuantize) and q.enabled]
    for q in quantizers:
        q.export_form = True
    try:
        with noise_disabled(sim):
            yield
    finally:
        for q in quantizers:
            q.export_form = False


def to_onnx(sim: nn.Module, example_inputs: Any, path: str | os.PathLike, opset: int = OPSET,
            input_names: tuple[str, ...] = ("input",), output_names: tuple[str, ...] = ("output",)) -> str:
    """Write ``sim`` (prepared and calibrated; ``example_inputs`` a tensor or a tuple of them) to ``path`` and
    check it with ``onnx.checker``; returns a one-line description (what the file holds)."""
    import onnx

    _check(sim)
    noisy = any(isinstance(m, NoiseModel) for m in sim.modules())
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    was_training = sim.training
    sim.eval()
    buffer = io.BytesIO()
    try:
        with _exporting(sim), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python control flow
            torch.onnx.export(sim, inputs, buffer, opset_version=opset, dynamo=False,
                              input_names=list(input_names), output_names=list(output_names),
                              dynamic_axes={n: {0: "batch"} for n in (*input_names, *output_names)})
    except ExportError:
        raise
    except Exception as e:  # an operator the exporter cannot express
        raise ExportError(f"ONNX export failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
    finally:
        sim.train(was_training)
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "wb") as f:
        f.write(buffer.getvalue())
    os.replace(tmp, path)
    nodes = [n.op_type for n in model.graph.node]
    text = (f"{path}: opset {opset}, {nodes.count('QuantizeLinear')} QuantizeLinear / "
            f"{nodes.count('DequantizeLinear')} DequantizeLinear")
    return text + (f"; {NOISE_FREE}" if noisy else "")


def compare_with_onnxruntime(path: str | os.PathLike, sim: nn.Module, inputs: Any,
                             input_names: tuple[str, ...]) -> tuple[float, float, int, list[float]]:
    """Run the file with ONNX Runtime (CPU) and the fake-quantized ``sim`` (noise off) on ``inputs``: (largest
    absolute difference of the outputs, fraction of examples whose top-1 agrees, examples, and for each example
    whose top-1 differs the margin between noisesim's two largest outputs)."""
    import numpy as np
    import onnxruntime

    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {n: t.detach().cpu().numpy() for n, t in zip(input_names, inputs)})[0]
    with torch.no_grad(), noise_disabled(sim):
        ref = sim.eval()(*inputs).detach().cpu().numpy()
    out, ref = out.reshape(len(out), -1), ref.reshape(len(ref), -1)
    differ = out.argmax(1) != ref.argmax(1)
    top2 = np.sort(ref, 1)[:, -2:]
    margins = [float(m) for m in (top2[:, 1] - top2[:, 0])[differ]]
    return float(np.abs(out - ref).max()), float(np.mean(~differ)), len(out), margins
