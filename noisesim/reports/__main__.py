"""``noisesim plot`` (= ``python main.py plot`` = ``python -m noisesim.reports``): redraw runs' plots,
quantization cards and savings tables from their results files.

    python main.py plot logs/<run>                        # every plot of one run, card.md/json, savings.md
    python main.py plot logs/<a> logs/<b> --out logs/a-vs-b   # also compare runs on the same axes
    python -m noisesim.reports docs [--check]             # the tables of README.md and docs/, from their files

A run folder's plots: accuracy_vs_energy, accuracy_vs_bits, noise_bits_accuracy,
energy_by_layer, noise_bits_by_layer, bits_by_layer, snr_histogram, snr_by_layer,
snr_by_fan_in (each .png and .pdf; each only when the run holds what it shows).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from noisesim.reports.figures import compare_runs, draw_run
from noisesim.stats import FITS
from noisesim.usage import Parser, UsageError, fail


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m noisesim.reports") -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["docs"]:  # the documentation's tables (noisesim.reports.docs)
        from noisesim.reports import docs

        return docs.main(argv[1:], f"{prog} docs")
    p = Parser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folder(s) holding results.csv")
    p.add_argument("--out", help="folder for the comparison of several runs (needed with more than one RUN_DIR)")
    p.add_argument("--acc_drop", type=float, help="iso-accuracy target: the reference accuracy minus this "
                   "(overrides the run's)")
    p.add_argument("--target_acc", type=float, help="iso-accuracy target accuracy (overrides the run's)")
    p.add_argument("--target_reference", choices=("float", "quantized"), help="what --acc_drop is taken from")
    p.add_argument("--curve_fit", choices=FITS, help="the monotone fit of accuracy against log energy")
    p.add_argument("--bootstrap", type=int, help="bootstrap replicates of the intervals")
    try:
        args = p.parse_args(argv)
    except UsageError as e:
        return fail(prog, e)
    target = {k: getattr(args, k) for k in ("acc_drop", "target_acc", "target_reference", "curve_fit", "bootstrap")}
    for k, v in (("acc_drop", args.acc_drop), ("target_acc", args.target_acc)):
        if v is not None and not 0 < v <= 1:
            return fail(prog, f"--{k} {v}: must be a fraction in (0, 1]")
    for d in args.run_dirs:
        if not (Path(d) / "results.csv").is_file():
            return fail(prog, f"{Path(d) / 'results.csv'} not found")
    if len(args.run_dirs) > 1 and not args.out:
        return fail(prog, "--out DIR is needed to compare several runs")
    if args.bootstrap is not None and args.bootstrap < 1:
        return fail(prog, f"--bootstrap {args.bootstrap}: must be >= 1")
    paths = []
    try:
        for d in args.run_dirs:
            paths += draw_run(Path(d), target=target)
        if args.out:
            paths += compare_runs([Path(d) for d in args.run_dirs], Path(args.out), target)
    except (ValueError, OSError, KeyError) as e:  # a results file that is not one (pandas' errors are ValueErrors)
        why = f"results.csv has no column {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
        return fail(prog, f"cannot draw from {' '.join(args.run_dirs)}: {why}")
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
