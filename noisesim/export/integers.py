"""The exact integers behind a prepared model's fake-quantized Conv and Linear layers.

Weights: w_int = clamp(round(w / Δw) + z_w, q_min, q_max), signed symmetric by default
(z_w = 0, q = ±(2^(b-1) - 1)), Δw per tensor or per output channel. Inputs (activations):
x_int = clamp(round(x / Δx) + z_x, q_min, q_max) — unsigned [0, 2^b - 1] with z_x = 0 after a
ReLU (PACT: Δx = α / (2^b - 1)); asymmetric inputs carry their zero point z_x. Rounding is done as
the fake quantizer does it (x · (1/Δ), then round half to even), so the integers are the ones the
fake-quantized forward used. Partial sums accumulate in int64,

    psum = Σ (x_int - z_x) · (w_int - z_w),      y = psum · Δx · Δw + bias,

which equals the fake-quantized layer's output up to float rounding. ``bias_int`` = round(bias /
(Δx · Δw)) is the bias on the psum grid for hardware that adds it as an integer (its rounding
error, at most Δx·Δw/2 per output, is reported separately).

A layer on arrays of N rows (``tile_rows``) accumulates one psum per tile, over consecutive slices of N
products of its fan-in (input channel × kernel tap within a group, as ``noisesim.nn.tiles``); with an ADC
of b bits and step s (``adc_scale``, output units) each tile's psum becomes a code and the output is

    code_t = clamp(round(psum_t · Δx · Δw / s), -(2^(b-1) - 1), 2^(b-1) - 1),    y = s · Σ_t code_t + bias.

``export_model`` collects every such layer; ``save_export`` writes one ``integers.npz`` (arrays
named ``<layer>/<field>``) and a ``manifest.json`` (per layer: kind, shapes, bits, zero points,
stride / padding / dilation / groups, and which arrays hold what); ``load_export`` reads them back.
"""
from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from noisesim.io import atomic_write
from noisesim.nn.base import SimLayer
from noisesim.nn.conv import SimConv
from noisesim.nn.linear import SimLinear
from noisesim.nn.prepare import sim_layers
from noisesim.quant.fake_quant import FakeQuantize
from noisesim.quant.functional import qparams


class ExportError(ValueError):
    """A layer that cannot be exported as integers (a one-line reason)."""


