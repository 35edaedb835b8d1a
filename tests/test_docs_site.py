"""The documentation site builds with ``mkdocs build --strict`` (broken links, anchors and API references fail it),
and ``python -m noisesim.reports docs`` regenerates the pages' tables from the files runs wrote."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from noisesim.reports.docs import DocsError, main, markdown_rows, measured, refresh, yaml_table

ROOT = Path(__file__).resolve().parents[1]

TABLE = """Some text.

| allocation | target E | accuracy [95% CI] |
|---|---|---|
| uniform | 3 | 26.90% [24.90%, 28.80%] |
| joint per layer | 3 | 93.35% [92.25%, 94.35%] |

Test accuracy 92.46% [91.93%, 92.97%] (paired bootstrap).
"""


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    site = tmp_path / "site"
    assert (site / "reproducing" / "index.html").is_file()
    assert (site / "examples" / "figures" / "default_study_iso_accuracy.png").is_file()  # docs/hooks.py
    reference = (site / "reference" / "index.html").read_text()
    assert "noisesim.allocate" in reference and "calibrate" in reference  # mkdocstrings rendered the docstrings


def test_the_strict_build_fails_on_a_broken_link(tmp_path):
    """What makes the build above meaningful: a page linking to a missing page stops a strict build."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# x\n\n[gone](missing.md)\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: x\nstrict: true\n")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode != 0 and "missing.md" in proc.stderr


def test_markdown_rows_reads_every_table_by_its_header():
    rows = markdown_rows(TABLE)
    assert rows == [{"allocation": "uniform", "target E": "3", "accuracy [95% CI]": "26.90% [24.90%, 28.80%]"},
                    {"allocation": "joint per layer", "target E": "3",
                     "accuracy [95% CI]": "93.35% [92.25%, 94.35%]"}]


def test_a_measured_cell_comes_from_the_matching_row_with_its_source(tmp_path):
    (tmp_path / "run.md").write_text(TABLE)
    spec = {"file": "run.md", "where": {"allocation": "joint per layer"}, "column": "accuracy [95% CI]"}
    assert measured(spec, tmp_path, tmp_path / "docs") == "93.35% [92.25%, 94.35%] ([source](../run.md))"
    assert measured({"file": "run.md", "match": r"Test accuracy (\S+)"}, tmp_path, tmp_path).startswith("92.46% (")
    for bad in ({"where": {"target E": "3"}}, {"where": {"allocation": "hessian"}}, {"column": "nope", "where": {}}):
        with pytest.raises(DocsError, match="rows"):
            measured({**spec, **bad}, tmp_path, tmp_path)
    with pytest.raises(DocsError, match="not found"):
        measured({**spec, "file": "gone.md"}, tmp_path, tmp_path)


def test_a_row_that_names_its_source_once_links_it_in_its_own_column(tmp_path):
    (tmp_path / "run.md").write_text(TABLE)
    (tmp_path / "rows.yaml").write_text(
        "columns: {setting: s, uniform: u, joint: j, data: file}\nrows:\n"
        "  - {s: E=3, file: run.md, u: {where: {allocation: uniform}, column: 'accuracy [95% CI]'},\n"
        "     j: {where: {allocation: joint per layer}, column: 'accuracy [95% CI]'}}\n"
        "  - {s: typed, u: '—'}\n")
    lines = yaml_table(tmp_path / "rows.yaml", tmp_path, tmp_path / "docs").splitlines()
    assert lines[2] == "| E=3 | 26.90% [24.90%, 28.80%] | 93.35% [92.25%, 94.35%] | [run.md](../run.md) |"
    assert lines[3] == "| typed | — |  |  |"
    with pytest.raises(DocsError, match="names no file"):
        measured({"where": {}, "column": "a"}, tmp_path, tmp_path)


