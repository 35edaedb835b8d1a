"""The ``noisesim`` command line: ``python main.py``, the installed ``noisesim`` and ``python -m noisesim``.

The first argument names a command (``COMMANDS``: precision, export, plot, pretrain, migrate, study, query); without
one, the flags are the sweep's. ``noisesim --help`` lists the commands with examples
(``noisesim.experiment.cli.OVERVIEW``), ``noisesim COMMAND --help`` each command's flags.
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
