"""The documentation's tables, regenerated from the files runs wrote: ``python -m noisesim.reports docs``.

A page (README.md, docs/*.md) marks each generated table with

    <!-- generated from FILE -->
    ...
    <!-- end of generated table -->

and the command rewrites what lies between the marks from FILE (a path from the repository root):

* a Markdown file a run wrote (``savings.md``, ``energy_breakdown.md``, a benchmark's table) is copied whole;
* a YAML list of rows (``examples/reproducing.yaml``) becomes a table whose cells are either written in the row
  (what a paper reports, the commands, the verdict) or, for the measured numbers, read from a table a run wrote:
  ``{file: F, where: {column: value, ...}, column: C}`` is the cell in column C of the row of F's table that
  matches ``where`` (a value written ``~REGEX`` matches the cells that contain a match of REGEX), and
  ``{file: F, match: REGEX}`` the first group of REGEX in F. No measured number is ever typed into a page; each
  comes with a link to its source. A row may name its source once (``file: F``): its measured cells then leave
  ``file`` out, and the column mapped to ``file`` holds the one link.

``--check`` changes nothing and exits 1, naming each page that differs from what its files give (the test suite
runs it on the committed pages).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from noisesim.io import atomic_write

MARK = re.compile(r"(<!-- generated from (\S+) -->\n)(.*?)\n?(<!-- end of generated table -->)", re.S)
CELL = re.compile(r"(?<!\\)\|")  # a cell border: a pipe not escaped as \|


class DocsError(ValueError):
    """A generated block whose source is missing or does not hold what the page asks for."""


def pages(root: Path) -> list[Path]:
    """The pages that may hold generated tables: README.md and every Markdown page of docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def markdown_rows(text: str) -> list[dict[str, str]]:
    """The rows of every pipe table in ``text`` as dicts keyed by their table's header."""
    rows, header = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in CELL.split(line.strip()[1:].removesuffix("|"))]
        if header is None:
            header = cells
        elif not all(set(c) <= set("-: ") for c in cells):
            rows.append(dict(zip(header, cells)))
    return rows


def measured(spec: dict, root: Path, page_dir: Path, row_file: Optional[str] = None) -> str:
    """The cell ``spec['column']`` of the one row of ``spec['file']``'s tables that matches ``spec['where']``, or
    the first group of the regex ``spec['match']`` in that file; with a link to the file unless it is the row's
    ``row_file`` (whose link has a column of its own)."""
    name = spec.get("file", row_file)
    if name is None:
        raise DocsError(f"a measured cell names no file and its row none: {spec}")
    path = root / name
    if not path.is_file():
        raise DocsError(f"{name}: not found")
    source = "" if "file" not in spec else f" ([source]({_link(path, page_dir)}))"
    if "match" in spec:  # a sentence the run wrote: the regex's first group
        found = re.search(spec["match"], path.read_text())
        if found is None:
            raise DocsError(f"{name}: nothing matches {spec['match']!r}")
        return found.group(1) + source
    where = {k: str(v) for k, v in spec.get("where", {}).items()}
    rows = [r for r in markdown_rows(path.read_text()) if spec["column"] in r
            and all(_matches(r.get(k), v) for k, v in where.items())]
    if len(rows) != 1:
        raise DocsError(f"{name}: {len(rows)} rows with column {spec['column']!r} match {where}, not 1")
    return rows[0][spec["column"]] + source


def _link(path: Path, page_dir: Path) -> str:
    return os.path.relpath(path, page_dir).replace(os.sep, "/")


def _matches(cell: Optional[str], wanted: str) -> bool:
    """A cell equals the value asked for, or, for a value written ``~REGEX``, contains a match of REGEX."""
    if cell is None:
        return False
    return re.search(wanted[1:], cell) is not None if wanted.startswith("~") else cell == wanted


def cell(value, root: Path, page_dir: Path, row_file: Optional[str] = None) -> str:
    if isinstance(value, dict):
        return measured(value, root, page_dir, row_file)
    if isinstance(value, list):
        return "<br>".join(cell(v, root, page_dir, row_file) for v in value)
    return str(value).replace("\n", " ").replace("|", "\\|").strip()


def yaml_table(path: Path, root: Path, page_dir: Path) -> str:
    """A table from a YAML file: ``columns`` (header -> row key), ``rows`` and an optional ``note`` under it (text,
    or a list of texts and measured cells)."""
    import yaml

    spec = yaml.safe_load(path.read_text())
    columns = spec["columns"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in spec["rows"]:
        cells = [f"[{Path(row['file']).name}]({_link(root / row['file'], page_dir)})" if key == "file" and "file" in row
                 else cell(row.get(key, ""), root, page_dir, row.get("file")) for key in columns.values()]
        lines.append("| " + " | ".join(cells) + " |")
    note = spec.get("note") or []
    note = " ".join(cell(part, root, page_dir) for part in (note if isinstance(note, list) else [note]))
    return "\n".join(lines + (["", note] if note else []))


def generate(source: str, root: Path, page_dir: Path) -> str:
    """What a block marked as generated from ``source`` holds, on a page in ``page_dir``."""
    path = root / source
    if not path.is_file():
        raise DocsError(f"{source}: not found")
    if path.suffix in (".yaml", ".yml"):
        return yaml_table(path, root, page_dir)
    return path.read_text().strip()


def refresh(text: str, root: Path, page_dir: Path) -> str:
    """``text`` (a page in ``page_dir``) with every generated block rewritten from its source."""
    return MARK.sub(lambda m: m.group(1) + generate(m.group(2), root, page_dir) + "\n" + m.group(4), text)


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m noisesim.reports docs") -> int:
    from noisesim.usage import Parser, UsageError, fail

    p = Parser(prog=prog, description="Regenerate the tables of README.md and docs/ from the files runs wrote.")
    p.add_argument("--root", default=".", help="the repository (default: the current folder)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page differs")
    try:
        args = p.parse_args(argv)
    except UsageError as e:
        return fail(prog, e)
    root = Path(args.root)
    if not (root / "docs").is_dir():
        return fail(prog, f"--root {args.root}: no docs/ folder there")
    stale = []
    for page in pages(root):
        text = page.read_text()
        try:
            new = refresh(text, root, page.parent)
        except DocsError as e:
            return fail(prog, f"{page.relative_to(root)}: {e}")
        if new != text:
            stale.append(page.relative_to(root))
            if not args.check:
                atomic_write(page, lambda f: f.write(new))
    for page in stale:
        print(f"{'differs' if args.check else 'rewritten'}: {page}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
