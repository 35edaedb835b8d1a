"""Machinery shared by every instrumented matmul layer.

Forward of a layer with weights:  x -> act_quant -> matmul with the quantized (and, with a
weight-acting noise model, perturbed) weights -> + bias -> + output noise. Noise is added to
the pre-activation output, after BN folding and before the next layer's input quantizer. The
layer never asks which noise model it carries: it hands the model its :class:`Operands`
(ranges, norms, fan-in) and the model takes what its formula needs. While weights and the
weight quantizer are frozen, the quantized weights, their per-channel ranges R_w and row norms
||w_row|| are cached.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from noisesim.config import SimConfig
from noisesim.nn.adc import ADC
from noisesim.nn.tiles import Norms, tile_count, tile_fan_ins
from noisesim.noise import NoiseModel, Operands, make_noise
from noisesim.ops import along_dim
from noisesim.quant.fake_quant import FakeQuantize


class SimLayer(nn.Module):
    """Base of SimConv, SimLinear, SimMatmul. Subclasses set ``kind`` and implement forward."""

    kind = "layer"
    dynamic_inputs = True  # inputs may take per-token ranges (act_dynamic); conv inputs may not

    def _init_sim(self, cfg: SimConfig, name: str, fan_in: int, out_channels: int, out_channel_dim: int,
                  layer_index: int, weight: Optional[torch.Tensor] = None, noise_fan_in: Optional[int] = None) -> None:
        """``fan_in``: the products summed into each output (MACs = fan_in x outputs); ``noise_fan_in``: the D the
        noise formulas use, when a convention makes it differ (default: ``fan_in``)."""
        self.name, self.fan_in, self.out_channels = name, fan_in, out_channels
        self.noise_fan_in = noise_fan_in or fan_in
        self.sim_config = cfg
        self.macs = 0  # per sample, counted at the last forward
        self.out_elems = 0
        self.in_elems = 0  # input elements per sample, at the last forward
        self.act_quant = FakeQuantize(cfg.act_quant(self.dynamic_inputs))
        self.weight_quant = None
        if weight is not None:
            self.weight_quant = FakeQuantize(cfg.weight_quant(), channels=out_channels, ch_axis=0)
            self.calibrate_weight_quant(weight)
        self.noise: Optional[NoiseModel] = make_noise(cfg.noise(name or f"#{layer_index}"), self.noise_fan_in, out_channels,
                                                      out_channel_dim, has_weights=weight is not None)
        self._cache_key: Optional[tuple] = None
        self._cache: Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None
        hw = cfg.hardware()
        self.tile_rows = hw.tile_rows
        self.adc = ADC(hw) if hw.adc_bits is not None else None
        self.tiles = 1  # partial sums per output, at the last forward
        self.conversions = 0  # ADC conversions per sample (tiles x outputs) at the last forward
        self._fan_in_tiles: Optional[tuple] = None
        self._full_scale_key: Optional[tuple] = None

    @property
    def tiled(self) -> bool:
        """Whether the forward computes partial sums (tiles or an ADC) instead of the one plain product."""
        return self.tile_rows is not None or self.adc is not None

    @torch.no_grad()
    def calibrate_weight_quant(self, weight: torch.Tensor) -> None:
        """Weights are known up front: their quantizer is calibrated on them directly."""
        q = self.weight_quant
        if q.enabled:
            q.start_calibration()
            q(weight)
            q.stop_calibration()

    def activation_quantizers(self) -> list[FakeQuantize]:
        """The quantizers of this layer's activation inputs (calibrated on data)."""
        return [self.act_quant]

    def quantize_input(self, x: torch.Tensor, quantizer: Optional[FakeQuantize] = None) -> torch.Tensor:
        """Fake-quantize an input (default: ``act_quant``), counting its elements per sample."""
        self.in_elems = x[0].numel() if x.dim() > 1 else x.numel()
        return (quantizer or self.act_quant)(x)

    # -- weights --------------------------------------------------------------
    def _weight_stats(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(quantized weight, R_w per output channel, ||w_row|| per output channel)."""
        q = self.weight_quant
        wq = q(w)
        r_w = q.full_range().expand(self.out_channels) if q.enabled else \
            (w.flatten(1).amax(1) - w.flatten(1).amin(1))
        return wq, r_w, wq.flatten(1).norm(dim=1)

    def weight_stats(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(quantized weight, R_w, ||w_row||), cached while the weights and their quantizer are frozen. While
        the weights train (quantization-aware training) a quantizer without a learnable range re-takes its
        range from the current weights at every forward."""
        w = self.weight
        trainable = torch.is_grad_enabled() and (w.requires_grad or self.weight_quant.learnable)
        if trainable:
            if w.requires_grad and not self.weight_quant.learnable:
                self.calibrate_weight_quant(w.detach())
            return self._weight_stats(w)
        if torch.compiler.is_compiling() or self.weight_quant.export_form:  # a compiled graph fuses these ops (a
            return self._weight_stats(w)  # cache key would be a guard per layer); an exported one quantizes weights
        key = (w._version, w.data_ptr(), w.dtype, w.device, self.weight_quant.state_key())
        if key != self._cache_key:
            with torch.no_grad():
                self._cache = self._weight_stats(w)
            self._cache_key = key
        return self._cache

    # -- noise ----------------------------------------------------------------
    def perturbed_weight(self, norms: Optional[Callable[[torch.Tensor], tuple]] = None
                         ) -> tuple[torch.Tensor, Operands]:
        """The weights the matmul uses (quantized, plus noise when the noise model acts on weights) and
        the :class:`Operands` of this forward; ``norms(||w_row||)`` gives the output-broadcastable norms."""
        wq, r_w, w_norm = self.weight_stats()
        key = None  # sigma is reused only outside autograd, and a compiled graph computes it in its fused kernels
        if not (torch.is_grad_enabled() or torch.compiler.is_compiling()):
            act_key = self.act_quant.state_key()
            key = None if act_key is None else (act_key, self._cache_key)
        ops = Operands(self.noise_fan_in, lambda: (self.act_quant.full_range(), r_w),
                       lambda: norms(w_norm) if norms is not None else _no_norms(self.name), key=key)
        n = self.noise
        if n is None or n.acts_on == "output":
            return wq, ops
        return (n(wq, ops) if n.acts_on == "weight" else n.perturb_weight(wq, ops)), ops

    def finish(self, y: torch.Tensor, ops: Operands) -> torch.Tensor:
        """Count MACs and add the output noise (if the noise model acts on outputs) to the fresh output ``y``."""
        self._count_outputs(y)
        n = self.noise
        return n(y, ops, inplace=True) if n is not None and n.acts_on in ("output", "both") else y

    def _count_outputs(self, y: torch.Tensor) -> None:
        """Output elements and MACs per sample, from the output ``y`` of this forward."""
        self.out_elems = y[0].numel() if y.dim() > 1 else y.numel()
        self.macs = self.fan_in * self.out_elems

    # -- tiles and ADC ----------------------------------------------------------
    def finish_tiles(self, product: Callable[[int], tuple[torch.Tensor, Callable[[], Norms]]],
                     plain: Callable[[], torch.Tensor], ops: Operands, bias: Optional[torch.Tensor] = None,
                     bias_dim: int = -1) -> torch.Tensor:
        """The output computed as partial sums: ``product(N)`` gives them, shape (T, *output), and their norms
        (``plain()``: the one product without bias, when one tile holds the whole fan-in); each gets the output
        noise with its tile's fan-in, then the ADC; they are summed, then the bias added. Without an ADC, a noise
        whose variance over the tiles adds up to the untiled one (``tile_additive``: thermal) runs on the plain
        product, with the same distribution and none of the T-fold work."""
        rows = self.tile_rows or self.fan_in
        n = self.noise
        if self.adc is None and (n is None or n.acts_on == "weight" or n.tile_additive):
            # no ADC and a noise whose tiles' variances add up to the untiled one: the sum of independent draws per
            # tile has the distribution of one draw per output, and the partial sums add up to the plain product
            self.tiles = tile_count(self.fan_in, rows)
            y = plain()
            return self.finish(y if bias is None else y + along_dim(bias, y.dim(), bias_dim), ops)
        if rows >= self.fan_in:
            p, tile_ops = plain().unsqueeze(0), ops
        else:
            p, norms = product(rows)
            tile_ops = ops.for_tiles(self._tile_fan_ins(rows, p), norms, (self.fan_in, rows))
        self.tiles = p.shape[0]
        if n is not None and n.acts_on in ("output", "both"):
            p = n(p, tile_ops, inplace=True)
        if self.adc is not None:
            if self.adc.rule == "full_scale":
                self.set_full_scale_bound()
            y = self.adc.convert_and_sum(p)
        else:
            y = p.sum(0)
        self._count_outputs(y)
        self.conversions = self.tiles * self.out_elems if self.adc is not None else 0
        return y if bias is None else y + along_dim(bias, y.dim(), bias_dim)

    def _tile_fan_ins(self, rows: int, p: torch.Tensor) -> torch.Tensor:
        """The products each tile sums, shaped (T, 1, ..., 1) like the partial sums ``p`` (kept while D and N)."""
        key = (self.fan_in, rows, p.dim(), p.device, p.dtype)
        if self._fan_in_tiles is None or self._fan_in_tiles[0] != key:
            d = torch.tensor(tile_fan_ins(self.fan_in, rows), dtype=p.dtype, device=p.device)
            self._fan_in_tiles = (key, d.reshape(-1, *(1,) * (p.dim() - 1)))
        return self._fan_in_tiles[1]

    def input_conversions(self) -> int:
        """DAC conversions per sample: every input value once (a product of two activations: both operands)."""
        return self.in_elems

    def operand_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(max|x|, max|w|) from the quantizer ranges: what a full-scale ADC range is built from."""
        return quantizer_bound(self.act_quant), quantizer_bound(self.weight_quant, self.weight)

    @torch.no_grad()
    def set_full_scale_bound(self) -> None:
        """r = N max|w| max|x| for a ``full_scale`` ADC, recomputed when a quantizer range changes (N: the rows a
        tile sums, at most the fan-in)."""
        rows = min(self.tile_rows or self.fan_in, self.fan_in)
        quants = [q for q in (*self.activation_quantizers(), self.weight_quant) if q is not None]

        def key():
            return (rows, self.adc.quant.state_key(), *(q.state_key() for q in quants))

        if key() != self._full_scale_key:
            x_max, w_max = self.operand_bounds()
            self.adc.set_bound(rows * x_max * w_max)
            self._full_scale_key = key()

    # -- allocation -----------------------------------------------------------
    def energy(self) -> Optional[torch.Tensor]:
        return None if self.noise is None else self.noise.energy()

    def set_energy(self, e_mac: float | torch.Tensor) -> None:
        """Energy per MAC (photons): one value, or one per output channel of a per-channel layer."""
        if self.noise is None:
            raise ValueError(f"layer {self.name} has no noise model to set an energy on")
        self.noise.set_energy(e_mac)

    def set_bits(self, weight: Optional[float | torch.Tensor] = None, act: Optional[float] = None) -> None:
        """Weight bits (one value, or one per output channel when learnable per channel) and input bits."""
        if weight is not None and self.weight_quant is not None and self.weight_quant.cfg.bits is not None:
            self.weight_quant.set_bits(weight)
        if act is not None:
            for q in self.activation_quantizers():
                if q.cfg.bits is not None:
                    q.set_bits(act)

    def set_bit_width(self, bits: float) -> None:
        """The weight bit-width from now on; 32 (or more) turns weight quantization off (float weights), e.g. to
        debug one layer. The weight range stays the calibrated one; the step is range / (2^bits levels)."""
        q = self.weight_quant
        if q is None or q.cfg.bits is None:
            raise ValueError(f"layer {self.name}: its weights are not quantized (prepare with weight_bits)")
        if bits >= 32:
            q.disable()
        else:
            q.enable()
            q.set_bits(bits)
        q.touch()

    def weight_bit_width(self) -> float:
        """The weight bit-width in use (32 when weight quantization is off)."""
        q = self.weight_quant
        return 32.0 if q is None or not q.enabled else float(q.mean_bits())

    @property
    def weight_count(self) -> int:
        w = getattr(self, "weight", None)
        return 0 if w is None else w.numel()


def quantizer_bound(q: Optional[FakeQuantize], values: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The largest magnitude quantizer ``q`` represents (``values``' own without a quantizer)."""
    if q is None or not q.enabled:
        if values is None:
            raise ValueError("a full_scale ADC range needs quantized inputs (act_bits) or use adc_range minmax")
        return values.detach().abs().max()
    if q.cfg.dynamic:
        raise ValueError("a full_scale ADC range needs calibrated input ranges, not act_dynamic")
    return torch.maximum(q.lo.detach().abs(), q.hi.detach().abs()).max()


def _no_norms(name: str):
    raise RuntimeError(f"layer {name}: operand norms are only known inside a forward")
