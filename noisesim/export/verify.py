"""Integer-only forward passes that check the exported integers against the fake-quantized model.

``integer_psum(li, x_int)`` accumulates a layer's partial sums in int64 (conv: the input unfolded
into patches, one int64 matrix product per group). ``verify_layer`` feeds a layer the input it
sees in the model, computes y = psum · Δx · Δw + bias and compares it with the fake-quantized
output (noise off): the error is float rounding only. ``integer_inference(model)`` runs the
whole network with every exported layer computed this way; ``overflow_report`` counts the psums
that a PSUM_BITS-wide two's-complement accumulator could not hold.

For whole-network inference the products are formed in floating point where that is exact: every
partial sum is an integer of magnitude at most B = D · max|x_int| · max|w_int|, so float32 holds
them all exactly when B < 2^24 (any W4A4 layer with fan-in below 2^15) and float64 when B < 2^53;
each layer checks its bound and otherwise falls back to int64.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from noisesim.batches import call_model, split_batch
from noisesim.context import noise_disabled
from noisesim.export.integers import ExportError, LayerIntegers, export_layer
from noisesim.nn.prepare import sim_layers
from noisesim.nn.tiles import split_tiles

EXACT_FLOAT32, EXACT_FLOAT64 = 2 ** 24, 2 ** 53
_PATCH_ELEMENTS = 2 ** 25  # unfolded patches per chunk of samples (bounds memory)


def _as_2d(li: LayerIntegers, x: torch.Tensor, w: torch.Tensor):
    """Conv1d as Conv2d with height 1: (x, w, stride, padding, dilation) in 2-D form."""
    if x.dim() == 3:
        return (x.unsqueeze(2), w.unsqueeze(2), (1, li.stride[0]), (0, li.padding[0]), (1, li.dilation[0]))
    return x, w, tuple(li.stride), tuple(li.padding), tuple(li.dilation)


def integer_psum(li: LayerIntegers, x_int: torch.Tensor, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """psum = Σ (x_int - z_x)(w_int - z_w), accumulated in int64 (``dtype`` float32 / float64: exact while every
    partial sum is below 2^24 / 2^53). With ``li.tile_rows`` N: one psum per tile, shape (T, *output), over
    consecutive slices of N products of the fan-in (zero-padded to T N)."""
    x = x_int - li.input_grid.zero_point.reshape(())
    zw = li.weight_grid.zero_point.reshape(-1)
    w = li.weight - zw.reshape(-1, *([1] * (li.weight.dim() - 1)))
    rows = li.tile_rows
    if li.kind == "linear":
        if rows is None:
            return torch.matmul(x.to(dtype), w.t().to(dtype))
        xt, wt = split_tiles(x.to(dtype), -1, rows), split_tiles(w.to(dtype), -1, rows)  # (..., T, N), (O, T, N)
        return torch.einsum("...tk,otk->t...o", xt, wt)
    x4, w4, stride, padding, dilation = _as_2d(li, x, w)
    n, c, h, wd = x4.shape
    out_h = (h + 2 * padding[0] - dilation[0] * (w4.shape[2] - 1) - 1) // stride[0] + 1
    out_w = (wd + 2 * padding[1] - dilation[1] * (w4.shape[3] - 1) - 1) // stride[1] + 1
    g = li.groups
    wg = w4.reshape(g, w4.shape[0] // g, -1).to(dtype)  # (groups, O/g, C/g*kh*kw)
    unfold_dtype = torch.float64 if dtype == torch.int64 else dtype  # holds the input integers exactly
    chunk = max(1, _PATCH_ELEMENTS // max(1, wg.shape[0] * wg.shape[2] * out_h * out_w))
    outs = []
    for x_part in x4.split(chunk):
        cols = F.unfold(x_part.to(unfold_dtype), w4.shape[2:], dilation=dilation, padding=padding, stride=stride)
        cols = cols.round().to(dtype)  # exact: the unfolded values are the integers themselves
        cols = cols.reshape(len(x_part), g, -1, cols.shape[-1])  # (n, groups, C/g*kh*kw, L)
        if rows is None:
            outs.append(torch.matmul(wg.unsqueeze(0), cols).reshape(len(x_part), w4.shape[0], out_h, out_w))
        else:  # (n, g, T, N, L) against (g, O/g, T, N): (T, n, g, O/g, L)
            p = torch.einsum("ngtkl,gotk->tngol", split_tiles(cols, 2, rows), split_tiles(wg, -1, rows))
            outs.append(p.reshape(p.shape[0], len(x_part), w4.shape[0], out_h, out_w))
    out = torch.cat(outs, dim=0 if rows is None else 1)
    return out.squeeze(-2) if x_int.dim() == 3 else out


def adc_codes(li: LayerIntegers, psum: torch.Tensor) -> torch.Tensor:
    """Each tile's ADC code: clamp(round(psum · Δx · Δw / s), -q_max, q_max), from the psums (T, *output)."""
    shape = (-1,) + (1,) * (psum.dim() - 3) if li.kind == "conv" else (-1,)
    ratio = (li.psum_scale.to(torch.float64) / li.adc_scale).reshape(shape)
    return torch.round(psum.to(torch.float64) * ratio).clamp(-li.adc_levels, li.adc_levels).to(torch.int64)


