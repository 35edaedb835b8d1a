"""noisesim on a model and data of your own: prepare, calibrate, check coverage, evaluate under noise,
allocate energies per layer in closed form, save the allocation.

    python examples/own_model.py                          # torchvision ResNet-18, 64x64 images, thermal noise
    python examples/own_model.py --model vit_b_16 --image_size 32 --noise shot

Any ``torchvision.models`` name works (random weights here: pass ``--weights DEFAULT`` with internet to use
the pretrained ones), on any data: this script uses torchvision's ``FakeData`` images and scores each noisy
model by its agreement with the float model's own predictions, so it needs nothing downloaded. Replace
``make_data`` by your DataLoader (batches of (inputs, labels)) and ``agreement`` by your metric. About 30 s
on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torchvision
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import ToTensor

import noisesim
from noisesim.allocate import Allocation, AllocationProblem, ClosedFormAllocator
from noisesim.data.tasks import Classification


def make_data(image_size: int, n: int = 192, batch: int = 32) -> tuple[DataLoader, DataLoader]:
    """Calibration/allocation batches and disjoint evaluation batches of random 3-channel images."""
    images = torchvision.datasets.FakeData(n, (3, image_size, image_size), 10, transform=ToTensor(), random_offset=7)
    half = n // 2
    return (DataLoader(Subset(images, range(half)), batch_size=batch),
            DataLoader(Subset(images, range(half, n)), batch_size=batch))


@torch.no_grad()
def agreement(model: torch.nn.Module, reference: torch.nn.Module, batches: DataLoader) -> float:
    """Fraction of examples on which ``model`` predicts what ``reference`` predicts."""
    same = total = 0
    for x, _ in batches:
        same += (model(x).argmax(1) == reference(x).argmax(1)).sum().item()
        total += len(x)
    return same / total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18", help="a torchvision.models name (default: resnet18)")
    p.add_argument("--weights", default=None, help="torchvision weights, e.g. DEFAULT (needs internet)")
    p.add_argument("--image_size", type=int, default=64, help="input size in pixels (default: 64)")
    p.add_argument("--noise", default="thermal", choices=("thermal", "shot", "weight"))
    p.add_argument("--energies", type=float, nargs="+", default=[3.0, 10.0, 30.0],
                   help="average energies to evaluate [photons/MAC] (default: 3 10 30)")
    p.add_argument("--out", default=None, help="folder for the allocation JSON (default: a temporary one)")
    args = p.parse_args()
    torch.manual_seed(0)
    kwargs = {"image_size": args.image_size} if args.model.startswith("vit") else {}
    model = torchvision.models.get_model(args.model, weights=args.weights,
                                         **({} if args.weights else {"num_classes": 10}), **kwargs).eval()
    train, test = make_data(args.image_size)

    # 1. a copy with every matmul instrumented (BN folded, attention decomposed), calibrated on training data
    sim = noisesim.prepare(model, noisesim.SimConfig(weight_bits=8, act_bits=8, noise_type=args.noise, seed=0))
    noisesim.calibrate(sim, train, max_batches=2)
    print("coverage:", noisesim.coverage_of(sim).summary())
    report = noisesim.energy_report(sim)
    print(report[["name", "kind", "fan_in", "macs"]].head(8).to_string(index=False), f"\n... {len(report)} layers, "
          f"{report.attrs['macs']:,} MACs per sample")
    with noisesim.noise_disabled(sim):
        print(f"W8A8 without noise: {agreement(sim, model, test):.1%} agreement with float")

    # 2. uniform energies against energies allocated per layer in closed form (Fisher sensitivities on train)
    problem_task = Classification()
    for e in args.energies:
        uniform = Allocation.from_model(sim).uniform(e).apply(sim)
        acc_uniform = agreement(uniform, model, test)
        problem = AllocationProblem(sim, e, "layer", train, problem_task, teacher=model)
        alloc = ClosedFormAllocator(batches=2).allocate(problem)
        print(f"E = {e:g} photons/MAC ({noisesim.photons_to_aj(e):.3g} aJ/MAC): uniform {acc_uniform:.1%}, "
              f"closed form {agreement(sim, model, test):.1%} (average {alloc.average_energy():.3g}, "
              f"layers from {min(l.energy[0] for l in alloc.layers.values() if l.energy):.3g} to "
              f"{max(l.energy[0] for l in alloc.layers.values() if l.energy):.3g})")

    # 3. the allocation is data: save it, load it into another prepared copy
    out = Path(args.out or tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    alloc.save(out / "allocation.json")
    other = noisesim.prepare(model, noisesim.SimConfig(weight_bits=8, act_bits=8, noise_type=args.noise, seed=1))
    noisesim.calibrate(other, train, max_batches=2)
    Allocation.load(out / "allocation.json").apply(other)
    print(f"allocation saved to {out / 'allocation.json'} and applied to a second copy "
          f"(average {noisesim.average_energy(other).item():.3g} photons/MAC)")


if __name__ == "__main__":
    main()
