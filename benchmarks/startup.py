"""Start-up time of noisesim against ``import torch``, each in a fresh process, measured side by side.

    python benchmarks/startup.py [--repeats 7] [--out FILE.md]

Times, as the median over ``--repeats`` rounds (the three commands interleaved in each round, so that
load on the machine affects them alike):

* import torch        ``python -c "import torch"``: the floor any PyTorch package starts from
* import noisesim     ``python -c "import noisesim"``
* noisesim --help     ``python -m noisesim --help``

and each one's ratio to ``import torch``. Heavy modules (torchvision, torch._dynamo, pandas, SciPy,
matplotlib) load when a command needs them, not at import.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

from tables import emit

COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "import noisesim": [sys.executable, "-c", "import noisesim"],
    "noisesim --help": [sys.executable, "-m", "noisesim", "--help"],
}


def _seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="rounds; each runs every command once (default 7)")
    p.add_argument("--out", help="also write the table to this markdown file")
    args = p.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for name, cmd in COMMANDS.items():  # warm the file cache once
        _seconds(cmd)
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():
            times[name].append(_seconds(cmd))
    floor = statistics.median(times["import torch"])
    lines = ["| command | median s | × `import torch` |", "|---|---|---|"]
    lines += [f"| `{name}` | {statistics.median(t):.2f} | {statistics.median(t) / floor:.2f} |" for name, t in times.items()]
    emit(lines, f"{args.repeats} interleaved rounds, each command in a fresh process, {os.cpu_count()} CPUs "
         f"({platform.machine()}); `python benchmarks/startup.py`.", args.out)


if __name__ == "__main__":
    main()
