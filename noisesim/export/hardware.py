"""Test-bench text files for one convolution tile on an A x A systolic array (the classic course layout).

The array's rows take A input channels (tile ``itile``: channels itile·A ... itile·A + A - 1) and its
columns A output channels (tile ``otile``). For a K x K kernel, tap k = kh · K + kw:

* ``weight_itile{i}_otile{o}_kij{k}.txt``: A lines, one per input channel of the tile (channel 0
  first); each line the A weights of that channel for columns A-1 ... 0, each a ``weight_bits``
  two's-complement bit string (MSB first), concatenated.
* ``activation.txt``: one line per time step — the positions of the zero-padded input of one
  sample, row-major — each line the A inputs of rows A-1 ... 0, ``act_bits`` unsigned, MSB first.
* ``psum.txt``: one line per output position (row-major), the A psums of columns A-1 ... 0, each
  ``psum_bits`` two's complement: the tile's sum over its input channels and all K² taps.
* ``psum_{k}.txt``: the same for tap k alone (the partial sums the array accumulates tap by tap).
* ``psum_relu.txt``: max(psum, 0) of ``psum.txt``.

Every file starts with ``#`` comment lines (layer, tile, shapes, bit widths, scales) that
:func:`read_values` skips. Weights and activations always fit their bits. A psum that does not fit
``psum_bits`` follows ``overflow``: ``error`` (nothing is written), ``wrap`` (two's complement, as an
adder without saturation computes it) or ``saturate`` (clamped to the range); the header says which and
how many. :func:`noisesim.export.verify.overflow_report` counts the psums of whole layers. The layout needs unsigned inputs without a zero
point and symmetric weights (z_x = z_w = 0: post-ReLU activations, the default weight quantizer).
"""
from __future__ import annotations

from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F

from noisesim.export.integers import ExportError, LayerIntegers
from noisesim.io import atomic_write


OVERFLOW = ("error", "wrap", "saturate")


