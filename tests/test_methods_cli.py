"""The allocation methods behind the README's method comparison, end to end through main.py: every energy method
(uniform, closed_form, hessian, greedy) and every bit-width method (uniform, trained, greedy, hessian, closed_form)
writes its rows, its allocation, an average within the budget, and the savings or budget table."""
import json

import numpy as np
import pandas as pd
import pytest

from noisesim.experiment.main import main
from tests.helpers import make_fashion_mnist

SMALL = ["--config", "none", "--train_batch_size", "16", "--val_batch_size", "64", "--eval_batches", "1",
         "--calibration_batches", "1", "--sensitivity_batches", "1", "--hutchinson_iters", "4", "--bootstrap", "100",
         "--no_plot", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_fashion_mnist(tmp_path_factory.mktemp("fmnist"))


def _run(tmp_path, data, *flags):
    assert main([*SMALL, "--data_path", str(data), "--log_dir", str(tmp_path), "--run_name", "r",
                 *map(str, flags)]) == 0
    run = tmp_path / "r"
    return run, pd.read_csv(run / "results.csv")


def _allocation(run, point_id):
    return json.loads((run / "allocations" / f"{point_id}.json").read_text())


@pytest.mark.slow
def test_energy_methods_spend_the_budget_and_reach_the_savings_table(tmp_path, data):
    run, df = _run(tmp_path, data, "--noise_type", "thermal", "--target_emac", 3, 30, "--allocation", "uniform",
                   "closed_form", "hessian", "greedy", "--acc_drop", 0.01, "--greedy_epsilon", 0.05)
    assert len(df) == 8 and df.groupby("allocation").size().eq(2).all()
    for r in df.to_dict("records"):
        alloc = _allocation(run, r["point_id"])
        energies = [e for layer in alloc["layers"].values() for e in layer["energy"]]
        assert alloc["method"] == r["allocation"] and len(alloc["layers"]) == 20
        assert alloc["average_energy"] == pytest.approx(r["target_emac"], rel=1e-6)
        assert r["avg_emac"] == pytest.approx(r["target_emac"], rel=1e-4)  # what the model ran
        if r["allocation"] in ("closed_form", "hessian"):  # from sensitivities: layers differ
            assert np.std(energies) / np.mean(energies) > 0.1 and r["alloc_backward"] > 0
        if r["allocation"] == "uniform":
            assert max(energies) == pytest.approx(min(energies))
        else:
            assert r["alloc_forward"] > 0 and r["uniform_accuracy_same_energy"] == r["uniform_accuracy_same_energy"]
    savings = (run / "savings.md").read_text()
    for label in df["allocation_label"].unique():
        assert f"| {label} |" in savings


def test_bit_width_methods_meet_the_budget_and_reach_the_budget_table(tmp_path, data):
    run, df = _run(tmp_path, data, "--noise_type", "none", "--quantity", "weight_bits", "--target_weight_bits", 3.5,
                   "--allocation", "uniform", "trained", "greedy", "hessian", "closed_form", "--weight_per_channel",
                   "--train_batches", 4, "--lambd", 5, "--lr", 0.1)
    assert sorted(df["allocation"]) == ["closed_form", "greedy", "hessian", "trained", "uniform"]
    for r in df.to_dict("records"):
        alloc = _allocation(run, r["point_id"])
        bits = {n: layer["weight_bits"] for n, layer in alloc["layers"].items()}
        flat = [b for v in bits.values() for b in v]
        counts = [layer["weights"] for layer in alloc["layers"].values()]
        average = sum(np.mean(v) * w for v, w in zip(bits.values(), counts)) / sum(counts)
        assert average == pytest.approx(alloc["average_weight_bits"]) and average <= 3.5 + 1e-9
        assert r["avg_weight_bits"] == pytest.approx(average, abs=1e-6)  # what the model ran
        assert all(float(b).is_integer() and 2 <= b <= 8 for b in flat)
        if r["allocation"] == "uniform":
            assert set(flat) == {3.0}
        else:
            assert average > 3.0  # the half bit above uniform's is spent
    budgets = (run / "budgets.md").read_text()
    assert budgets.count("| resnet20 |") == 5 and "vs uniform" in budgets
