"""What the hardware model costs: the eval forward of the shipped ResNet-20 with tiles, ADCs and noise sums,
against the noise-free W8A8 forward of the same network in the same run.

    python benchmarks/hardware.py [--batch 250] [--repeats 5] [--out examples/benchmarks/hardware_cpu.md]

Each setting is prepared, calibrated and warmed up once, then timed as the median of ``--repeats`` forwards
on one batch of Fashion-MNIST-sized inputs; the table (markdown) gives the seconds and the ratio to the first
row, and is written to ``--out`` when given.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import noisesim
from noisesim.models.cifar_resnet import resnet20
from tables import emit

SETTINGS = {
    "W8A8, noise-free": {},
    "tile_rows 64": {"tile_rows": 64},
    "tile_rows 64, adc_bits 6": {"tile_rows": 64, "adc_bits": 6},
    "thermal": {"noise_type": "thermal"},
    "thermal, tile_rows 64, adc_bits 6": {"noise_type": "thermal", "tile_rows": 64, "adc_bits": 6},
    "thermal+shot": {"noise_type": "thermal+shot"},
    "thermal+shot, tile_rows 64, adc_bits 6": {"noise_type": "thermal+shot", "tile_rows": 64, "adc_bits": 6},
}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=250, help="images per forward (default 250)")
    p.add_argument("--repeats", type=int, default=5, help="timed forwards per setting (default 5)")
    p.add_argument("--out", help="also write the table to this markdown file")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model = resnet20(num_classes=10, in_channels=1).eval()
    x = torch.randn(args.batch, 1, 28, 28)
    seconds = {}
    for name, kw in SETTINGS.items():
        sim = noisesim.calibrate(noisesim.prepare(model, noisesim.SimConfig(e_mac=5.0, seed=0, **kw)), [x[:50]])
        with torch.no_grad():
            sim(x)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                sim(x)
                times.append(time.perf_counter() - start)
        seconds[name] = statistics.median(times)
    floor = seconds["W8A8, noise-free"]
    lines = ["| ResNet-20, eval forward | seconds | × noise-free |", "|---|---|---|"]
    lines += [f"| {name} | {s:.2f} | {s / floor:.1f} |" for name, s in seconds.items()]
    emit(lines, f"{args.batch} images of 28×28, median of {args.repeats} forwards, {torch.get_num_threads()} threads, "
         "`python benchmarks/hardware.py`.", args.out)


if __name__ == "__main__":
    main()