@dataclasses.dataclass
class Grid:
    """One quantizer's integer grid: scale Δ (one value, or one per channel), zero point, level bounds, bits."""

    scale: torch.Tensor
    zero_point: torch.Tensor
    qmin: int
    qmax: int
    bits: int
    signed: bool

    @classmethod
    def of(cls, q: FakeQuantize, name: str) -> "Grid":
        if not q.enabled:
            raise ExportError(f"{name}: its quantizer is off (float); export needs quantized weights and inputs")
        if q.cfg.dynamic:
            raise ExportError(f"{name}: per-token dynamic ranges have no fixed scale to export")
        bits = q.bits()
        bits = float(torch.as_tensor(bits).float().mean()) if torch.is_tensor(bits) else float(bits)
        if torch.is_tensor(q.bits()) and torch.as_tensor(q.bits()).unique().numel() > 1 or not bits.is_integer():
            raise ExportError(f"{name}: bit-width {bits:g} is not one whole number of bits")
        if not bool(q.calibrated):
            raise ExportError(f"{name}: not calibrated (run noisesim.calibrate first)")
        scale, zp, qmin, qmax = qparams(q.lo.detach(), q.hi.detach(), int(bits), q.cfg.symmetric)
        return cls(scale.float(), zp.round().to(torch.int64), int(qmin), int(qmax), int(bits), qmin < 0)

    def quantize(self, x: torch.Tensor, ch_axis: Optional[int] = None) -> torch.Tensor:
        """x_int = clamp(round(x · (1/Δ)) + z, q_min, q_max) as int64 (per-channel along ``ch_axis``)."""
        scale, zp = self.scale, self.zero_point
        if scale.numel() > 1:
            shape = [1] * x.dim()
            shape[ch_axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        q = torch.mul(x.float(), 1.0 / scale).round() + zp.to(torch.float32)
        return q.clamp(self.qmin, self.qmax).to(torch.int64)


@dataclasses.dataclass
class LayerIntegers:
    """One layer's integers and how to use them (see the module docstring)."""

    name: str
    kind: str  # conv or linear
    weight: torch.Tensor  # int64, the layer's weight shape
    weight_grid: Grid
    input_grid: Grid
    bias: Optional[torch.Tensor]  # float
    stride: tuple = ()
    padding: tuple = ()
    dilation: tuple = ()
    groups: int = 1
    tile_rows: Optional[int] = None  # N rows per array (None: one psum over the whole fan-in)
    adc_scale: Optional[float] = None  # the ADC's step s in output units (None: no ADC)
    adc_bits: Optional[int] = None

    @property
    def adc_levels(self) -> int:
        """q_max of the ADC: codes lie in [-q_max, q_max]."""
        return 2 ** (self.adc_bits - 1) - 1

    @property
    def weight_scale(self) -> torch.Tensor:
        """Δw per output channel (a per-tensor scale repeated)."""
        return self.weight_grid.scale.reshape(-1).expand(self.weight.shape[0])

    @property
    def psum_scale(self) -> torch.Tensor:
        """Δx · Δw per output channel: one psum step in output units."""
        return self.input_grid.scale.reshape(()) * self.weight_scale

    @property
    def bias_int(self) -> Optional[torch.Tensor]:
        return None if self.bias is None else torch.round(self.bias / self.psum_scale).to(torch.int64)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"weight_int": self.weight.numpy().astype(np.int32),
               "weight_scale": self.weight_grid.scale.reshape(-1).numpy().astype(np.float32),
               "weight_zero_point": self.weight_grid.zero_point.reshape(-1).numpy().astype(np.int32),
               "input_scale": self.input_grid.scale.reshape(-1).numpy().astype(np.float32),
               "input_zero_point": self.input_grid.zero_point.reshape(-1).numpy().astype(np.int32)}
        if self.bias is not None:
            out["bias"] = self.bias.numpy().astype(np.float32)
            out["bias_int"] = self.bias_int.numpy().astype(np.int64)
        if self.adc_scale is not None:
            out["adc_scale"] = np.array([self.adc_scale], dtype=np.float32)
        return out

    def manifest(self) -> dict[str, Any]:
        grid = lambda g: {"bits": g.bits, "signed": g.signed, "qmin": g.qmin, "qmax": g.qmax,  # noqa: E731
                          "per_channel": g.scale.numel() > 1}
        return {"kind": self.kind, "weight_shape": list(self.weight.shape), "weight": grid(self.weight_grid),
                "input": grid(self.input_grid), "bias": self.bias is not None, "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation), "groups": self.groups,
                "tile_rows": self.tile_rows,
                "adc": None if self.adc_bits is None else {"bits": self.adc_bits, "qmin": -self.adc_levels,
                                                           "qmax": self.adc_levels, "signed": True},
                "arrays": sorted(f"{self.name}/{k}" for k in self.arrays())}


@torch.no_grad()
def export_layer(layer: SimLayer) -> LayerIntegers:
    """The integers of one instrumented Conv or Linear layer (quantized weights and inputs, calibrated)."""
    if not isinstance(layer, (SimConv, SimLinear)):
        raise ExportError(f"{layer.name}: only Conv and Linear layers carry weights to export")
    wg, xg = Grid.of(layer.weight_quant, f"{layer.name} weights"), Grid.of(layer.act_quant, f"{layer.name} inputs")
    if xg.scale.numel() != 1:
        raise ExportError(f"{layer.name}: inputs need one scale per tensor")
    w = wg.quantize(layer.weight.detach().cpu(), ch_axis=0)
    bias = None if layer.bias is None else layer.bias.detach().cpu().float()
    conv = dict(stride=tuple(layer.stride), padding=tuple(layer.padding), dilation=tuple(layer.dilation),
                groups=layer.groups) if isinstance(layer, SimConv) else {}
    if isinstance(layer, SimConv) and (isinstance(layer.padding, str) or layer.padding_mode != "zeros"):
        raise ExportError(f"{layer.name}: padding {layer.padding!r} ({layer.padding_mode}) is not zero padding "
                          "by a number of pixels")
    adc = {}
    if layer.adc is not None:
        grid = Grid.of(layer.adc.quant, f"{layer.name} ADC")
        adc = dict(adc_scale=float(grid.scale.reshape(())), adc_bits=grid.bits)
    return LayerIntegers(layer.name, "conv" if isinstance(layer, SimConv) else "linear", w, wg, xg, bias, **conv,
                         tile_rows=layer.tile_rows if layer.tile_rows and layer.tile_rows < layer.fan_in else None,
                         **adc)


