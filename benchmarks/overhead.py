"""Overhead of noisesim against plain PyTorch, measured side by side in one process.

    python benchmarks/overhead.py [--device cpu|cuda] [--repeats 7] [--threads N] [--compile] [--nets NAME ...] [--out FILE.md]

Networks (random weights: timing does not depend on them): on the CPU torchvision ResNet-18 at 64x64
(batch 64) and the CIFAR ResNet-20 at 32x32 (batch 128); on CUDA ResNet-50 at 224x224 (batch 256) and a
BERT-base-sized encoder (12 layers, hidden 768, 128 tokens, batch 64, both attention products
instrumented). Eval-forward variants, timed as the median of ``--repeats`` runs after a warm-up and
interleaved so that load on the machine affects them alike:

* fp32               the float network
* rng floor          fp32 + drawing one Gaussian per output element of every matmul layer and adding it
                     (noisesim's sampler): what any output-noise simulation must at least pay
* w8a8               quantized, no noise
* w8a8+thermal       quantized, thermal noise
* w8a8+shot          quantized, shot noise
* compiled           w8a8+thermal under torch.compile (``--compile``)
* tiled              w8a8+thermal on arrays of 64 rows with 6-bit ADCs (docs/hardware.md); its ratio to the
                     untiled w8a8+thermal is printed too, and on CUDA both forwards' peak memory
* aihwkit-lightning  convert_to_analog, 8-bit input/output, output noise (when installed; CPU)

and training steps (forward + backward + optimiser step): fp32 (every weight trains) against energy
training (only the log-energies of a w8a8+thermal network train). Prints each median in ms and its
ratio to fp32, the overhead above the RNG floor, and the device (GPU model).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from typing import Callable

import torch
import torchvision

import noisesim
from tables import emit
from noisesim.models.cifar_resnet import resnet20
from noisesim.noise.sampler import GaussianSampler
from noisesim.provenance import device_name


def _aihwkit(model: torch.nn.Module):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from aihwkit_lightning.nn.conversion import convert_to_analog
            from aihwkit_lightning.simulator.configs import TorchInferenceRPUConfig
    except ImportError:
        return None
    rpu = TorchInferenceRPUConfig()
    rpu.forward.inp_res = 2 ** 8 - 2
    rpu.forward.out_res = 2 ** 8 - 2
    rpu.forward.out_bound = 12.0
    rpu.forward.out_noise = 0.01
    rpu.pre_post.input_range.enable = True  # 8-bit input quantization needs an input range
    return convert_to_analog(model, rpu).eval()


def _prepared(model, x, noise_type="none", **hardware):
    cfg = noisesim.SimConfig(weight_bits=8, act_bits=8, noise_type=noise_type, e_mac=10.0, seed=0, **hardware)
    sim = noisesim.prepare(model, cfg)
    noisesim.calibrate(sim, [x])
    return sim


class RngFloor(torch.nn.Module):
    """The float network with a Gaussian drawn and added to the output of every Conv / Linear / Matmul."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.sampler = GaussianSampler(0)
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, noisesim.nn.Matmul)):
                m.register_forward_hook(self._add)

    def _add(self, module, inputs, out):
        return out.add_(self.sampler.sample(out.shape, out.device, out.dtype), alpha=1e-3)

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():  # warm-up (and compilation)
        f()
    _sync(device)
    for _ in range(repeats):
        for k, f in fns.items():
            _sync(device)
            start = time.perf_counter()
            f()
            _sync(device)
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def eval_variants(model, x, call, compile_: bool, device) -> dict[str, Callable[[], object]]:
    import copy

    thermal = _prepared(model, x, "thermal")
    variants = {"fp32": model, "rng floor": RngFloor(copy.deepcopy(model)), "w8a8": _prepared(model, x),
                "w8a8+thermal": thermal, "w8a8+shot": _prepared(model, x, "shot")}
    variants["w8a8+thermal tiled N=64 ADC 6b"] = _prepared(model, x, "thermal", tile_rows=64, adc_bits=6)
    if compile_:
        variants["w8a8+thermal compiled"] = torch.compile(thermal)
    if device.type == "cpu" and not isinstance(x, dict):
        analog = _aihwkit(model)
        if analog is not None:
            variants["aihwkit-lightning"] = analog

    def run(m):
        def f():
            with torch.no_grad():
                return call(m, x)
        return f

    return {k: run(m) for k, m in variants.items()}


