"""Eval-forward overhead of noisesim against plain PyTorch (and aihwkit-lightning when installed).

    python benchmarks/overhead.py [--repeats 7] [--batch 128] [--threads N]

Networks: torchvision ResNet-18 at 64x64 and the CIFAR ResNet-20 at 32x32, batch 128,
random weights (timing does not depend on them). Variants, each timed as the median of
``--repeats`` forwards after a warm-up, interleaved so that machine load affects all alike:

* fp32            the float network
* w8a8+thermal    noisesim.prepare(W8A8, thermal noise), calibrated
* w8a8+shot       noisesim.prepare(W8A8, shot noise), calibrated
* aihwkit-lightning  convert_to_analog with 8-bit input/output resolution and output noise

Prints medians in ms and ratios to fp32 (and noisesim's speed-up over aihwkit-lightning).
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torchvision

import noisesim
from noisesim.models.cifar_resnet import resnet20


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


def _prepared(model, x, noise_type):
    sim = noisesim.prepare(model, noisesim.SimConfig(weight_bits=8, act_bits=8, noise_type=noise_type, e_mac=10.0))
    noisesim.calibrate(sim, [x])
    return sim


def bench(name: str, model: torch.nn.Module, x: torch.Tensor, repeats: int) -> dict[str, float]:
    model.eval()
    variants = {"fp32": model, "w8a8+thermal": _prepared(model, x, "thermal"),
                "w8a8+shot": _prepared(model, x, "shot")}
    analog = _aihwkit(model)
    if analog is not None:
        variants["aihwkit-lightning"] = analog
    times: dict[str, list[float]] = {k: [] for k in variants}
    with torch.no_grad():
        for m in variants.values():  # warm-up
            m(x)
        for _ in range(repeats):
            for k, m in variants.items():
                start = time.perf_counter()
                m(x)
                times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7, help="timed forwards per variant (median reported)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nets = [("resnet18@64", torchvision.models.resnet18(), torch.randn(args.batch, 3, 64, 64)),
            ("resnet20@32", resnet20(10, 3), torch.randn(args.batch, 3, 32, 32))]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"median of {args.repeats}")
    print(f"{'network':<13} {'variant':<18} {'ms':>9} {'x fp32':>7}")
    for name, model, x in nets:
        med = bench(name, model, x, args.repeats)
        for k, t in med.items():
            print(f"{name:<13} {k:<18} {t * 1e3:9.1f} {t / med['fp32']:7.2f}")
        if "aihwkit-lightning" in med:
            for k in ("w8a8+thermal", "w8a8+shot"):
                print(f"{name:<13} {k + ' speed-up vs aihwkit-lightning':<40} "
                      f"{med['aihwkit-lightning'] / med[k]:.2f}x")


if __name__ == "__main__":
    main()