def dequantize(li: LayerIntegers, psum: torch.Tensor) -> torch.Tensor:
    """y = psum · Δx · Δw + bias (per output channel); from tile psums (T, *output): their sum, or with an ADC
    y = s · Σ_t code_t + bias."""
    if li.tile_rows is not None or li.adc_scale is not None:
        if li.tile_rows is None:
            psum = psum.unsqueeze(0)
        if li.adc_scale is not None:
            y = adc_codes(li, psum).sum(0).to(torch.float64) * li.adc_scale
            shape = (-1,) + (1,) * (y.dim() - 2) if li.kind == "conv" else (-1,)
            return (y if li.bias is None else y + li.bias.to(torch.float64).reshape(shape)).float()
        psum = psum.sum(0)
    shape = (-1,) + (1,) * (psum.dim() - 2) if li.kind == "conv" else (-1,)
    y = psum.to(torch.float64) * li.psum_scale.to(torch.float64).reshape(shape)
    if li.bias is not None:
        y = y + li.bias.to(torch.float64).reshape(shape)
    return y.float()


def tile_vectors(layers: dict[str, LayerIntegers], captured: dict[str, tuple[torch.Tensor, torch.Tensor]],
                 sample: int = 0) -> dict[str, np.ndarray]:
    """What an RTL test bench of the analog tiles checks, for one sample: per layer on tiles or with an ADC, its
    input integers (``<layer>/input_int``), every tile's psum (``<layer>/psum``, shape (T, *output)) and, with an
    ADC, every tile's code (``<layer>/adc_code``) and the output y = s · Σ codes + bias (``<layer>/output``)."""
    out = {}
    for name, li in layers.items():
        if li.tile_rows is None and li.adc_scale is None:
            continue
        x_int = li.input_grid.quantize(captured[name][0][sample:sample + 1].detach().cpu())
        psum = integer_psum(li, x_int)
        psum = psum.unsqueeze(0) if li.tile_rows is None else psum
        out[f"{name}/input_int"] = x_int[0].numpy().astype(np.int32)
        out[f"{name}/psum"] = psum[:, 0].numpy()
        if li.adc_scale is not None:
            out[f"{name}/adc_code"] = adc_codes(li, psum)[:, 0].numpy().astype(np.int32)
        out[f"{name}/output"] = dequantize(li, psum if li.tile_rows is not None else psum[0])[0].numpy()
    return out


def _exact_dtype(li: LayerIntegers) -> torch.dtype:
    fan_in = li.weight[0].numel()
    bound = fan_in * max(abs(li.input_grid.qmin), abs(li.input_grid.qmax)) * int(li.weight.abs().max()) * 2
    if bound < EXACT_FLOAT32:
        return torch.float32
    return torch.float64 if bound < EXACT_FLOAT64 else torch.int64


@dataclass
class LayerCheck:
    """One layer's recovery: max |y_int - y_fake_quant| (absolute and relative to the output's range) and its
    psums' extent."""

    name: str
    max_abs_error: float
    relative_error: float
    output_range: float
    max_abs_psum: int
    bias_int_error: float


