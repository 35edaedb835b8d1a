"""The allocation methods behind the README's method comparison, end to end through main.py: every energy method
(uniform, closed_form, hessian, greedy) and every bit-width method (uniform, trained, greedy, hessian, closed_form)
writes its rows, its allocation, an average within the budget, and the savings or budget table."""
import json

import numpy as np
import pandas as pd
import pytest

from noisesim.experiment.main import main
from noisesim.reports.greedy import write_greedy
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


def _act_bits(alloc):
    """The input-element weighted average activation bits of an allocation file, and every layer's bits."""
    layers = alloc["layers"].values()
    bits = [layer["act_bits"] for layer in layers]
    sizes = [layer["in_elems"] for layer in layers]
    return sum(b * n for b, n in zip(bits, sizes)) / sum(sizes), bits


def test_activation_bit_methods_meet_the_budget_and_reach_the_budget_table(tmp_path, data):
    run, df = _run(tmp_path, data, "--noise_type", "none", "--quantity", "act_bits", "--target_act_bits", 3.5,
                   "--allocation", "uniform", "trained", "greedy", "hessian", "closed_form",
                   "--train_batches", 4, "--lambd", 5, "--lr", 0.1)
    assert sorted(df["allocation"]) == ["closed_form", "greedy", "hessian", "trained", "uniform"]
    for r in df.to_dict("records"):
        alloc = _allocation(run, r["point_id"])
        average, bits = _act_bits(alloc)
        assert average == pytest.approx(alloc["average_act_bits"]) and average <= 3.5 + 1e-9
        assert r["avg_act_bits"] == pytest.approx(average, abs=1e-6)  # what the model ran
        assert r["avg_weight_bits"] == pytest.approx(8)  # the weights keep their bits
        top = 16 if r["allocation"] == "trained" else 8  # trained bits may rise above where they started
        assert all(float(b).is_integer() and 2 <= b <= top for b in bits)
        if r["allocation"] == "uniform":
            assert set(bits) == {3.0}
        else:
            assert average > 3.0 and len(set(bits)) > 1  # the half bit above uniform's is spent, unevenly
        if r["allocation"] in ("hessian", "closed_form"):
            assert r["alloc_backward"] > 0 and "input" in r["sensitivity"]
    assert (run / "allocations" / f"{df.set_index('allocation').loc['greedy', 'point_id']}.log").is_file()
    budgets = (run / "budgets.md").read_text()
    assert budgets.count("| resnet20 |") == 5 and "| A 3.5 |" in budgets


def test_the_classic_greedy_study_logs_accept_and_reject_for_every_layer(tmp_path, data):
    run, df = _run(tmp_path, data, "--noise_type", "none", "--quantity", "act_bits", "--act_bits", 4,
                   "--target_act_bits", 2, "--allocation", "greedy", "--greedy_bits", 4, 2, "--greedy_epsilon", 0.05)
    log = (run / "allocations" / f"{df['point_id'].iloc[0]}.log").read_text().splitlines()
    decided = [line for line in log if line.startswith(("act bits: ACCEPT", "act bits: REJECT"))]
    assert len(decided) == 20 and log[0] == "act bits: 4 -> 2 bits, epsilon 0.05"
    accepted = [line.split()[3].rstrip(":") for line in decided if "ACCEPT" in line]
    _, bits = _act_bits(_allocation(run, df["point_id"].iloc[0]))
    assert sorted(bits).count(2.0) == len(accepted) and set(bits) <= {2.0, 4.0}
    report = (run / "greedy.md").read_text()  # the sensitivity table, least sensitive first, with the decisions
    ranked = [line.split(" | ")[1] for line in report.splitlines() if line.startswith("| ") and "rank" not in line
              and "---" not in line]
    assert len(ranked) == 20 and ranked[:len(decided)] == [line.split()[3].rstrip(":") for line in decided]
    assert "paired 95% bootstrap over 64 test examples" in report
    assert run / "greedy_drops.png" in write_greedy(run)  # the bar chart (the run itself drew no plots)


def test_weights_and_activation_bits_are_allocated_each_within_its_budget(tmp_path, data):
    run, df = _run(tmp_path, data, "--noise_type", "none", "--quantity", "weights_and_act_bits",
                   "--target_weight_bits", 4.5, "--target_act_bits", 3.5, "--allocation", "uniform", "closed_form")
    for r in df.to_dict("records"):
        alloc = _allocation(run, r["point_id"])
        assert alloc["average_weight_bits"] <= 4.5 + 1e-9 and _act_bits(alloc)[0] <= 3.5 + 1e-9
        if r["allocation"] == "closed_form":
            assert alloc["average_weight_bits"] > 4 and _act_bits(alloc)[0] > 3
    assert "| W 4.5, A 3.5 |" in (run / "budgets.md").read_text()