def _peak_memory(model, x, call, device: torch.device) -> str:
    """On CUDA, the peak memory of one eval forward, untiled and tiled (w8a8+thermal); '' on the CPU."""
    if device.type != "cuda":
        return ""
    peaks = []
    for hw in ({}, {"tile_rows": 64, "adc_bits": 6}):
        sim = _prepared(model, x, "thermal", **hw)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        with torch.no_grad():
            call(sim, x)
        peaks.append(torch.cuda.max_memory_allocated(device))
        del sim
    return f"; peak memory {peaks[0] / 2 ** 20:.0f} MiB -> {peaks[1] / 2 ** 20:.0f} MiB ({peaks[1] / peaks[0]:.2f}×)"


def train_variants(model, x, y, call, loss_fn) -> dict[str, Callable[[], object]]:
    import copy

    fp32 = copy.deepcopy(model).train()
    opt = torch.optim.SGD(fp32.parameters(), lr=1e-4)
    sim = _prepared(model, x, "thermal")
    energies = [m.log_energy for m in sim.modules() if isinstance(m, noisesim.noise.NoiseModel)]
    for p in sim.parameters():
        p.requires_grad_(False)
    for p in energies:
        p.requires_grad_(True)
    opt_e = torch.optim.Adam(energies, lr=1e-3)

    def step(m, o):
        def f():
            o.zero_grad(set_to_none=True)
            loss_fn(call(m, x), y).backward()
            o.step()
        return f

    return {"train fp32": step(fp32, opt), "train energies (w8a8+thermal)": step(sim, opt_e)}


def networks(device: torch.device, batch: int | None):
    """(name, model, input, call, targets, loss) per network for the device."""
    ce = torch.nn.functional.cross_entropy
    if device.type == "cpu":
        b18, b20 = batch or 64, batch or 128
        yield ("resnet18@64", torchvision.models.resnet18(), torch.randn(b18, 3, 64, 64), lambda m, x: m(x),
               torch.randint(0, 1000, (b18,)), ce)
        yield ("resnet20@32", resnet20(10, 3), torch.randn(b20, 3, 32, 32), lambda m, x: m(x),
               torch.randint(0, 10, (b20,)), ce)
        return
    b50, bb = batch or 256, batch or 64
    yield ("resnet50@224", torchvision.models.resnet50(), torch.randn(b50, 3, 224, 224, device=device),
           lambda m, x: m(x), torch.randint(0, 1000, (b50,), device=device), ce)
    from transformers import BertConfig, BertModel

    from noisesim.nn.bert_attention import instrument_bert_attention

    bert = instrument_bert_attention(BertModel(BertConfig(attn_implementation="eager")))
    ids = {"input_ids": torch.randint(0, 30522, (bb, 128), device=device),
           "attention_mask": torch.ones(bb, 128, dtype=torch.long, device=device)}
    yield ("bert-base seq128", bert, ids, lambda m, x: m(**x).last_hidden_state,
           torch.randn(bb, 128, 768, device=device), torch.nn.functional.mse_loss)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per variant (median reported)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: per network, see above)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--compile", action="store_true", help="also time the torch.compile'd w8a8+thermal network")
    p.add_argument("--no-train", dest="train", action="store_false", help="skip the training steps")
    p.add_argument("--nets", nargs="+", default=None, help="only these networks (names as printed)")
    p.add_argument("--out", help="also write the table to this markdown file")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks/overhead.py: error: --device cuda: no CUDA device here")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lines = ["| network | variant | ms | × fp32 | × floor |", "|---|---|---|---|---|"]
    for name, model, x, call, y, loss_fn in networks(device, args.batch):
        if args.nets and name not in args.nets:
            continue
        model = model.to(device).eval()
        med = _time(eval_variants(model, x, call, args.compile, device), args.repeats, device)
        for k, t in med.items():
            floor = f"{t / med['rng floor']:.2f}" if k not in ("fp32", "rng floor") else ""
            lines.append(f"| {name} | {k} | {t * 1e3:.1f} | {t / med['fp32']:.2f} | {floor} |")
        tiled = "w8a8+thermal tiled N=64 ADC 6b"
        lines.append(f"| {name} | tiled / untiled w8a8+thermal: {med[tiled] / med['w8a8+thermal']:.2f}×"
                     f"{_peak_memory(model, x, call, device)} | | | |")
        if args.train:
            tr = _time(train_variants(model, x, y, call, loss_fn), args.repeats, device)
            lines += [f"| {name} | {k} | {t * 1e3:.1f} | {t / tr['train fp32']:.2f} | |" for k, t in tr.items()]
        print(lines[-1], file=sys.stderr)  # progress: each network as it finishes
    emit(lines, f"torch {torch.__version__} on {device_name(device)}; median of {args.repeats} runs; "
         f"`python benchmarks/overhead.py {' '.join(sys.argv[1:] if argv is None else argv)}`. Training rows "
         "(train ...) are against the FP32 training step.", args.out)

if __name__ == "__main__":
    main()
