"""main.py end to end on tiny generated Fashion-MNIST files: every flag's path and every error."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from noisesim.experiment.main import main
from tests.helpers import make_fashion_mnist

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_fashion_mnist(tmp_path_factory.mktemp("fmnist"))


def run(tmp_path, data, *flags, name="run"):
    argv = ["--config", "none", "--data_path", str(data), "--log_dir", str(tmp_path / "logs"), "--run_name", name,
            "--train_batch_size", "32", "--val_batch_size", "64", "--calibration_batches", "1",
            "--train_batches", "4", "--no-progress", "--no_plot", *map(str, flags)]
    code = main(argv)
    results = tmp_path / "logs" / name / "results.csv"
    return code, (pd.read_csv(results) if results.exists() else None)


def real(tmp_path, *flags, name="real"):
    """main.py on the real Fashion-MNIST (the Debian package) with the shipped ResNet-20."""
    argv = ["--config", "none", "--log_dir", str(tmp_path / "logs"), "--run_name", name, "--train_batch_size", "64",
            "--calibration_batches", "2", "--no-progress", "--no_plot", *map(str, flags)]
    code = main(argv)
    return code, pd.read_csv(tmp_path / "logs" / name / "results.csv")


@pytest.mark.slow
def test_trained_energies_beat_uniform_ones_at_equal_energy_on_real_test_images(tmp_path):
    """Thermal noise at 3 photons/MAC on 1000 real test images, 2 draws: energies trained per layer under the
    constrained loss against a uniform allocation of the same average energy, by more than both intervals."""
    code, df = real(tmp_path, "--noise_type", "thermal", "--target_emac", 3, "--allocation", "trained",
                    "--granularity", "layer", "--constrained_loss", "--lambd", 5, "--lr", 0.05, "--train_batches", 40,
                    "--val_batch_size", 500, "--eval_batches", 2, "--mc_repeats", 2)
    r = df.iloc[0]
    assert code == 0 and r["examples"] == 1000 and r["draws"] == 2
    assert 2.9 < r["avg_emac"] <= 3.0 + 1e-9  # at most the budget (only an overspend is scaled back), nearly all of it
    assert r["accuracy_lo"] > r["uniform_accuracy_same_energy_hi"], r[["accuracy", "uniform_accuracy_same_energy"]]
    layers = pd.read_csv(tmp_path / "logs/real/layers" / f"{r['point_id']}.csv")
    assert len(layers) == 20 and {"name", "macs", "e_mac"} <= set(layers.columns)
    assert layers["e_mac"].std() / layers["e_mac"].mean() > 0.1  # the allocation moved away from uniform


@pytest.mark.slow
def test_allocation_sweep_is_a_cartesian_product(tmp_path, data):
    code, df = run(tmp_path, data, "--noise_type", "thermal", "shot", "--allocation", "uniform", "trained",
                   "--granularity", "layer", "channel", "--target_emac", 2, 20, "--constrained_loss", "--record_snr", "--checkpoint",
                   "--checkpoint_every", 2)
    assert code == 0 and len(df) == 12
    assert df.groupby(["noise_type", "allocation_label"]).size().eq(2).all()
    assert df["mean_snr_db"].notna().all()
    channel = df[df["allocation_label"] == "trained per channel"]["point_id"].iloc[0]
    ch = pd.read_csv(tmp_path / "logs/run/layers" / f"{channel}_channels.csv")
    assert ch.groupby("name").size().max() == 64


@pytest.mark.parametrize("rounding,gap", [("round", 1), ("discrete", 4), ("stochastic", 1)])
def test_bitwidth_training_spends_the_weight_budget(tmp_path, data, rounding, gap):
    """Within the budget (the final shift guarantees that much) and short of it by less than one rounding level of
    the largest layer: the rounded bits are filled back up to the budget (largest remainder first)."""
    code, df = run(tmp_path, data, "--noise_type", "none", "--train_bitwidth", "--target_weight_bits", 4,
                   "--target_act_bits", 6, "--bit_rounding", rounding, "--lambd", 20, "--lr", 0.2, "--train_batches", 15)
    assert code == 0 and len(df) == 1
    layers = pd.read_csv(tmp_path / "logs/run/layers" / f"{df['point_id'][0]}.csv")
    slack = gap * layers["weights"].max() / layers["weights"].sum()
    assert 4.0 - slack < df["avg_weight_bits"].iloc[0] <= 4.0 and df["avg_act_bits"].iloc[0] <= 6.0
    assert (layers["weight_bits"] == layers["weight_bits"].round()).all()


def test_bitwidth_options(tmp_path, data):
    code, df = run(tmp_path, data, "--noise_type", "none", "--train_bitwidth", "--target_weight_bits", 3,
                   "--bit_rounding", "round", "--per_channel_bitwidth", "--weight_bits_only", "--max_act",
                   "--lambd", 20, "--lr", 0.3, "--train_batches", 10)
    layers = pd.read_csv(tmp_path / "logs/run/layers" / f"{df['point_id'][0]}.csv")
    slack = layers["fan_in"].max() / layers["weights"].sum()  # one output channel's weights: its fan-in
    assert code == 0 and 3.0 - slack < df["avg_weight_bits"].iloc[0] <= 3.0  # spent to within one channel's bit
    assert df["avg_act_bits"].iloc[0] == 8  # --weight_bits_only


def test_quantization_flags(tmp_path, data):
    code, df = run(tmp_path, data, "--noise_type", "shot", "--e_mac", 5, "--weight_bits", 4, 8, "--act_bits", 6,
                   "--act_observer", "percentile", "--percentile", 99.9, 99.0, "--weight_observer", "mse",
                   "--weight_per_channel", "--act_symmetric", "--no-weight_symmetric", "--ignore", "first",
                   "--first_last_bits", 8, "--quantize_residual", "--no-fold_bn", "--quantize_energy")
    assert code == 0 and len(df) == 4
    assert set(df["weight_bits"]) == {4, 8}


@pytest.mark.parametrize("observer", ["ema", "aciq", "mse"])
def test_train_qminmax_with_observers(tmp_path, data, observer):
    code, df = run(tmp_path, data, "--noise_type", "weight", "--e_mac", 10, "--train_qminmax",
                   "--act_observer", observer, "--generated_labels", "--optimizer", "sgd")
    assert code == 0 and len(df) == 1


def test_noise_bits_override_and_mc_repeats(tmp_path, data):
    code, df = run(tmp_path, data, "--noise_type", "thermal", "--e_mac", 0.5, "--noise_as_quantizer",
                   "--mc_repeats", 3, "--eval_batches", 1)
    assert code == 0 and df["accuracy_ci95"].iloc[0] >= 0
    code, df = run(tmp_path, data, "--noise_type", "thermal", "--e_mac", 0.05, "--mc_repeats", 4, name="mc")
    assert df["accuracy_ci95"].iloc[0] > 0  # independent noise draws differ


def test_overrides_and_dynamic_ranges_reach_the_layers(tmp_path, data):
    code, df = run(tmp_path, data, "--noise_type", "thermal", "--e_mac", 5, "--act_dynamic",
                   "--overrides", '{"fc": {"act_bits": 16, "weight_bits": 12}}')
    layers = pd.read_csv(next((tmp_path / "logs/run/layers").glob("*.csv"))).set_index("name")
    assert code == 0 and layers.loc["fc", "act_bits"] == 16 and layers.loc["fc", "weight_bits"] == 12
    assert layers.loc["conv1", "act_bits"] == 8 and '"fc"' in df["overrides"].iloc[0]


def test_tiles_adcs_and_noise_sums_reach_the_layers_and_the_results(tmp_path, data):
    """ResNet-20 on arrays of 64 rows with 6-bit ADCs under thermal+shot noise: a fan-in of 144 (16 channels x 9
    taps) is 3 tiles, every tile's partial sum one conversion, and the energy per inference splits into its
    optical, ADC and DAC parts in results.csv and the layers file."""
    code, df = run(tmp_path, data, "--noise_type", "thermal+shot", "--e_mac", 5, "--tile_rows", 64, "--adc_bits", 6,
                   "--overrides", '{"first": {"tile_rows": null}}', "--eval_batches", 1, "--val_batch_size", 8)
    r = df.iloc[0]
    assert code == 0 and r["noise_type"] == "thermal+shot" and r["tile_rows"] == 64 and r["adc_bits"] == 6
    layers = pd.read_csv(tmp_path / "logs/run/layers" / f"{r['point_id']}.csv").set_index("name")
    assert layers.loc["conv1", "tiles"] == 1 and layers.loc["layer1.0.conv1", "tiles"] == 3
    assert layers.loc["layer1.0.conv1", "conversions"] == 3 * 16 * 28 * 28
    assert math.isclose(r["energy_j"], layers["energy_j"].sum(), rel_tol=1e-9)
    assert math.isclose(r["energy_j"], r["energy_optical_j"] + r["energy_adc_j"] + r["energy_dac_j"], rel_tol=1e-9)
    assert r["energy_adc_j"] > 100 * r["energy_optical_j"] and 0 <= r["adc_clip_rate"] < 0.01
    table = (tmp_path / "logs/run/energy_breakdown.md").read_text()
    assert f"| thermal+shot | uniform | 5 | 5 | {r['accuracy']:.2%}" in table and "ADCs" in table
    from noisesim.experiment.export import main as export

    assert export([str(tmp_path / "logs/run"), "--psum_bits", "24"]) == 0  # the integers recover every tile's codes
    with np.load(tmp_path / "logs/run/export/tiles.npz") as tiles:
        assert tiles["layer1.0.conv1/adc_code"].shape == (3, 16, 28, 28)


def test_config_file_sets_defaults(tmp_path, data):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("noise_type: [shot]\ne_mac: [3, 30]\nweight_bits: [6]\n")
    code, df = run(tmp_path, data, "--config", cfg, "--act_bits", 7)
    assert code == 0 and set(df["e_mac" if "e_mac" in df else "target_emac"]) == {3, 30}
    assert set(df["noise_type"]) == {"shot"} and set(df["weight_bits"]) == {6} and set(df["act_bits"]) == {7}


@pytest.mark.slow
def test_binary_search_bisects_to_the_crossing_on_real_test_images(tmp_path):
    """Uniform thermal energies on 200 real test images: 93% at 100 photons/MAC, near chance at 0.1; the search
    brackets the 60% crossing within one geometric step of 4 bisections, and the trained allocation's saving is
    1 - E*_trained / E*_uniform."""
    code, results = real(tmp_path, "--noise_type", "thermal", "--binary_search", "--target_acc", 0.6,
                         "--allocation", "uniform", "trained", "--constrained_loss", "--train_batches", 3,
                         "--search_steps", 4, "--e_min", 0.1, "--e_max", 100, "--val_batch_size", 200,
                         "--eval_batches", 1)
    search = pd.read_csv(tmp_path / "logs/real/search.csv").set_index("allocation_label")
    assert code == 0 and list(search.index) == ["uniform", "trained per layer"]
    step = (100 / 0.1) ** (1 / 2 ** 4)
    for label, r in search.iterrows():
        probes = results[results["allocation_label"] == label]
        assert r["probes"] == 6 and len(probes) == 6 and 0.1 < r["energy"] < 100 and r["accuracy"] >= 0.6
        below = probes[probes["target_emac"] < r["energy"]]
        assert below["accuracy"].max() < 0.6  # every probe below the answer missed the target
        assert r["energy"] <= below["target_emac"].max() * step * (1 + 1e-9)
    saving = 1 - search.loc["trained per layer", "energy"] / search.loc["uniform", "energy"]
    assert search.loc["trained per layer", "saving_vs_uniform"] == pytest.approx(saving)


def test_resume_runs_each_point_once(tmp_path, data, capsys):
    run(tmp_path, data, "--e_mac", 1, 2)
    code, df = run(tmp_path, data, "--e_mac", 1, 2, 4, "--resume")
    assert code == 0 and len(df) == 3 and df["point_id"].is_unique
    out = capsys.readouterr().out
    assert "[1/1]" in out and "s left" not in out.split("[1/1]")[1].splitlines()[0]  # the last point: none left
    plan = f"sweep: 3 points of resnet20 on fashion_mnist (noise thermal, allocation uniform, granularity layer) -> "
    assert plan + str(tmp_path / "logs" / "run") in out.split("[1/1]")[0]  # said before the first point
    timing = json.loads((tmp_path / "logs/run/timing.json").read_text())
    assert {"data and model", "evaluation", "allocation", "total"} <= timing.keys()
    assert sum(v for k, v in timing.items() if k != "total") == pytest.approx(timing["total"], abs=0.05)


def test_phases_count_nested_time_once_and_the_progress_line_extrapolates(monkeypatch):
    from noisesim.experiment import phases

    clock = iter([0.0, 1.0, 3.0, 7.0, 8.0, 10.0, 10.0])  # start, outer in, inner in, inner out, outer out, to_dict
    monkeypatch.setattr(phases.time, "perf_counter", lambda: next(clock))
    p = phases.Phases()
    with p("outer"):
        with p("inner"):
            pass
    assert p.seconds == {"outer": 3.0, "inner": 4.0}
    assert p.to_dict() == {"outer": 3.0, "inner": 4.0, "other": 3.0, "total": 10.0}
    assert phases.progress_line(2, 6, 40.0) == "40 s, about 80 s left"


def test_a_point_is_the_same_whichever_points_ran_before_it(tmp_path, data):
    """Every point calibrates on the same training batches: a uniform point alone equals the same point run after
    another energy of the sweep (which once consumed the shuffled batches before it)."""
    _, alone = run(tmp_path / "alone", data, "--e_mac", 4)
    _, after = run(tmp_path / "after", data, "--e_mac", 8, 4)
    row = after.set_index("e_mac").loc[4]
    assert row["point_id"] == alone["point_id"][0]
    assert row["avg_noise_bits"] == alone["avg_noise_bits"][0] and row["accuracy"] == alone["accuracy"][0]


def test_existing_run_is_never_overwritten_without_flag(tmp_path, data, capsys):
    run(tmp_path, data, "--e_mac", 1)
    before = (tmp_path / "logs/run/results.csv").read_bytes()
    code, _ = run(tmp_path, data, "--e_mac", 2)
    assert code == 2 and "--resume" in capsys.readouterr().err
    assert (tmp_path / "logs/run/results.csv").read_bytes() == before
    code, df = run(tmp_path, data, "--e_mac", 2, "--overwrite")
    assert code == 0 and len(df) == 1 and len(list((tmp_path / "logs").glob("run.old-*"))) == 1


@pytest.mark.slow
def test_sigkill_then_resume_gives_every_point_exactly_once(tmp_path, data):
    flags = ["--config", "none", "--data_path", str(data), "--log_dir", str(tmp_path / "logs"), "--run_name", "k",
             "--train_batch_size", "32", "--val_batch_size", "64", "--calibration_batches", "1",
             "--no-progress", "--no_plot", "--e_mac", "1", "2", "3", "4", "5", "6", "7", "8"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *flags], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = tmp_path / "logs/k/results.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (results.exists() and len(pd.read_csv(results)) >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(pd.read_csv(results))
    assert 2 <= killed_at < 8
    assert subprocess.run([sys.executable, str(ROOT / "main.py"), *flags, "--resume"], env=env,
                          capture_output=True).returncode == 0
    df = pd.read_csv(results)
    assert len(df) == 8 and df["point_id"].is_unique and sorted(df["e_mac"]) == [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("flags,message", [
    (["--model", "vgg99"], "--model vgg99: unknown"),
    (["--dataset", "mnist3d"], "--dataset mnist3d: unknown"),
    (["--model", "resnet50"], "--model resnet50 runs on imagenet"),
    (["--data_path", "/nonexistent/dir"], "--data_path /nonexistent/dir: no such directory"),
    (["--e_mac", "0"], "--e_mac 0.0: must be > 0"),
    (["--target_emac", "-1"], "--target_emac -1.0: must be > 0"),
    (["--weight_bits", "1"], "--weight_bits 1: is outside 2-16"),
    (["--act_bits", "17"], "--act_bits 17: is outside 2-16"),
    (["--noise_type", "pink"], "--noise_type pink: unknown"),
    (["--train_qminmax", "--act_observer", "percentile"], "--train_qminmax"),
    (["--noise_type", "thermal", "--act_bits", "none"], "--noise_type thermal"),
    (["--round_bitwidth"], "unrecognized arguments: --round_bitwidth"),
    (["--train_bitwidth"], "--train_bitwidth needs --target_weight_bits"),
    (["--binary_search"], "--binary_search needs --target_acc"),
    (["--target_acc", "95"], "--target_acc 95"),
    (["--lambd", "-1"], "--lambd -1"),
    (["--percentile", "20"], "--percentile 20"),
    (["--config", "/nonexistent.yaml"], "--config /nonexistent.yaml: no such file"),
    (["--mc_repeats", "0"], "--mc_repeats 0: must be >= 1"),
    (["--overrides", "{bad json"], "argument --overrides"),
    (["--overrides", '{"fc": {"bitz": 3}}'], "sets unknown fields ['bitz']"),
    (["--target_acc", "0.9", "--acc_drop", "0.01"], "not both"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, data, capsys, flags, message):
    code = main(["--config", "none", "--data_path", str(data), "--log_dir", str(tmp_path / "logs"), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1 and err.startswith("main.py: error:")
    assert not (tmp_path / "logs").exists()


def test_missing_fashion_mnist_says_where_it_looked(tmp_path, capsys, monkeypatch):
    import noisesim.data.fashion_mnist as fm

    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "none")
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["--config", "none", "--data_path", str(empty), "--log_dir", str(tmp_path / "logs")])
    err = capsys.readouterr().err
    assert code == 2 and f"--data_path {empty}" in err and "download failed" in err  # never another copy
    code = main(["--config", "none", "--log_dir", str(tmp_path / "logs")])
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path / "none") in err and "dataset-fashion-mnist" in err
    assert not (tmp_path / "logs").exists()


def test_cli_script_exit_code():
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--weight_bits", "99"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and "--weight_bits" in proc.stderr and "Traceback" not in proc.stderr


def test_flags_layer_over_the_default_study_and_config_none_gives_the_plain_defaults(capsys):
    from noisesim.experiment.cli import parse_args
    from noisesim.experiment.config import ExperimentConfig

    study = parse_args([])
    layered = parse_args(["--device", "cpu", "--mc_repeats", "2"])
    assert layered.target_emac == study.target_emac == (3, 10, 30, 100, 300, 1000)
    assert layered.allocation == ("uniform", "closed_form")
    out = capsys.readouterr().out
    assert layered.device == "cpu" and layered.mc_repeats == 2 and "flags override it" in out
    assert out.count("about 2 min on 2 CPU cores") == 1  # the bare command says how long it takes, once
    assert parse_args(["--config", "none"]) == ExperimentConfig()


def test_help_gives_every_flag_its_help_and_default_once():
    from noisesim.experiment.cli import build_parser

    for action in build_parser()._actions:
        if action.dest == "help":
            continue
        assert action.help and action.help.count("(default:") <= 1, action.dest
        if action.dest != "config" and action.default is not None and not isinstance(action.default, bool):
            assert "(default:" in action.help, action.dest
    text = subprocess.run([sys.executable, str(ROOT / "main.py"), "--help"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert "[photons/MAC] (default: 3 10 30 100 300 1000)" in " ".join(text.split())  # the default study's grid


def test_help_opens_with_the_commands_and_examples(capsys):
    from noisesim.commands import COMMANDS
    from noisesim.experiment.cli import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    head = capsys.readouterr().out.split("options:", 1)[0]
    assert head.startswith("usage: main.py [COMMAND] [FLAGS]")
    listed = head.split("commands:", 1)[1].split("examples:", 1)[0]
    assert all(f"main.py {name} " in listed for name in COMMANDS)
    assert "main.py plot logs/" in head.split("examples:", 1)[1]


@pytest.mark.parametrize("name", ["precision", "export", "plot", "pretrain", "migrate", "study", "query"])
def test_every_command_describes_itself_whole_under_its_prog(name, capsys):
    """The description is complete (not a docstring's first line cut mid-sentence) and the usage names the prog."""
    from noisesim.commands import main

    with pytest.raises(SystemExit):
        main([name, "--help"], prog="main.py")
    out = capsys.readouterr().out
    description = out.split("\n\n", 2)[1]
    assert out.startswith(f"usage: main.py {name}") and description.rstrip().endswith((".", ")"))


@pytest.mark.parametrize("name, flag", [("precision", "--method"), ("export", "--psum_bits"), ("plot", "--curve_fit"),
                                        ("pretrain", "--model_options")])
def test_main_dispatches_the_other_commands(name, flag, capsys):
    from noisesim.commands import main

    with pytest.raises(SystemExit) as stop:
        main([name, "--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and flag in out and out.startswith(f"usage: main.py {name}")


def test_provenance_is_recorded_in_config_rows_and_card(tmp_path, data):
    import json

    import torch

    code, df = run(tmp_path, data, "--noise_type", "thermal", "--e_mac", 10)
    config = json.loads((tmp_path / "logs/run/config.json").read_text())
    prov = config["provenance"]
    assert code == 0 and prov["torch_version"] == torch.__version__ and prov["noisesim_version"]
    assert prov["device"].startswith("cpu") and config["coverage"]["fraction"] == 1.0
    assert df["torch_version"].iloc[0] == torch.__version__ and df["coverage"].iloc[0] == 1.0
    card = (tmp_path / "logs/run/card.md").read_text()
    assert f"torch {torch.__version__}" in card and "100.00% of the MACs" in card
