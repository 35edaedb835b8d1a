"""``noisesim migrate`` on a run folder written by commit 597dfc4: ids and names brought up to date, nothing
lost, and ``--resume`` then finds every point done."""
import json
import shutil
from pathlib import Path

import pandas as pd

from noisesim.commands import main
from tests.helpers import make_fashion_mnist

OLD = Path(__file__).resolve().parent / "data" / "run_597dfc4"
FLAGS = ["--config", "none", "--train_batch_size", "32", "--val_batch_size", "64", "--calibration_batches", "1",
         "--train_batches", "4", "--no-progress", "--no_plot", "--allocation", "uniform", "trained",
         "--target_emac", "2", "5", "--mc_repeats", "2"]


def test_a_migrated_old_run_resumes_without_recomputing_a_point(tmp_path, capsys):
    run = tmp_path / "logs" / "old597"
    shutil.copytree(OLD, run)
    before = pd.read_csv(run / "results.csv")
    assert main(["migrate", str(run)]) == 0
    assert "4 point ids changed" in capsys.readouterr().out
    after = pd.read_csv(run / "results.csv")
    assert set(after["point_id"]).isdisjoint(before["point_id"]) and len(after) == 4
    assert after["target_emac"].tolist() == before["target_emac"].tolist() and after["e_mac"].isna().all()
    for pid in after["point_id"]:
        assert (run / "layers" / f"{pid}.csv").is_file() and (run / "allocations" / f"{pid}.json").is_file()
        assert (run / "outcomes" / f"{pid}.npz").is_file()
    assert all((run / "outcomes" / f"{c}.npz").is_file() for c in after["clean_id"])
    assert json.loads((run / "config.json").read_text())["experiment"]["noise_as_quantizer"] is False
    copies = list(run.parent.glob("old597.pre-migrate-*"))
    assert len(copies) == 1 and (copies[0] / "results.csv").read_bytes() == (OLD / "results.csv").read_bytes()

    data = make_fashion_mnist(tmp_path / "data")
    code = main([*FLAGS, "--data_path", str(data), "--log_dir", str(tmp_path / "logs"), "--run_name", "old597",
                 "--resume"])
    out = capsys.readouterr().out
    assert code == 0 and "4 of 4 points already done" in out and "[1/" not in out
    assert pd.read_csv(run / "results.csv")["point_id"].tolist() == after["point_id"].tolist()

    assert main(["migrate", str(run)]) == 0 and "nothing to do" in capsys.readouterr().out


def test_migrate_refuses_what_is_not_a_run_folder(tmp_path, capsys):
    assert main(["migrate", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("main.py migrate: error:") and "not a run folder" in err and len(err.splitlines()) == 1
