"""The studies of run_noise/ and run_quant/ as data: every study file plans valid runs, a study runs and compares,
the scripts are thin, and ``query`` reads a run folder for the scripts that chain runs."""
import subprocess
from pathlib import Path

import pytest

from noisesim.commands import main
from noisesim.experiment.cli import parse_args
from noisesim.experiment.study import load_study, plan, study_names
from tests.helpers import make_fashion_mnist

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "run_noise").glob("*.sh")) + sorted((ROOT / "run_quant").glob("*.sh"))


@pytest.mark.parametrize("imagenet", [None, "IMAGENET"])
def test_every_study_plans_runs_that_main_accepts(tmp_path, imagenet):
    (tmp_path / "IMAGENET").mkdir()
    data = str(tmp_path / "IMAGENET") if imagenet else None
    for name in study_names():
        runs = plan(name, load_study(name), tmp_path / "logs", data, None, None, ["resnet50"] if data else None, [])
        assert runs, name
        folders = [r.folder for r in runs]
        assert len(set(folders)) == len(folders), name  # no two runs share a folder
        for run in runs:
            cfg = parse_args(run.flags)
            assert cfg.resume and Path(cfg.log_dir) / cfg.run_name == run.folder


def test_the_sweep_studies_keep_their_grids_and_run_folders(tmp_path):
    runs = plan("shot", load_study("shot"), tmp_path, None, ["fmnist"], None, None, ["--mc_repeats", "1"])
    (run,) = runs
    cfg = parse_args(run.flags)
    assert run.folder == tmp_path / "shot" / "resnet20-fashion_mnist"
    assert cfg.target_emac == (10, 30, 100, 200, 500, 1000, 3000) and cfg.noise_type == ("shot",)
    assert cfg.mc_repeats == 1 and cfg.granularity == ("layer", "channel") and not cfg.compare_uniform


def test_a_study_runs_each_variant_and_compares_them(tmp_path, capsys):
    data = make_fashion_mnist(tmp_path / "data")
    logs = tmp_path / "logs"
    tiny = ["--data_path", str(data), "--weight_bits", "8", "--act_bits", "8", "--val_batch_size", "64",
            "--train_batch_size", "32", "--calibration_batches", "1", "--no-progress", "--no_plot"]
    assert main(["study", "act_symmetric", "--presets", "fmnist", "--log_dir", str(logs), "--", *tiny]) == 0
    study = logs / "act_symmetric"
    for variant in ("asymmetric", "symmetric"):
        assert (study / f"resnet20-fashion_mnist-{variant}" / "results.csv").is_file()
    assert (study / "resnet20-fashion_mnist-compare" / "card.md").is_file()
    accuracy = capsys.readouterr() and main(["query", str(study / "resnet20-fashion_mnist-symmetric"), "accuracy"])
    assert accuracy == 0 and 0 <= float(capsys.readouterr().out) <= 1
    # a rerun resumes: nothing left to compute
    assert main(["study", "act_symmetric", "--presets", "fmnist", "--log_dir", str(logs), "--", *tiny]) == 0
    assert capsys.readouterr().out.count("1 of 1 points already done") == 2


@pytest.mark.parametrize("argv, words", [
    (["study", "nonesuch"], "study nonesuch: unknown; choose from"),
    (["study", "thermal", "--variants", "loud"], "--variants loud: not in study thermal"),
    (["study", "thermal", "--", "--mc_repeats", "0"], "--mc_repeats 0: must be >= 1"),
    (["study", "thermal", "/nonexistent/imagenet"], "IMAGENET_DIR /nonexistent/imagenet: not a directory"),
    (["query", "/nonexistent", "accuracy"], "no results.csv rows"),
])
def test_bad_study_and_query_input_is_one_line(tmp_path, capsys, argv, words):
    assert main([*argv, *(["--log_dir", str(tmp_path / "logs")] if argv[0] == "study" and "--" not in argv
                          else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "logs").exists()


def test_a_study_file_with_an_unknown_setting_names_it(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("settings: {noise_typ: [thermal]}\n")
    assert main(["study", str(bad), "--log_dir", str(tmp_path / "logs")]) == 2
    assert "unknown settings noise_typ" in capsys.readouterr().err


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scripts_hold_no_presets_grids_or_run_folder_reads(script):
    """A script is a study's name, or a chain of runs; what it reads from run folders goes through main.py query."""
    text = script.read_text()
    assert "declare -A" not in text and "read_csv" not in text and "find " not in text and "glob" not in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_a_study_that_succeeds_records_its_command_and_wall_time(tmp_path):
    """common.sh appends one row per successful study to $LOG_DIR/study_times.md (docs/studies.md reads it)."""
    (tmp_path / "run_quant").mkdir()
    for name, body in (("ok.sh", "sleep 1"), ("broken.sh", "false")):
        script = tmp_path / "run_quant" / name
        script.write_text(f'#!/usr/bin/env bash\nsource "{ROOT}/run_noise/common.sh"\n{body}\n')
        script.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "LOG_DIR": str(tmp_path / "logs"), "EPOCHS": "2"}
    assert subprocess.run([tmp_path / "run_quant" / "ok.sh", "--presets", "fmnist"], env=env).returncode == 0
    assert subprocess.run([tmp_path / "run_quant" / "broken.sh"], env=env).returncode == 1
    rows = (tmp_path / "logs" / "study_times.md").read_text().splitlines()
    assert rows[0].startswith("| command | seconds |") and len(rows) == 3
    command, seconds = rows[2].split(" | ")[:2]
    assert command == '| `EPOCHS="2" run_quant/ok.sh --presets fmnist`' and 1 <= int(seconds) <= 30
