"""``noisesim query RUN KEY`` (= ``python main.py query``): one value of a run folder, for scripts that chain runs.

    python main.py query logs/<run> accuracy              # a results.csv cell of the run's first point
    python main.py query logs/<run> accuracy --point ID   # ... of the point with this id
    python main.py query logs/<run> qat_network           # the trained network a --qat run kept (qat/<key>.pt)

Prints the value alone on stdout. Exit codes: 0 found, 2 bad input (no such folder, column or point).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

from noisesim.io import read_csv_rows
from noisesim.usage import Parser, UsageError, fail

PROG = "noisesim query"


def query(run: Path, key: str, point: Optional[str] = None) -> str:
    rows = read_csv_rows(run / "results.csv")
    if not rows:
        raise UsageError(f"{run}: no results.csv rows (not a run folder, or no finished point)")
    chosen = [r for r in rows if point is None or r["point_id"] == point]
    if not chosen:
        raise UsageError(f"--point {point}: not in {run / 'results.csv'}")
    row = chosen[0]
    if key == "qat_network":
        path = run / "qat" / f"{row.get('qat_key', '')}.pt"
        if not row.get("qat_key") or not path.is_file():
            raise UsageError(f"{run}: no trained network kept (a run without --qat, or its qat/ folder moved)")
        return str(path)
    if key not in row:
        raise UsageError(f"{key}: not a column of {run / 'results.csv'} (nor qat_network)")
    return row[key]


def main(argv: Optional[Sequence[str]] = None, prog: str = PROG) -> int:
    p = Parser(prog=prog, description="Print one value of a run folder: a results.csv cell or the kept QAT "
               "network's path.")
    p.add_argument("run", help="the run folder")
    p.add_argument("key", help="a results.csv column (e.g. accuracy) or qat_network")
    p.add_argument("--point", help="the point's id (default: the run's first point)")
    try:
        args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
        print(query(Path(args.run), args.key, args.point))
    except UsageError as e:
        return fail(prog, e)
    return 0
