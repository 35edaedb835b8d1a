"""Partial sums of a matmul whose fan-in is split over arrays of N rows (tiles).

A product with fan-in D is computed as T = ceil(D / N) partial sums over consecutive slices of the
fan-in, in the order of the flattened weight row: for a conv, input channel x kernel tap within a
group (the im2col order of ``F.unfold``); for a Linear, the input features; for a matmul, the
contracted dimension. The last slice holds D - (T - 1) N products; the fan-in is zero-padded to T N
so that every function here is one ``einsum`` over a (tile, row) split of the fan-in, with no
Python loop over tiles. Every function returns the partial sums with the tile dimension first,
shape (T, *output), and the shot-noise norms of each tile (||x_t||, ||w_t||), broadcastable to it.
Summed over the tiles, the partial sums equal the untiled product up to float summation order.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

Norms = tuple[torch.Tensor, torch.Tensor]


def tile_count(fan_in: int, rows: int) -> int:
    """T = ceil(D / N)."""
    return max(1, math.ceil(fan_in / rows))


def tile_fan_ins(fan_in: int, rows: int) -> list[int]:
    """The products each tile sums: N, ..., N, D - (T - 1) N."""
    t = tile_count(fan_in, rows)
    return [rows] * (t - 1) + [fan_in - rows * (t - 1)]


def split_tiles(t: torch.Tensor, dim: int, rows: int) -> torch.Tensor:
    """``t`` with dimension ``dim`` zero-padded to T N and split into (T, N) (T at ``dim``, N after it)."""
    dim = dim % t.dim()
    size = t.shape[dim]
    tiles = tile_count(size, rows)
    pad = tiles * rows - size
    if pad:
        widths = [0, 0] * (t.dim() - 1 - dim) + [0, pad]
        t = F.pad(t, widths)
    return t.unflatten(dim, (tiles, rows))


def linear_psums(x: torch.Tensor, w: torch.Tensor, rows: int) -> tuple[torch.Tensor, Norms]:
    """x (..., D) times w (O, D)^T as partial sums (T, ..., O)."""
    xt, wt = split_tiles(x, -1, rows), split_tiles(w, -1, rows)  # (..., T, N), (O, T, N)
    p = torch.einsum("...tn,otn->t...o", xt, wt)

    def norms() -> Norms:
        xn = xt.norm(dim=-1).movedim(-1, 0).unsqueeze(-1)  # (T, ..., 1)
        wn = wt.norm(dim=-1).t().reshape(wt.shape[1], *(1,) * (x.dim() - 1), -1)  # (T, 1.., O)
        return xn, wn

    return p, norms


def matmul_psums(a: torch.Tensor, b: torch.Tensor, rows: int) -> tuple[torch.Tensor, Norms]:
    """a (..., M, K) @ b (..., K, P) as partial sums (T, ..., M, P); a 1-D operand is a row / column."""
    squeeze = [d for d, v in ((-2, a.dim() == 1), (-1, b.dim() == 1)) if v]
    a2 = a.unsqueeze(0) if a.dim() == 1 else a
    b2 = b.unsqueeze(-1) if b.dim() == 1 else b
    at, bt = split_tiles(a2, -1, rows), split_tiles(b2, -2, rows)  # (..., M, T, N), (..., T, N, P)
    p = torch.einsum("...mtn,...tnp->t...mp", at, bt)

    def norms() -> Norms:
        an = at.norm(dim=-1).movedim(-1, 0).unsqueeze(-1)  # (T, ..., M, 1)
        bn = bt.norm(dim=-2).movedim(-2, 0).unsqueeze(-2)  # (T, ..., 1, P)
        for d in squeeze:
            an, bn = an.squeeze(d), bn.squeeze(d)
        return an, bn

    for d in squeeze:
        p = p.squeeze(d)
    return p, norms


def einsum_psums(equation: str, a: torch.Tensor, b: torch.Tensor, rows: int) -> tuple[torch.Tensor, Norms]:
    """A two-operand einsum whose one summed index both operands carry, as partial sums (T, *output)."""
    inputs, out = equation.split("->")
    ia, ib = inputs.split(",")
    summed = [c for c in dict.fromkeys(ia + ib) if c not in out]
    if len(summed) != 1 or summed[0] not in ia or summed[0] not in ib or "." in equation:
        raise ValueError(f"einsum {equation!r}: tiles split one summed index that both operands carry")
    c = summed[0]
    free = [ch for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if ch not in equation]
    t, n = free[0], free[1]
    at, bt = split_tiles(a, ia.index(c), rows), split_tiles(b, ib.index(c), rows)
    ia2, ib2 = ia.replace(c, t + n), ib.replace(c, t + n)
    p = torch.einsum(f"{ia2},{ib2}->{t}{out}", at, bt)

    def norms() -> Norms:
        a2 = torch.einsum(f"{ia2},{ib2}->{t}{out}", at.pow(2), torch.ones_like(bt))
        b2 = torch.einsum(f"{ia2},{ib2}->{t}{out}", torch.ones_like(at), bt.pow(2))
        return a2.sqrt(), b2.sqrt()

    return p, norms


def conv_windows(c_group: int, taps: int, groups: int, rows: int, device) -> tuple[torch.Tensor, torch.Tensor,
                                                                                   torch.Tensor]:
    """How the tiles of a conv see its input: (channels, positions, mask).

    Tile t of a group sums the fan-in slice [t N, (t + 1) N) (order: input channel, kernel tap), which
    lies inside a window of W consecutive input channels starting at channel floor(t N / K). ``channels``
    (groups T W) indexes the input channel of every window row (C, one past the last, for a zero channel);
    ``positions`` (T, W K) the flattened fan-in index of every (window channel, tap) of a tile; ``mask``
    (T, W K) whether that position belongs to the tile."""
    fan_in = c_group * taps
    tiles = tile_count(fan_in, rows)
    t = torch.arange(tiles, device=device)
    first = t * rows // taps
    width = int(((torch.clamp((t + 1) * rows, max=fan_in) - 1) // taps - first).max()) + 1
    window = first[:, None] + torch.arange(width, device=device)  # (T, W) channel within the group
    positions = (window[:, :, None] * taps + torch.arange(taps, device=device)).flatten(1)  # (T, W K)
    mask = (positions >= t[:, None] * rows) & (positions < torch.clamp((t[:, None] + 1) * rows, max=fan_in))
    base = torch.arange(groups, device=device)[:, None, None] * c_group
    channels = torch.where(window < c_group, base + window, groups * c_group).flatten()  # (g T W)
    return channels, positions.clamp(max=fan_in - 1), mask


def conv_psums(x: torch.Tensor, w: torch.Tensor, stride: Sequence[int], padding, dilation: Sequence[int],
               groups: int, rows: int, windows: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
               ) -> tuple[torch.Tensor, Norms]:
    """A convolution (x already padded for non-zero padding modes) as partial sums (T, N_batch, C_out, *out).

    Every tile is one group of a single grouped convolution: its input is the window of input channels
    its fan-in slice touches (gathered once, ``conv_windows``), its kernel the weights of the slice (zero
    elsewhere in the window). The cost is about one convolution over the input, whatever T."""
    channels, positions, mask = windows
    tiles, span = mask.shape
    c_out, taps = w.shape[0], math.prod(w.shape[2:])
    if bool((channels == x.shape[1]).any()):  # a window reaches past the last channel: add a zero one
        x = torch.cat([x, x.new_zeros(x.shape[0], 1, *x.shape[2:])], 1)
    x_win = x[:, channels]  # (B, g T W, *in)
    w_flat = w.reshape(groups, 1, c_out // groups, -1)  # (g, 1, O/g, D)
    w_win = w_flat.expand(-1, tiles, -1, -1).gather(3, positions[None, :, None].expand(groups, -1, c_out // groups,
                                                                                    -1))
    w_win = (w_win * mask[None, :, None].to(w.dtype)).reshape(groups * tiles * (c_out // groups),
                                                              span // taps, *w.shape[2:])
    conv = F.conv1d if w.dim() == 3 else F.conv2d
    out = conv(x_win, w_win, None, stride, padding, dilation, groups * tiles)  # (B, g T O/g, *out)
    spatial = out.shape[2:]
    p = out.unflatten(1, (groups, tiles, -1)).transpose(1, 2).transpose(0, 1)  # (T, B, g, O/g, *out)
    p = p.reshape(tiles, x.shape[0], c_out, *spatial)

    def norms() -> Norms:
        ones = mask.to(x.dtype).repeat(groups, 1).reshape(groups * tiles, span // taps, *w.shape[2:])
        xn = conv(x_win.square(), ones, None, stride, padding, dilation, groups * tiles).clamp_min(0).sqrt()
        xn = xn.unflatten(1, (groups, tiles, 1)).transpose(1, 2).transpose(0, 1)  # (T, B, g, 1, *out)
        if groups == 1 or groups == c_out:  # broadcastable as it is
            xn = xn.reshape(tiles, x.shape[0], groups, *spatial)
        else:
            xn = xn.expand(-1, -1, -1, c_out // groups, *spatial).reshape(p.shape)
        wn = w_win.reshape(groups, tiles, c_out // groups, -1).norm(dim=-1).transpose(0, 1)
        return xn, wn.reshape(tiles, 1, c_out, *(1,) * len(spatial))

    return p, norms
