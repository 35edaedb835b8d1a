"""Matrix products of two activations (attention scores and attention-weighted values).

``Matmul`` and ``Einsum`` are float modules a model uses in place of ``torch.matmul`` /
``torch.einsum`` so that ``prepare`` can instrument them; ``SimMatmul`` / ``SimEinsum``
quantize both operands with activation quantizers and add output noise with fan-in D =
the number of products summed into each output (read at every forward, since it may be the sequence
length): for a matmul the contracted size; for an einsum the product of the sizes of every index
absent from the output, whether both operands carry it or one does (``ij,jk->i`` sums J*K products
per output; torch sums b over k before multiplying, so FlopCounterMode counts I*J MACs there: the
simulation follows the equation, rewrite it as ``ij,j->i`` for hardware that sums first).
Thermal scale: R_a * R_b. Shot scale: (||a_row||, ||b_col||); for an einsum they are computed
as sqrt(einsum(a^2, 1)) and sqrt(einsum(1, b^2)), which sums the squares over exactly the
contracted indices. A weight-acting noise model has no weights here and leaves the product exact.
Energies are per layer (the output width of a matmul is not a fixed channel count). Tiles split the
contracted dimension (an einsum: its one summed index that both operands carry).
"""
from __future__ import annotations

import abc
import dataclasses
import math

import torch
from torch import nn

from noisesim.config import SimConfig
from noisesim.nn.base import SimLayer, quantizer_bound
from noisesim.nn.tiles import einsum_psums, matmul_psums
from noisesim.noise import Operands
from noisesim.quant.fake_quant import FakeQuantize


class Matmul(nn.Module):
    """``torch.matmul(a, b)`` as a module."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


class Einsum(nn.Module):
    """``torch.einsum(equation, a, b)`` as a module (two operands)."""

    def __init__(self, equation: str):
        super().__init__()
        self.equation = equation.replace(" ", "")

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.einsum(self.equation, a, b)

    def extra_repr(self) -> str:
        return repr(self.equation)


def _products_per_output(equation: str, a: torch.Tensor, b: torch.Tensor) -> int:
    """The product of the sizes of every index of ``equation`` that is absent from its output."""
    inputs, out = equation.split("->")
    sizes = {}
    for idx, t in zip(inputs.split(","), (a, b)):
        sizes.update((c, n) for c, n in zip(idx, t.shape))
    return math.prod(n for c, n in sizes.items() if c not in out)


class _SimProduct(SimLayer, abc.ABC):
    def __init__(self, cfg: SimConfig, name: str, layer_index: int):
        super().__init__()
        cfg = dataclasses.replace(cfg, noise_per_channel=False)
        self._init_sim(cfg, name, 1, 1, -1, layer_index)
        self.act_quant_b = FakeQuantize(cfg.act_quant(), token_axis=-2)  # dynamic: one range per output column
        self.in_elems_b = 0

    def activation_quantizers(self) -> list[FakeQuantize]:
        return [self.act_quant, self.act_quant_b]

    @abc.abstractmethod
    def product(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The float product of the (quantized) operands."""

    @abc.abstractmethod
    def fan_in_of(self, a: torch.Tensor, b: torch.Tensor) -> int:
        """D: the number of products summed into each output."""

    @abc.abstractmethod
    def norms(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(||a_row||, ||b_col||), each broadcastable to the output."""

    @abc.abstractmethod
    def psums(self, a: torch.Tensor, b: torch.Tensor, rows: int):
        """The product as partial sums over tiles of ``rows`` (``noisesim.nn.tiles``)."""

    def operand_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        return quantizer_bound(self.act_quant), quantizer_bound(self.act_quant_b)

    def input_conversions(self) -> int:
        return self.in_elems + self.in_elems_b

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        aq, bq = self.quantize_input(a), self.act_quant_b(b)
        self.in_elems_b = bq[0].numel() if bq.dim() > 1 else bq.numel()
        self.fan_in = self.fan_in_of(aq, bq)
        ops = Operands(self.fan_in, lambda: (self.act_quant.full_range(), self.act_quant_b.full_range()),
                       lambda: self.norms(aq, bq))
        if self.tiled:
            return self.finish_tiles(lambda rows: self.psums(aq, bq, rows), lambda: self.product(aq, bq), ops)
        return self.finish(self.product(aq, bq), ops)


class SimMatmul(_SimProduct):
    kind = "matmul"

    @classmethod
    def from_float(cls, mod: Matmul, cfg: SimConfig, name: str = "", layer_index: int = 0) -> "SimMatmul":
        return cls(cfg, name, layer_index)

    def to_float(self) -> Matmul:
        return Matmul()

    def product(self, a, b):
        return torch.matmul(a, b)

    def fan_in_of(self, a, b):
        return a.shape[-1]

    def norms(self, a, b):
        b_norm = b.norm(dim=-2, keepdim=True) if b.dim() > 1 else b.norm()
        return a.norm(dim=-1, keepdim=True), b_norm

    def psums(self, a, b, rows):
        return matmul_psums(a, b, rows)

    def extra_repr(self) -> str:
        return f"{self.name or 'matmul'}: a @ b"


class SimEinsum(_SimProduct):
    kind = "matmul"

    def __init__(self, equation: str, cfg: SimConfig, name: str = "", layer_index: int = 0):
        super().__init__(cfg, name, layer_index)
        self.equation = equation if "->" in equation else _implicit_output(equation)

    @classmethod
    def from_float(cls, mod: Einsum, cfg: SimConfig, name: str = "", layer_index: int = 0) -> "SimEinsum":
        return cls(mod.equation, cfg, name, layer_index)

    def to_float(self) -> Einsum:
        return Einsum(self.equation)

    def product(self, a, b):
        return torch.einsum(self.equation, a, b)

    def fan_in_of(self, a, b):
        return _products_per_output(self.equation, a, b)

    def norms(self, a, b):
        a2 = torch.einsum(self.equation, a.pow(2), torch.ones_like(b))
        b2 = torch.einsum(self.equation, torch.ones_like(a), b.pow(2))
        return a2.sqrt(), b2.sqrt()

    def psums(self, a, b, rows):
        try:
            return einsum_psums(self.equation, a, b, rows)
        except ValueError as e:
            raise ValueError(f"layer {self.name}: {e}; leave it on one array with overrides "
                             f"{{\"{self.name}\": {{\"tile_rows\": null, \"adc_bits\": null}}}}") from None

    def extra_repr(self) -> str:
        return f"{self.name or 'einsum'}: {self.equation}"


def _implicit_output(equation: str) -> str:
    """Explicit form of an implicit einsum: output = indices appearing once, sorted."""
    letters = equation.replace(",", "")
    out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return f"{equation}->{out}"