def test_the_command_rewrites_stale_tables_and_check_names_them(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "t.md").write_text("| a |\n|---|\n| 2 |\n")
    (tmp_path / "examples" / "rows.yaml").write_text(
        "columns: {what: what, value: value}\nrows:\n"
        "  - {what: typed, value: {file: examples/t.md, where: {}, column: a}}\n"
        "note: [\"measured:\", {file: examples/t.md, where: {}, column: a}]\n")
    stale = ("x\n<!-- generated from examples/t.md -->\n| a |\n|---|\n| 1 |\n<!-- end of generated table -->\n"
             "<!-- generated from examples/rows.yaml -->\n<!-- end of generated table -->\n")
    (tmp_path / "docs" / "page.md").write_text(stale)
    (tmp_path / "README.md").write_text("no tables\n")
    assert main(["--root", str(tmp_path), "--check"]) == 1
    assert "differs: docs/page.md" in capsys.readouterr().out
    assert (tmp_path / "docs" / "page.md").read_text() == stale  # --check changes nothing
    assert main(["--root", str(tmp_path)]) == 0
    page = (tmp_path / "docs" / "page.md").read_text()
    assert "| 2 |" in page and "| 1 |" not in page
    assert "| typed | 2 ([source](../examples/t.md)) |" in page
    assert "\nmeasured: 2 ([source](../examples/t.md))\n<!-- end" in page
    assert refresh(page, tmp_path, tmp_path / "docs") == page
    assert main(["--root", str(tmp_path), "--check"]) == 0


def test_a_missing_source_is_one_line_and_nothing_written(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    text = "<!-- generated from examples/gone.md -->\nold\n<!-- end of generated table -->\n"
    (tmp_path / "docs" / "page.md").write_text(text)
    (tmp_path / "README.md").write_text("")
    assert main(["--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "docs/page.md: examples/gone.md: not found" in err
    assert (tmp_path / "docs" / "page.md").read_text() == text


def test_a_pipe_inside_a_cell_stays_in_its_cell_from_the_card_to_the_docs(tmp_path):
    """An ``overrides`` regex such as ``(query|key)`` in a comparison card: escaped there, read back whole here, and
    picked by a ``~REGEX`` row selector."""
    from noisesim.reports.cards import card_markdown

    setting = "overrides: {'(query|key)': {'act_bits': 16}}"
    card = {"settings": {setting: {"model": "minilm"}, "plain": {"model": "minilm"}},
            "results": [{"setting": setting, "noise_type": "none", "allocation_label": "uniform", "accuracy": 0.771,
                         "accuracy_lo": 0.75, "accuracy_hi": 0.79},
                        {"setting": "plain", "noise_type": "none", "allocation_label": "uniform", "accuracy": 0.5}]}
    (tmp_path / "card.md").write_text(card_markdown(card, "t"))
    rows = [r for r in markdown_rows((tmp_path / "card.md").read_text()) if "accuracy" in r]
    assert [r["setting"] for r in rows] == [setting.replace("|", "\\|"), "plain"]
    assert rows[0]["allocation"] == "uniform"  # the cells after the escaped pipe are where they belong
    spec = {"file": "card.md", "where": {"setting": "~query\\\\\\|key"}, "column": "accuracy"}
    assert measured(spec, tmp_path, tmp_path).startswith("77.10% [75.00%, 79.00%]")


def test_the_models_table_names_every_registered_model_and_data_set():
    import noisesim.data.registry  # noqa: F401  (registers the data sets)
    import noisesim.models.zoo  # noqa: F401  (registers the models)
    from noisesim.registry import DATASETS, MODELS

    table = "\n".join(line for line in (ROOT / "docs" / "models.md").read_text().splitlines() if line.startswith("|"))
    cells = {name.strip("*` ") for line in table.splitlines() for cell in line.split("|")[1:3]
             for name in cell.replace("(", ",").split(",")}
    assert set(MODELS) <= cells and set(DATASETS) <= cells, (set(MODELS) | set(DATASETS)) - cells
