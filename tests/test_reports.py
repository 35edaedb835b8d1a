"""Reports of a run: every plot, the quantization card, run comparisons, the savings table, the scripts."""
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from noisesim.experiment.main import main as main_py
from noisesim.reports.__main__ import main as plot_main
from tests.helpers import make_fashion_mnist

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "run_noise").glob("*.sh")) + sorted((ROOT / "run_quant").glob("*.sh"))
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two small runs on generated Fashion-MNIST that differ in weight granularity."""
    root = tmp_path_factory.mktemp("reports")
    data = make_fashion_mnist(root / "data")
    common = ["--data_path", str(data), "--log_dir", str(root / "logs"), "--train_batch_size", "32",
              "--val_batch_size", "64", "--calibration_batches", "1", "--train_batches", "4", "--no-progress",
              "--record_snr", "--noise_as_quantizer", "--constrained_loss", "--lambd", "5", "--acc_drop", "0.3"]
    assert main_py(common + ["--run_name", "tensor", "--noise_type", "shot", "--target_emac", "3", "30",
                             "--allocation", "uniform", "trained", "--granularity", "layer", "channel"]) == 0
    assert main_py(common + ["--run_name", "channel", "--noise_type", "thermal", "--target_emac", "3", "30",
                             "--weight_per_channel"]) == 0
    return root / "logs"


@pytest.mark.parametrize("name", ["accuracy_vs_energy", "iso_accuracy", "noise_bits_accuracy", "energy_by_layer",
                                  "noise_bits_by_layer", "bits_by_layer", "snr_histogram", "snr_by_layer",
                                  "snr_by_fan_in"])
def test_run_draws_every_plot(runs, name):
    png = runs / "tensor" / f"{name}.png"
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000
    assert (runs / "tensor" / f"{name}.pdf").stat().st_size > 1_000


def test_rows_carry_noise_bits_comparison(runs):
    df = pd.read_csv(runs / "tensor" / "results.csv")
    assert df["noise_bits_accuracy"].between(0, 1).all() and df["avg_noise_bits"].between(1, 24).all()
    assert df["baseline"].str.contains("random weights|sha256").all()
    ch = pd.read_csv(runs / "tensor" / "layers" / f"{df['point_id'].iloc[0]}_channels.csv")
    assert {"name", "fan_in", "channel", "e_mac", "snr_db", "noise_bits"} <= set(ch.columns)
    assert ch["snr_db"].notna().all()


def test_points_table_gives_every_row_what_it_asked_for_and_got(runs):
    df = pd.read_csv(runs / "tensor" / "results.csv")
    lines = (runs / "tensor" / "points.md").read_text().splitlines()
    rows = [line.split(" | ") for line in lines[2:] if line.startswith("| ")]
    assert len(rows) == len(df) and rows[0][0] == "| uniform"  # uniform first
    for r in df.to_dict("records"):
        cells = f"| {r['allocation_label']} | {r['target_emac']:g} | {r['avg_emac']:.3g} | {r['accuracy']:.2%}"
        assert any(line.startswith(cells) for line in lines), cells
    assert lines[-1] == f"{df['examples'].iloc[0]} test examples, 1 noise draw(s) per point."


def test_card_states_confounders_next_to_accuracy(runs):
    card = json.loads((runs / "tensor" / "card.json").read_text())
    conf = card["settings"]["this run"]
    assert conf["weight granularity"] == "per tensor" and conf["BN folding"].startswith("folded")
    assert conf["calibration"].startswith("32 samples") and conf["seeds"] == "0"
    assert conf["training labels"] == "data set labels"
    df = pd.read_csv(runs / "tensor" / "results.csv")
    assert len(card["results"]) == len(df)
    md = (runs / "tensor" / "card.md").read_text()
    first = df.iloc[0]
    assert f"{first['accuracy'] * 100:.2f}%" in md and "| first / last layer precision |" in md


@pytest.mark.slow
def test_compare_labels_runs_by_the_setting_that_differs(runs, capsys):
    out = runs / "compare"
    assert plot_main([str(runs / "tensor"), str(runs / "channel"), "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert set(card["settings"]) == {"weight per channel: off", "weight per channel: on"}
    assert card["settings"]["weight per channel: on"]["weight granularity"] == "per output channel"
    assert (out / "accuracy_vs_energy.png").read_bytes()[:8] == PNG


def test_plot_errors_are_one_line(runs, tmp_path, capsys):
    assert plot_main([str(tmp_path)]) == 2
    assert plot_main([str(runs / "tensor"), str(runs / "channel")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "--out" in err


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse(script):
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_script_rejects_a_missing_imagenet_folder(tmp_path):
    r = subprocess.run(["bash", str(ROOT / "run_noise" / "thermal.sh"), str(tmp_path / "missing")],
                       capture_output=True, text=True, env={"LOG_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "IMAGENET_DIR" in r.stderr


def test_compare_labels_runs_written_before_a_setting_existed():
    from noisesim.reports.figures import settings_labels
    new = {"allocate": {"value": "energy", "record": True}, "model": {"value": "resnet20", "record": True}}
    old = {"model": {"value": "vgg16", "record": True}}
    assert settings_labels([new, old], ["a", "b"]) == ["allocate: energy, model: resnet20", "allocate: —, model: vgg16"]