def export_model(model: nn.Module, skip_unexportable: bool = True) -> tuple[dict[str, LayerIntegers], dict[str, str]]:
    """(exported layers by name, layers left out with the reason) of a prepared, calibrated model."""
    layers, skipped = {}, {}
    for layer in sim_layers(model):
        try:
            layers[layer.name] = export_layer(layer)
        except ExportError as e:
            if not skip_unexportable:
                raise
            skipped[layer.name] = str(e)
    return layers, skipped


def save_export(layers: dict[str, LayerIntegers], out_dir: str | Path, extra: Optional[dict] = None) -> list[Path]:
    """``integers.npz`` (arrays ``<layer>/<field>``) and ``manifest.json``, written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {f"{name}/{k}": v for name, li in layers.items() for k, v in li.arrays().items()}
    atomic_write(out / "integers.npz", lambda f: np.savez_compressed(f, **arrays), binary=True)
    manifest = {"conventions": "x_int = clamp(round(x/input_scale) + input_zero_point); psum = sum((x_int - "
                               "input_zero_point) * (weight_int - weight_zero_point)) in int64; y = psum * input_scale"
                               " * weight_scale + bias; with tile_rows N, one psum per slice of N products of the "
                               "fan-in (input channel x kernel tap within a group); with an adc, code = clamp(round("
                               "psum * input_scale * weight_scale / adc_scale), qmin, qmax) per tile and y = adc_scale"
                               " * sum(codes) + bias", "layers": {n: li.manifest() for n, li in layers.items()},
                **(extra or {})}
    atomic_write(out / "manifest.json", lambda f: f.write(json.dumps(manifest, indent=1, default=str)))
    return [out / "integers.npz", out / "manifest.json"]


def load_export(out_dir: str | Path) -> dict[str, LayerIntegers]:
    """The layers ``save_export`` wrote to ``out_dir``; a missing, corrupt or inconsistent file is an ExportError
    naming it."""
    out = Path(out_dir)
    try:
        manifest = json.loads((out / "manifest.json").read_text())["layers"]
        with np.load(out / "integers.npz") as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ExportError(f"{out}: not a readable export (manifest.json and integers.npz; {type(e).__name__})") \
            from None
    layers = {}
    for name, m in manifest.items():
        try:
            a = {k.split("/", 1)[1]: arrays[k] for k in m["arrays"]}

            def grid(kind: str, scale: np.ndarray, zero: np.ndarray) -> Grid:
                g = m[kind]
                return Grid(torch.from_numpy(scale).float(), torch.from_numpy(zero).to(torch.int64), g["qmin"],
                            g["qmax"], g["bits"], g["signed"])

            weight = torch.from_numpy(a["weight_int"]).to(torch.int64)
            if list(weight.shape) != m["weight_shape"]:
                raise ValueError(f"weight_int of shape {list(weight.shape)}, the manifest says {m['weight_shape']}")
            conv = dict(stride=tuple(m["stride"]), padding=tuple(m["padding"]), dilation=tuple(m["dilation"]),
                        groups=m["groups"]) if m["kind"] == "conv" else {}
            adc = {} if not m.get("adc") else dict(adc_scale=float(a["adc_scale"][0]), adc_bits=m["adc"]["bits"])
            layers[name] = LayerIntegers(
                name, m["kind"], weight, grid("weight", a["weight_scale"], a["weight_zero_point"]),
                grid("input", a["input_scale"], a["input_zero_point"]),
                torch.from_numpy(a["bias"]).float() if m["bias"] else None, **conv, tile_rows=m.get("tile_rows"),
                **adc)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ExportError(f"{out}: layer {name}: the manifest and integers.npz disagree ({type(e).__name__}: "
                              f"{e})") from None
    return layers
