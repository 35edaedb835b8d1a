"""The quick start's first command, ``python main.py`` (the default study), timed from a fresh process.

    python benchmarks/quickstart.py [--keep DIR] [--out FILE.md] [-- main.py flags, e.g. --device cuda]

Runs the default study into a temporary folder (or ``--keep DIR``), then prints the wall time measured from
outside (interpreter start-up and imports included), the seconds per phase the run recorded (``timing.json``:
data and model, evaluation, allocation, ...) and the savings table it wrote, whose intervals say whether the
answer still holds. The machine (CPU threads or GPU model) is printed with it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tables import emit

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", default=None, help="write the run folder here (default: a temporary folder)")
    p.add_argument("--out", help="also write the table to this markdown file")
    p.add_argument("flags", nargs="*", help="flags passed on to main.py (after --)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(args.keep or tmp)
        cmd = [sys.executable, str(ROOT / "main.py"), "--log_dir", str(logs), "--run_name", "quickstart",
               "--no-progress", *args.flags]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
            return done.returncode
        run = logs / "quickstart"
        timing = json.loads((run / "timing.json").read_text())
        device = json.loads((run / "config.json").read_text())["provenance"].get("device", "")
        lines = ["| phase | seconds |", "|---|---|", f"| start-up and imports | {wall - timing['total']:.1f} |"]
        lines += [f"| {phase} | {seconds:.1f} |" for phase, seconds in sorted(timing.items(), key=lambda kv: -kv[1])
                  if phase != "total"]
        lines.append(f"| **total, from outside** | **{wall:.0f}** |")
        command = f"`python main.py {' '.join(args.flags)}`".replace(" `", "`")
        emit(lines, f"{command} from a fresh process on {device} (`python benchmarks/quickstart.py`). Its "
             f"savings:\n\n{(run / 'savings.md').read_text().strip()}", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
