"""The ``noisesim`` command line: ``python main.py``, the installed ``noisesim`` and ``python -m noisesim``.

    noisesim [FLAGS]                  sweeps of noise, energies and bits; allocations; iso-accuracy savings
    noisesim precision [FLAGS]        training with precision that moves: AdaptiveDPC, CPT, Double Rounding
    noisesim export RUN [FLAGS]       a run's network as integers, verified, with test-bench files
    noisesim plot RUN... [FLAGS]      plots, quantization cards and savings tables redrawn from run folders
    noisesim pretrain [FLAGS]         a float network trained with the project's training loop
    noisesim migrate RUN              a run folder of an older noisesim brought to today's settings and ids
    noisesim study NAME [IMAGENET_DIR]  a study of run_noise/ and run_quant/ from its YAML (noisesim/configs/studies)
    noisesim query RUN KEY            one value of a run folder (a results cell, the kept QAT network)

``noisesim COMMAND --help`` lists each command's flags.
"""
from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

# each command's module, imported when the command runs (a command pays for its own imports only)
COMMANDS: dict[str, str] = {
    "precision": "noisesim.experiment.precision", "export": "noisesim.experiment.export",
    "plot": "noisesim.reports.__main__", "pretrain": "noisesim.train.pretrain",
    "migrate": "noisesim.experiment.migrate", "study": "noisesim.experiment.study",
    "query": "noisesim.experiment.query"}


def main(argv: Optional[Sequence[str]] = None, prog: str = "main.py") -> int:
    """Run the command named by the first argument, or the experiment when there is none."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        command = importlib.import_module(COMMANDS[argv[0]])
        return command.main(argv[1:], prog=f"{prog} {argv[0]}") or 0
    return importlib.import_module("noisesim.experiment.main").main(argv, prog)


def console() -> int:
    """The installed ``noisesim`` script."""
    return main(prog="noisesim")
