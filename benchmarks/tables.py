"""The benchmarks' output: a Markdown table with a note under it, printed and, with ``--out FILE``, written to
FILE, from which the documentation copies it (``python -m noisesim.reports docs``)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional


def emit(lines: list[str], note: str, out: Optional[str]) -> None:
    """Print the table ``lines`` and the ``note`` under it; also write them to ``out`` when given."""
    text = "\n".join([*lines, "", note]) + "\n"
    print(text)
    if out:
        Path(out).write_text(text)