def bit_range(bits: int, signed: bool) -> tuple[int, int]:
    """The integers ``bits`` bits hold: [-2^(b-1), 2^(b-1) - 1] two's complement, or [0, 2^b - 1]."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def fit(values: np.ndarray, bits: int, signed: bool, overflow: str = "error") -> tuple[np.ndarray, int]:
    """(``values`` as a ``bits``-bit register holds them, how many did not fit): ``wrap`` keeps the low bits (two's
    complement), ``saturate`` clamps to the range, ``error`` raises ValueError when any does not fit."""
    if overflow not in OVERFLOW:
        raise ValueError(f"overflow must be one of {', '.join(OVERFLOW)}, got {overflow!r}")
    values = np.asarray(values, dtype=np.int64)
    lo, hi = bit_range(bits, signed)
    outside = int(((values < lo) | (values > hi)).sum())
    if outside and overflow == "error":
        raise ValueError(f"{outside} values in [{values.min()}, {values.max()}] do not fit {bits} "
                         f"{'signed' if signed else 'unsigned'} bits [{lo}, {hi}]")
    if overflow == "saturate":
        return np.clip(values, lo, hi), outside
    wrapped = values & ((1 << bits) - 1)
    return (np.where(wrapped > hi, wrapped - (1 << bits), wrapped) if signed else wrapped), outside


def to_bits(values: np.ndarray, bits: int, signed: bool) -> list[str]:
    """Each integer as a ``bits``-wide string, MSB first (two's complement when ``signed``); ValueError when one
    does not fit."""
    values, _ = fit(values, bits, signed)
    return [format(int(v) & ((1 << bits) - 1), f"0{bits}b") for v in values.reshape(-1)]


def from_bits(text: str, bits: int, signed: bool) -> int:
    v = int(text, 2)
    return v - (1 << bits) if signed and v >= 1 << (bits - 1) else v


def _write(path: Path, header: list[str], rows: np.ndarray, bits: int, signed: bool) -> Path:
    """One line per row of ``rows`` (values in column order), written last column first."""
    lines = [f"# {h}" for h in header]
    for row in rows:
        lines.append("".join(reversed(to_bits(row, bits, signed))))
    atomic_write(path, lambda f: f.write("\n".join(lines) + "\n"))
    return path


def read_values(path: str | Path, per_line: int, bits: int, signed: bool) -> np.ndarray:
    """Parse a file written here back into integers: (lines, per_line), column 0 first."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        if len(line) != per_line * bits:
            raise ValueError(f"{path}: a line of {len(line)} characters, expected {per_line} x {bits}")
        fields = [line[i * bits:(i + 1) * bits] for i in range(per_line)]
        rows.append([from_bits(f, bits, signed) for f in reversed(fields)])
    return np.array(rows, dtype=np.int64)


def tile_integers(li: LayerIntegers, x_int: torch.Tensor, array: int, itile: int, otile: int
                  ) -> dict[str, np.ndarray]:
    """The tile's integers: weights (K², A in, A out), padded input (positions, A), psums per tap and in all."""
    if li.kind != "conv" or li.weight.dim() != 4 or li.groups != 1:
        raise ExportError(f"{li.name}: hardware tiles need an ungrouped Conv2d")
    if int(li.input_grid.zero_point.abs().max()) or int(li.weight_grid.zero_point.abs().max()) or \
            li.input_grid.signed:
        raise ExportError(f"{li.name}: the array layout needs unsigned inputs and symmetric weights (zero points 0)")
    out_c, in_c, kh, kw = li.weight.shape
    ci, co = slice(itile * array, (itile + 1) * array), slice(otile * array, (otile + 1) * array)
    if (itile + 1) * array > in_c or (otile + 1) * array > out_c:
        raise ExportError(f"{li.name}: tile ({itile}, {otile}) of {array} x {array} lies outside its {in_c} input "
                          f"and {out_c} output channels")
    w = li.weight[co, ci]  # (A out, A in, kh, kw)
    x = F.pad(x_int[ci].to(torch.float64), (li.padding[1], li.padding[1], li.padding[0], li.padding[0]))
    taps = []
    for a in range(kh):
        for b in range(kw):
            k_w = torch.zeros_like(w)
            k_w[:, :, a, b] = w[:, :, a, b]
            taps.append(F.conv2d(x.unsqueeze(0), k_w.to(torch.float64), stride=li.stride,
                                 dilation=li.dilation)[0].round().to(torch.int64))
    weights = np.stack([w[:, :, a, b].t().numpy() for a in range(kh) for b in range(kw)])  # (K², A in, A out)
    psum_taps = np.stack([t.reshape(array, -1).t().numpy() for t in taps])  # (K², positions, A out)
    return {"weights": weights, "activations": x.round().to(torch.int64).reshape(array, -1).t().numpy(),
            "psum_taps": psum_taps, "psum": psum_taps.sum(0), "out_shape": tuple(int(v) for v in taps[0].shape[1:])}


def write_tile(li: LayerIntegers, x: torch.Tensor, out_dir: str | Path, array: int = 8, itile: int = 0,
               otile: int = 0, psum_bits: int = 16, sample: int = 0, overflow: str = "error") -> list[Path]:
    """Write the tile's files for input ``x`` (the layer's float input, one batch; ``sample`` picks one). Psums that
    do not fit ``psum_bits`` follow ``overflow`` (see the module docstring); with ``error`` nothing is written."""
    x_int = li.input_grid.quantize(x[sample].detach().cpu())
    t = tile_integers(li, x_int, array, itile, otile)
    psums = {"psum": t["psum"], "psum_relu": np.maximum(t["psum"], 0),
             **{f"psum_{k}": p for k, p in enumerate(t["psum_taps"])}}
    fitted, outside = {}, 0
    for name, p in psums.items():
        try:
            fitted[name], n = fit(p, psum_bits, True, overflow)
        except ValueError as e:
            raise ExportError(f"{li.name}: {name}.txt: {e}; raise --psum_bits or pass --psum_overflow wrap or "
                              "saturate") from None
        outside += n
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    head = [f"layer {li.name}: {tuple(li.weight.shape)} weights, stride {tuple(li.stride)}, padding "
            f"{tuple(li.padding)}; array {array}x{array}, input-channel tile {itile}, output-channel tile {otile}",
            f"input scale {float(li.input_grid.scale.reshape(-1)[0]):.8g}; weight scale(s) "
            f"{[round(float(s), 8) for s in li.weight_scale[otile * array:(otile + 1) * array]]}"]
    wb, xb = li.weight_grid.bits, li.input_grid.bits
    kk = t["weights"].shape[0]
    paths = [_write(out / f"weight_itile{itile}_otile{otile}_kij{k}.txt",
                    head + [f"tap k={k}: one line per input channel (0 first); columns {array - 1}..0, "
                            f"{wb}-bit two's complement"], t["weights"][k], wb, True) for k in range(kk)]
    paths.append(_write(out / "activation.txt", head + [
        f"{t['activations'].shape[0]} time steps (padded input positions, row-major); rows {array - 1}..0, "
        f"{xb}-bit unsigned"], t["activations"], xb, False))
    psum_head = head + [f"{t['psum'].shape[0]} output positions {t['out_shape']} (row-major); columns "
                        f"{array - 1}..0, {psum_bits}-bit two's complement; psums that do not fit: {overflow} "
                        f"({outside} in this tile's files)"]
    paths += [_write(out / f"{name}.txt", psum_head + ([f"tap k={name[5:]} alone"] if name[5:].isdigit() else []),
                     fitted[name], psum_bits, True) for name in psums]
    return paths