def captured_inputs(model: nn.Module, batch: Any) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each instrumented layer's (input, output) on ``batch``, noise off."""
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(module, inputs, output) -> None:  # the first call of each layer; copies (later ops may work in place)
        if module.name not in seen:
            seen[module.name] = (inputs[0].detach().clone(), output.detach().clone())

    hooks = [m.register_forward_hook(keep) for m in sim_layers(model)]
    try:
        with torch.no_grad(), noise_disabled(model):
            was = model.training
            model.eval()
            call_model(model, batch)
            model.train(was)
    finally:
        for h in hooks:
            h.remove()
    return seen


def verify_layers(model: nn.Module, batch: Any, layers: dict[str, LayerIntegers]) -> list[LayerCheck]:
    """Recover every exported layer's fake-quantized output on ``batch`` from its integers (int64 psums)."""
    captured = captured_inputs(model, batch)
    checks = []
    for name, li in layers.items():
        x, y_ref = (t.detach().cpu() for t in captured[name])
        psum = integer_psum(li, li.input_grid.quantize(x))
        y = dequantize(li, psum)
        err = (y - y_ref.float()).abs().max().item()
        span = (y_ref.max() - y_ref.min()).item() or 1.0
        bias_err = 0.0 if li.bias is None else \
            (li.bias_int.float() * li.psum_scale - li.bias).abs().max().item()
        checks.append(LayerCheck(name, err, err / span, span, int(psum.abs().max()), bias_err))
    return checks


def checks_frame(checks: list[LayerCheck]) -> pd.DataFrame:
    return pd.DataFrame([c.__dict__ for c in checks])


def _exportable(model: nn.Module, layers: Optional[dict[str, LayerIntegers]]) -> dict[str, LayerIntegers]:
    """``layers`` completed with every instrumented layer of ``model`` that can be exported."""
    layers = layers if layers is not None else {}
    for m in sim_layers(model):
        if m.name not in layers:
            try:
                layers[m.name] = export_layer(m)
            except ExportError:
                continue
    return layers


@contextlib.contextmanager
def integer_inference(model: nn.Module, layers: Optional[dict[str, LayerIntegers]] = None) -> Iterator[nn.Module]:
    """Inside the block every exported Conv / Linear layer computes y = psum · Δx · Δw + bias from integers
    (exact integer psums; noise off); other layers run as they are."""
    layers = _exportable(model, layers)
    patched = []
    for m in sim_layers(model):
        if m.name not in layers:
            continue
        li, dtype = layers[m.name], _exact_dtype(layers[m.name])

        def forward(x, li=li, dtype=dtype):
            return dequantize(li, integer_psum(li, li.input_grid.quantize(x.detach().cpu()), dtype)).to(x.device)

        m.forward = forward
        patched.append(m)
    try:
        with noise_disabled(model):
            yield model
    finally:
        for m in patched:
            del m.forward


@torch.no_grad()
def overflow_report(model: nn.Module, batches: Iterable, psum_bits: int = 16,
                    layers: Optional[dict[str, LayerIntegers]] = None, max_batches: int = 1) -> pd.DataFrame:
    """Per exported layer: the largest |psum| on ``max_batches`` batches, the psum bits it needs (two's
    complement) and how many psums a ``psum_bits`` accumulator would overflow."""
    layers = _exportable(model, layers)
    rows: dict[str, dict[str, Any]] = {}
    limit_hi, limit_lo = 2 ** (psum_bits - 1) - 1, -2 ** (psum_bits - 1)
    for i, batch in enumerate(batches):
        if i >= max_batches:
            break
        inputs, _ = split_batch(batch)
        captured = captured_inputs(model, inputs)
        for name, li in layers.items():
            psum = integer_psum(li, li.input_grid.quantize(captured[name][0].detach().cpu()))
            r = rows.setdefault(name, {"layer": name, "psums": 0, "overflows": 0, "max_abs_psum": 0})
            r["psums"] += psum.numel()
            r["overflows"] += int(((psum > limit_hi) | (psum < limit_lo)).sum())
            r["max_abs_psum"] = max(r["max_abs_psum"], int(psum.abs().max()))
    df = pd.DataFrame(list(rows.values()))
    if not df.empty:
        df["bits_needed"] = df["max_abs_psum"].map(lambda v: int(math.ceil(math.log2(v + 1))) + 1 if v else 1)
        df["psum_bits"] = psum_bits
        df["overflow_fraction"] = df["overflows"] / df["psums"]
    return df
