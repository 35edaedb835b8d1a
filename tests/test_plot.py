"""python main.py plot redraws from the rows shipped in examples/."""
import shutil
from pathlib import Path

from noisesim.reports.__main__ import main

ROWS = Path(__file__).resolve().parents[1] / "examples" / "figures" / "thermal_fashion_mnist_resnet20.csv"


def test_redraws_accuracy_vs_energy(tmp_path, capsys):
    shutil.copy(ROWS, tmp_path / "results.csv")
    assert main([str(tmp_path)]) == 0
    png = tmp_path / "accuracy_vs_energy.png"
    assert png.stat().st_size > 10_000 and (tmp_path / "accuracy_vs_energy.pdf").is_file()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_results_is_a_one_line_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_shipped_points_table_is_what_plot_makes_of_the_shipped_rows(tmp_path, capsys):
    """The docs' 27-point table (examples/figures/..._points.md) is regenerated, not typed: plot writes it again
    from the shipped results.csv, byte for byte."""
    shutil.copy(ROWS, tmp_path / "results.csv")
    assert main([str(tmp_path)]) == 0
    shipped = ROWS.with_name("thermal_fashion_mnist_resnet20_points.md")
    assert (tmp_path / "points.md").read_text() == shipped.read_text()
