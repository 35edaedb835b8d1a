"""SimConv: an instrumented Conv1d / Conv2d (any stride, padding, dilation, groups).

Fan-in D = k_h * k_w * C_in / groups (``fan_in_groups=False``: the noise takes k_h * k_w * C_in, the
reference implementation's convention; MACs are counted with the true D either way; tiles take each tile's
true fan-in). For shot noise, ||x_patch|| of every output is
computed exactly: x^2 is summed over the input channels of each group and convolved with
a ones kernel of the same geometry (stride, padding, dilation), then square-rooted.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from noisesim.config import SimConfig
from noisesim.nn.base import SimLayer
from noisesim.nn.tiles import conv_psums, conv_windows

_CONV_FN = {1: F.conv1d, 2: F.conv2d}
_FLOAT_CLS = {1: nn.Conv1d, 2: nn.Conv2d}


class SimConv(SimLayer):
    kind = "conv"
    dynamic_inputs = False

    def __init__(self, conv: nn.Conv1d | nn.Conv2d, cfg: SimConfig, name: str = "", layer_index: int = 0):
        super().__init__()
        self.dims = 1 if isinstance(conv, nn.Conv1d) else 2
        for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                     "groups", "padding_mode"):
            setattr(self, attr, getattr(conv, attr))
        self._reversed_padding_repeated_twice = conv._reversed_padding_repeated_twice
        self.weight = nn.Parameter(conv.weight.detach().clone(), requires_grad=conv.weight.requires_grad)
        self.bias = (None if conv.bias is None else
                     nn.Parameter(conv.bias.detach().clone(), requires_grad=conv.bias.requires_grad))
        fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
        self._init_sim(cfg, name, fan_in, self.out_channels, -(self.dims + 1), layer_index, self.weight,
                       noise_fan_in=fan_in if cfg.fan_in_groups else fan_in * self.groups)
        ones = torch.ones((self.groups, 1) + tuple(self.kernel_size), dtype=self.weight.dtype,
                          device=self.weight.device)
        self.register_buffer("patch_kernel", ones, persistent=False)
        self._windows = None  # the tiles' input windows (noisesim.nn.tiles.conv_windows), per (rows, device)

    @classmethod
    def from_float(cls, conv: nn.Module, cfg: SimConfig, name: str = "", layer_index: int = 0) -> "SimConv":
        return cls(conv, cfg, name, layer_index)

    def to_float(self) -> nn.Module:
        """A plain Conv1d/Conv2d with this layer's (BN-folded, unquantized) weights."""
        conv = _FLOAT_CLS[self.dims](self.in_channels, self.out_channels, self.kernel_size, self.stride,
                                     self.padding, self.dilation, self.groups, self.bias is not None,
                                     self.padding_mode, device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.weight)
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, object]:
        if self.padding_mode == "zeros":
            return x, self.padding
        return F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode), 0

    def _conv(self, x: torch.Tensor, w: torch.Tensor, b, groups: int) -> torch.Tensor:
        x, padding = self._pad(x)
        return _CONV_FN[self.dims](x, w, b, self.stride, padding, self.dilation, groups)

    def patch_norm(self, xq: torch.Tensor) -> torch.Tensor:
        """||x_patch|| per output position and group: shape (N, groups, *out_spatial)."""
        n, g = xq.shape[0], self.groups
        x2 = xq.pow(2).reshape(n, g, -1, *xq.shape[2:]).sum(2)
        return self._conv(x2, self.patch_kernel.to(x2.dtype), None, g).clamp_min(0).sqrt()

    def norms(self, xq: torch.Tensor, w_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(||x_patch||, ||w_row||), each broadcastable to the output."""
        xn = self.patch_norm(xq)
        per_group = self.out_channels // self.groups
        if per_group > 1 and self.groups > 1:
            xn = xn.repeat_interleave(per_group, dim=1)
        return xn, w_norm.reshape(1, -1, *(1,) * self.dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = self.quantize_input(x)
        w, ops = self.perturbed_weight(lambda w_norm: self.norms(xq, w_norm))
        if self.tiled:
            return self.finish_tiles(lambda rows: self._psums(xq, w, rows),
                                     lambda: self._conv(xq, w, None, self.groups), ops, self.bias, -(self.dims + 1))
        return self.finish(self._conv(xq, w, self.bias, self.groups), ops)

    def _psums(self, xq: torch.Tensor, w: torch.Tensor, rows: int):
        key = (rows, w.device)
        if self._windows is None or self._windows[0] != key:
            self._windows = (key, conv_windows(self.in_channels // self.groups, math.prod(self.kernel_size),
                                               self.groups, rows, w.device))
        x, padding = self._pad(xq)
        return conv_psums(x, w, self.stride, padding, self.dilation, self.groups, rows, self._windows[1])

    def extra_repr(self) -> str:
        return (f"{self.name or 'conv'}: {self.in_channels}->{self.out_channels} k={tuple(self.kernel_size)} "
                f"s={tuple(self.stride)} g={self.groups} D={self.fan_in}")
