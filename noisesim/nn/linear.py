"""SimLinear: an instrumented Linear layer. Fan-in D = in_features."""
from __future__ import annotations

import torch
from torch import nn

from noisesim.config import SimConfig
from noisesim.nn.base import SimLayer
from noisesim.nn.tiles import linear_psums


class SimLinear(SimLayer):
    kind = "linear"

    def __init__(self, linear: nn.Linear, cfg: SimConfig, name: str = "", layer_index: int = 0):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().clone(), requires_grad=linear.weight.requires_grad)
        self.bias = (None if linear.bias is None else
                     nn.Parameter(linear.bias.detach().clone(), requires_grad=linear.bias.requires_grad))
        self._init_sim(cfg, name, self.in_features, self.out_features, -1, layer_index, self.weight)

    @classmethod
    def from_float(cls, linear: nn.Linear, cfg: SimConfig, name: str = "", layer_index: int = 0) -> "SimLinear":
        return cls(linear, cfg, name, layer_index)

    def to_float(self) -> nn.Linear:
        lin = nn.Linear(self.in_features, self.out_features, self.bias is not None,
                        device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            lin.weight.copy_(self.weight)
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = self.quantize_input(x)
        # ||w_row|| per output feature lies along the last dim of the output already
        w, ops = self.perturbed_weight(lambda w_norm: (xq.norm(dim=-1, keepdim=True), w_norm))
        if self.tiled:
            return self.finish_tiles(lambda rows: linear_psums(xq, w, rows), lambda: nn.functional.linear(xq, w), ops,
                                     self.bias)
        return self.finish(nn.functional.linear(xq, w, self.bias), ops)

    def extra_repr(self) -> str:
        return f"{self.name or 'linear'}: {self.in_features}->{self.out_features} D={self.fan_in}"
